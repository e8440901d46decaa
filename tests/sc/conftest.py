"""What several sc test modules share: a tiny model pretrained on simulated cell types."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from genoformer.sc.medians import gene_medians
from genoformer.sc.pretraining import pretrain
from genoformer.sc.simulate import simulate_cells
from genoformer.sc.tokenizer import tokenize


@pytest.fixture(scope="session")
def simulated_pretrained(tmp_path_factory) -> SimpleNamespace:
    """Five simulated cell types (20 marker genes each, known) and a tiny model pretrained on
    them by masked-gene prediction: ``cells`` (AnnData), ``vocabulary``, ``corpus`` (with the
    ``cell_type`` attribute), ``result`` (the pretraining's RunResult)."""
    out = tmp_path_factory.mktemp("simulated_pretrained")
    cells = simulate_cells(800, 300, n_types=5, markers_per_type=20, seed=0)
    vocabulary = gene_medians(cells, name="simulated", input_size=64)
    corpus = tokenize(
        cells,
        out=out / "corpus",
        vocabulary=vocabulary,
        cell_attributes=["cell_type"],
        progress=False,
    ).run_dir
    result = pretrain(
        corpus,
        out=out / "run",
        vocabulary=vocabulary,
        max_steps=150,
        batch_size=16,
        learning_rate=3e-3,
        warmup=0.1,
        eval_every=50,
        held_out=0.1,
        device="cpu",
    )
    return SimpleNamespace(cells=cells, vocabulary=vocabulary, corpus=corpus, result=result)
