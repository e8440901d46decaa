"""The teaching task learned end to end: the CNN reaches R2 >= 0.95 where a linear model
cannot, and its first-layer filters read back as the TAT and GCG motifs."""

from __future__ import annotations

import pandas as pd
import pytest

from genoformer.seq import api
from genoformer.seq.tasks import teaching_task


@pytest.fixture(scope="module")
def teaching_runs(tmp_path_factory):
    data = teaching_task(20_000, seed=0)
    out = tmp_path_factory.mktemp("teaching")
    runs = {
        model: api.train(
            data,
            out=out / model,
            model=model,
            epochs=8,
            batch_size=256,
            eval_every=60,
            patience=3,
            device="cpu",
        )
        for model in ("linear", "cnn")
    }
    return out, runs


def test_cnn_learns_what_a_linear_model_cannot(teaching_runs):
    _, runs = teaching_runs
    cnn, linear = runs["cnn"].metrics["r2"], runs["linear"].metrics["r2"]
    print(f"teaching task test R2: cnn {cnn:.3f}, linear {linear:.3f}")
    assert cnn >= 0.95
    assert linear < 0.5


def test_cnn_filters_are_tat_and_gcg(teaching_runs):
    out, _ = teaching_runs
    result = api.interpret(out / "cnn", match_jaspar=False, n_sequences=2, device="cpu")
    filters = pd.read_csv(result.outputs["filters"], sep="\t")
    sharp = filters[filters["information_bits"] >= 4.0]
    assert "TAT" in set(sharp["consensus"])
    assert "GCG" in set(sharp["consensus"])
