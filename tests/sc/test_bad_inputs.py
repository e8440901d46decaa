"""Bad inputs of ``genoformer sc ...``: each answers with the line docs/bad-inputs.md shows.

The cases share, per module, a vocabulary of 24 genes, 40 cells of raw counts, the corpus
`sc tokenize` makes of them and a one-step `sc pretrain` run on it; a case copies what it
needs into its own folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anndata as ad
import loompy
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from genoformer.cli import main
from genoformer.sc.vocabulary import GeneVocabulary
from tests.bad_inputs import BadInput, check_case, check_catalogue, write
from tests.sc.test_io import write_10x_h5, write_10x_mtx

N_GENES, N_CELLS = 24, 40
GENES = [f"ENSG{i:011d}" for i in range(N_GENES)]
SYMBOLS = [f"GENE{i}" for i in range(N_GENES)]
#: The module's vocabulary, cells, corpus and pretraining run (set by the ``shared`` fixture).
SHARED: dict[str, Path] = {}


def _counts(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(1.0, size=(N_CELLS, N_GENES)).astype(np.float32)


def _h5ad(
    folder: Path,
    counts: np.ndarray | None = None,
    *,
    var: pd.DataFrame | None = None,
    obs: pd.DataFrame | None = None,
    name: str = "cells.h5ad",
) -> Path:
    counts = _counts() if counts is None else counts
    if var is None:
        var = pd.DataFrame(
            {"ensembl_id": GENES[: counts.shape[1]]}, index=SYMBOLS[: counts.shape[1]]
        )
    if obs is None:
        obs = pd.DataFrame(index=[f"c{i}" for i in range(counts.shape[0])])
    ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var).write_h5ad(folder / name)
    return folder / name


def _with(counts: np.ndarray, row: int, column: int, value: float) -> np.ndarray:
    counts = counts.copy()
    counts[row, column] = value
    return counts


def _n_counts(values: list) -> pd.DataFrame:
    return pd.DataFrame({"n_counts": values}, index=[f"c{i}" for i in range(len(values))])


def _copy(folder: Path, name: str) -> Path:
    """A copy of the shared ``name`` (vocab.json, corpus, pre) in ``folder``."""
    source, target = SHARED[name], folder / SHARED[name].name
    if source.is_dir():
        return Path(shutil.copytree(source, target))
    return Path(shutil.copy(source, target))


def _tokenize(folder: Path, source, *options) -> list:
    return [
        "sc",
        "tokenize",
        source,
        "--out",
        "out",
        "--vocabulary",
        _copy(folder, "vocab"),
        *options,
    ]


def _edit_json(path: Path, **changes) -> Path:
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, **changes}))
    return path


def _loom(folder: Path, row_attrs: dict) -> Path:
    path = folder / "cells.loom"
    loompy.create(
        str(path), _counts().T, row_attrs, {"CellID": np.array([f"c{i}" for i in range(N_CELLS)])}
    )
    return path


def _embed(folder: Path, *options, model: str = "pre/model") -> list:
    _copy(folder, "pre")
    _copy(folder, "corpus")
    return ["sc", "embed", model, "corpus", "--out", "emb", "--device", "cpu", *options]


def _perturb(folder: Path, *options, model: str = "pre/model", corpus: str = "corpus") -> list:
    _copy(folder, "pre")
    if corpus == "corpus":
        _copy(folder, "corpus")
    return ["sc", "perturb", model, corpus, "--out", "run", "--device", "cpu", *options]


def _tokenized(folder: Path, counts: np.ndarray, vocab: GeneVocabulary | None = None) -> str:
    """The cells ``counts`` tokenized (with ``vocab``, default the shared vocabulary) into
    ``folder/cells_corpus``."""
    from genoformer.sc import tokenize

    cells = _h5ad(folder, counts, name="other.h5ad")
    vocab = vocab or GeneVocabulary.load(SHARED["vocab"])
    tokenize(cells, out=folder / "cells_corpus", vocabulary=vocab, progress=False)
    return "cells_corpus"


def _v1_style_vocabulary() -> GeneVocabulary:
    """The shared genes in a vocabulary without <cls>/<eos> (as Geneformer's V1)."""
    shared = GeneVocabulary.load(SHARED["vocab"])
    medians = {gene: 1.0 + i % 5 for i, gene in enumerate(GENES)}
    return GeneVocabulary.from_medians(
        medians,
        name="tiny24v1",
        input_size=32,
        special=("pad", "mask"),
        symbol_to_id=dict(shared.symbol_to_id),
    )


def _first_missing(row: int) -> str:
    """The symbol of a gene cell ``row`` of the shared cells does not express."""
    return SYMBOLS[int(np.flatnonzero(_counts()[row] == 0)[0])]


def _first_of_type(kind: str) -> str:
    """The first row of the shared cells of cell type ``kind``."""
    types = np.random.default_rng(1).choice(["t", "b"], N_CELLS)
    return str(int(np.flatnonzero(types == kind)[0]))


def _stats(folder: Path, run: str, *options) -> list:
    _copy(folder, run)
    return ["sc", "perturb-stats", SHARED[run].name, "--out", "stats", "--no-plots", *options]


def _v1_model(folder: Path) -> str:
    from genoformer.sc.models import build_model

    build_model("tiny", GeneVocabulary.packaged("V1"), seed=0).save_pretrained(folder / "v1model")
    return "v1model"


def _pretrain(folder: Path, *options) -> list:
    _copy(folder, "corpus")
    return ["sc", "pretrain", "corpus", "--out", "pre", "--device", "cpu", *options]


CASES = [
    # ---- expression matrices (sc tokenize)
    BadInput(
        "h5ad without a gene id column (symbols not in the vocabulary)",
        lambda d: _tokenize(d, _h5ad(d, var=pd.DataFrame(index=[f"g{i}" for i in range(N_GENES)]))),
    ),
    BadInput(
        "gene ids that are not in the vocabulary (mouse)",
        lambda d: _tokenize(
            d,
            _h5ad(
                d,
                var=pd.DataFrame(
                    {"ensembl_id": [f"ENSMUSG{i:011d}" for i in range(N_GENES)]}, index=SYMBOLS
                ),
            ),
        ),
    ),
    BadInput(
        "too few of the genes in the vocabulary",
        lambda d: _tokenize(
            d,
            _h5ad(
                d,
                var=pd.DataFrame(
                    {"ensembl_id": GENES[:2] + [f"ENSMUSG{i:011d}" for i in range(N_GENES - 2)]},
                    index=SYMBOLS,
                ),
            ),
        ),
    ),
    BadInput("negative counts", lambda d: _tokenize(d, _h5ad(d, _with(_counts(), 3, 2, -1.0)))),
    BadInput(
        "counts that are not integers (log-normalised)",
        lambda d: _tokenize(d, _h5ad(d, np.log1p(_counts()))),
    ),
    BadInput("a NaN count", lambda d: _tokenize(d, _h5ad(d, _with(_counts(), 5, 0, np.nan)))),
    BadInput(
        "matrix without cells", lambda d: _tokenize(d, _h5ad(d, np.zeros((0, N_GENES), np.float32)))
    ),
    BadInput(
        "matrix without genes",
        lambda d: _tokenize(
            d, _h5ad(d, np.zeros((N_CELLS, 0), np.float32), var=pd.DataFrame(index=[]))
        ),
    ),
    BadInput(
        "no cell expresses a vocabulary gene",
        lambda d: _tokenize(d, _h5ad(d, np.zeros((N_CELLS, N_GENES), np.float32))),
    ),
    BadInput(
        "n_counts missing (NaN) for a cell",
        lambda d: _tokenize(d, _h5ad(d, obs=_n_counts([30.0] * 7 + [np.nan] + [30.0] * 32))),
    ),
    BadInput(
        "n_counts of zero for a cell",
        lambda d: _tokenize(d, _h5ad(d, obs=_n_counts([30.0] * 39 + [0.0]))),
    ),
    BadInput(
        "n_counts as text",
        lambda d: _tokenize(d, _h5ad(d, obs=_n_counts(["many"] * N_CELLS))),
    ),
    BadInput(
        "--vocabulary name that does not exist",
        lambda d: ["sc", "tokenize", _h5ad(d), "--out", "out", "--vocabulary", "V3"],
    ),
    BadInput(
        "--vocabulary file that is not JSON",
        lambda d: (
            write(d / "vocab.json", "genes: 24")
            or ["sc", "tokenize", _h5ad(d), "--out", "out", "--vocabulary", "vocab.json"]
        ),
    ),
    BadInput(
        "--vocabulary JSON that is not a vocabulary",
        lambda d: (
            write(d / "vocab.json", '{"genes": 24}')
            or ["sc", "tokenize", _h5ad(d), "--out", "out", "--vocabulary", "vocab.json"]
        ),
    ),
    BadInput(
        "--dictionaries folder without Geneformer's dictionaries",
        lambda d: (
            (d / "dicts").mkdir()
            or ["sc", "tokenize", _h5ad(d), "--out", "out", "--dictionaries", "dicts"]
        ),
    ),
    BadInput(
        "--gene-id-column that does not exist",
        lambda d: _tokenize(d, _h5ad(d), "--gene-id-column", "gene_ids"),
    ),
    BadInput("--layer that does not exist", lambda d: _tokenize(d, _h5ad(d), "--layer", "counts")),
    BadInput(
        "--attribute that is not an obs column",
        lambda d: _tokenize(d, _h5ad(d), "--attribute", "celltype"),
    ),
    BadInput(
        "--attribute named like a corpus column",
        lambda d: _tokenize(
            d,
            _h5ad(
                d,
                obs=pd.DataFrame(
                    {"length": [1] * N_CELLS}, index=[f"c{i}" for i in range(N_CELLS)]
                ),
            ),
            "--attribute",
            "length",
        ),
    ),
    BadInput(
        "--encoding that does not exist", lambda d: _tokenize(d, _h5ad(d), "--encoding", "onehot")
    ),
    BadInput(
        "--n-bins too few",
        lambda d: _tokenize(d, _h5ad(d), "--encoding", "binned", "--n-bins", "2"),
    ),
    BadInput("--chunk-size 0", lambda d: _tokenize(d, _h5ad(d), "--chunk-size", "0")),
    BadInput("input file that does not exist", lambda d: _tokenize(d, "missing.h5ad")),
    BadInput(
        "input of an unknown file type",
        lambda d: write(d / "cells.csv", "gene,c1\nA,1\n") or _tokenize(d, "cells.csv"),
    ),
    BadInput(
        "directory that is not a 10x matrix",
        lambda d: (d / "cells").mkdir() or _tokenize(d, "cells"),
    ),
    BadInput(
        "h5ad that is not HDF5 (truncated)",
        lambda d: (
            write(d / "cells.h5ad", _h5ad(d).read_bytes()[:200]) or _tokenize(d, "cells.h5ad")
        ),
    ),
    BadInput(
        "loom without gene ids (no row attributes)",
        lambda d: _tokenize(d, _loom(d, {"chromosome": np.array(["1"] * N_GENES)})),
    ),
    BadInput(
        "10x directory without barcodes.tsv",
        lambda d: (
            write_10x_mtx(
                d / "tenx",
                _counts(),
                GENES,
                SYMBOLS,
                [f"c{i}" for i in range(N_CELLS)],
                zipped=False,
            )
            or (d / "tenx" / "barcodes.tsv").unlink()
            or _tokenize(d, "tenx")
        ),
    ),
    BadInput(
        "10x .h5 with negative counts",
        lambda d: (
            write_10x_h5(
                d / "cells.h5",
                _with(_counts(), 1, 1, -2.0),
                GENES,
                SYMBOLS,
                [f"c{i}" for i in range(N_CELLS)],
            )
            or _tokenize(d, "cells.h5")
        ),
    ),
    BadInput(
        "--out that holds other files",
        lambda d: (
            (d / "out").mkdir() or write(d / "out" / "notes.txt", "mine") or _tokenize(d, _h5ad(d))
        ),
    ),
    BadInput(
        "--out that holds a corpus, without --overwrite",
        lambda d: [
            "sc",
            "tokenize",
            _h5ad(d),
            "--out",
            _copy(d, "corpus"),
            "--vocabulary",
            _copy(d, "vocab"),
        ],
    ),
    # ---- sc medians
    BadInput(
        "medians of negative counts",
        lambda d: ["sc", "medians", _h5ad(d, _with(_counts(), 0, 0, -3.0)), "--out", "vocab"],
    ),
    BadInput(
        "medians with n_counts missing for a cell",
        lambda d: [
            "sc",
            "medians",
            _h5ad(d, obs=_n_counts([30.0] * 39 + [np.nan])),
            "--out",
            "vocab",
        ],
    ),
    BadInput(
        "medians of a folder without expression files",
        lambda d: (d / "corpus").mkdir() or ["sc", "medians", "corpus", "--out", "vocab"],
    ),
    # ---- sc pretrain
    BadInput(
        "pretrain on a directory that is not a corpus",
        lambda d: (d / "notcorpus").mkdir() or ["sc", "pretrain", "notcorpus", "--out", "pre"],
    ),
    BadInput(
        "pretrain on a corpus that does not exist",
        lambda d: ["sc", "pretrain", "missing", "--out", "pre"],
    ),
    BadInput(
        "pretrain on a corpus that did not finish",
        lambda d: (
            _edit_json(_copy(d, "corpus") / "manifest.json", status="failed", reason="ValueError")
            and ["sc", "pretrain", "corpus", "--out", "pre", "--device", "cpu"]
        ),
    ),
    BadInput(
        "pretrain --model preset that does not exist", lambda d: _pretrain(d, "--model", "huge")
    ),
    BadInput(
        "pretrain with another vocabulary than the corpus's",
        lambda d: _pretrain(d, "--vocabulary", "V2"),
    ),
    BadInput("pretrain --held-out 1.5", lambda d: _pretrain(d, "--held-out", "1.5")),
    BadInput("pretrain --max-cells 1", lambda d: _pretrain(d, "--max-cells", "1")),
    BadInput(
        "pretrain --scheduler that does not exist", lambda d: _pretrain(d, "--scheduler", "step")
    ),
    BadInput(
        "pretrain into a run with checkpoints, without --resume",
        lambda d: _copy(d, "pre") and _pretrain(d, "--max-steps", "1"),
    ),
    BadInput(
        "pretrain --resume with other arguments",
        lambda d: (
            _copy(d, "pre")
            and _pretrain(d, "--max-steps", "1", "--resume", "--learning-rate", "0.1")
        ),
    ),
    # ---- sc embed
    BadInput(
        "embed with a model whose config.json is damaged",
        lambda d: (cmd := _embed(d)) and write(d / "pre" / "model" / "config.json", "{oops") or cmd,
    ),
    BadInput(
        "embed with truncated weights",
        lambda d: (
            (cmd := _embed(d))
            and write(
                d / "pre" / "model" / "model.safetensors",
                (d / "pre" / "model" / "model.safetensors").read_bytes()[:64],
            )
            or cmd
        ),
    ),
    BadInput(
        "embed with a model folder that does not exist", lambda d: _embed(d, model="models/none")
    ),
    BadInput(
        "embed the model of a pretraining run that did not finish",
        lambda d: (
            (cmd := _embed(d))
            and _edit_json(d / "pre" / "manifest.json", status="interrupted", reason="SIGTERM")
            and cmd
        ),
    ),
    BadInput(
        "embed a corpus that is not one",
        lambda d: (
            _copy(d, "pre")
            and (d / "cells").mkdir()
            or ["sc", "embed", "pre/model", "cells", "--out", "emb"]
        ),
    ),
    BadInput(
        "embed --emb-layer beyond the model's layers", lambda d: _embed(d, "--emb-layer", "-5")
    ),
    BadInput("embed --emb-mode that does not exist", lambda d: _embed(d, "--emb-mode", "gene")),
    BadInput(
        "embed --label that is not a cell attribute", lambda d: _embed(d, "--label", "tissue")
    ),
    BadInput("embed --adata that does not exist", lambda d: _embed(d, "--adata", "cells.h5ad")),
    BadInput(
        "embed into a run already there, without --overwrite",
        lambda d: (
            (cmd := _embed(d))
            and (d / "emb").mkdir() is None
            and write(
                d / "emb" / "manifest.json",
                json.dumps({"command": "sc embed", "status": "complete"}),
            )
            or cmd
        ),
    ),
    # ---- sc perturb
    BadInput("perturb without genes", lambda d: _perturb(d)),
    BadInput(
        "perturb --delete with --overexpress",
        lambda d: _perturb(d, "--delete", "GENE1", "--overexpress", "GENE2"),
    ),
    BadInput(
        "perturb a gene not in the vocabulary (closest symbols)",
        lambda d: _perturb(d, "--delete", "GENE99"),
    ),
    BadInput(
        "perturb a gene named twice",
        lambda d: _perturb(d, "--delete", "GENE1", "--delete", "GENE1"),
    ),
    BadInput(
        "perturb --perturb-type that does not exist",
        lambda d: _perturb(d, "--all-genes", "--perturb-type", "inhibit"),
    ),
    BadInput(
        "perturb --emb-mode that does not exist",
        lambda d: _perturb(d, "--all-genes", "--emb-mode", "gene"),
    ),
    BadInput(
        "perturb --emb-mode cls on a corpus without <cls> (V1)",
        lambda d: _perturb(
            d,
            "--all-genes",
            "--emb-mode",
            "cls",
            corpus=_tokenized(d, _counts(), _v1_style_vocabulary()),
        ),
    ),
    BadInput(
        "perturb --precision fp16", lambda d: _perturb(d, "--all-genes", "--precision", "fp16")
    ),
    BadInput("perturb --batch-size 0", lambda d: _perturb(d, "--all-genes", "--batch-size", "0")),
    BadInput(
        "perturb --cell beyond the corpus", lambda d: _perturb(d, "--all-genes", "--cell", "40")
    ),
    BadInput(
        "perturb --emb-layer beyond the model's layers",
        lambda d: _perturb(d, "--all-genes", "--emb-layer", "-5"),
    ),
    BadInput(
        "perturb with a model of another vocabulary than the corpus's",
        lambda d: _perturb(d, "--delete", "GENE1", model=_v1_model(d)),
    ),
    BadInput(
        "perturb cell states without --state-attribute",
        lambda d: _perturb(d, "--delete", "GENE1", "--start-state", "t", "--goal-state", "b"),
    ),
    BadInput(
        "perturb --state-attribute that is not a cell attribute",
        lambda d: _perturb(
            d,
            "--delete",
            "GENE1",
            "--state-attribute",
            "tissue",
            "--start-state",
            "t",
            "--goal-state",
            "b",
        ),  # fmt: skip
    ),
    BadInput(
        "perturb with the goal state equal to the start state",
        lambda d: _perturb(
            d,
            "--delete",
            "GENE1",
            "--state-attribute",
            "cell_type",
            "--start-state",
            "t",
            "--goal-state",
            "t",
        ),  # fmt: skip
    ),
    BadInput(
        "perturb a state the attribute does not hold",
        lambda d: _perturb(
            d,
            "--delete",
            "GENE1",
            "--state-attribute",
            "cell_type",
            "--start-state",
            "t",
            "--goal-state",
            "nk",
        ),  # fmt: skip
    ),
    BadInput(
        "perturb --cell outside the start state",
        lambda d: _perturb(
            d,
            "--delete",
            "GENE1",
            "--state-attribute",
            "cell_type",
            "--start-state",
            "t",
            "--goal-state",
            "b",
            "--cell",
            _first_of_type("b"),
        ),  # fmt: skip
    ),
    BadInput(
        "perturb --anchor-gene not in the vocabulary",
        lambda d: _perturb(d, "--all-genes", "--anchor-gene", "GENE99"),
    ),
    BadInput(
        "perturb --anchor-gene absent from a selected --cell",
        lambda d: _perturb(d, "--all-genes", "--anchor-gene", _first_missing(0), "--cell", "0"),
    ),
    BadInput(
        "perturb --anchor-gene no cell expresses",
        lambda d: _perturb(
            d,
            "--all-genes",
            "--anchor-gene",
            "GENE5",
            corpus=_tokenized(d, _with(_counts(), slice(None), 5, 0.0)),
        ),
    ),
    BadInput(
        "perturb --anchor-gene also among the genes",
        lambda d: _perturb(d, "--delete", "GENE1", "--delete", "GENE2", "--anchor-gene", "GENE2"),
    ),
    BadInput(
        "perturb into a run already there, without --overwrite or --resume",
        lambda d: _copy(d, "perturb_del").rename(d / "run") and _perturb(d, "--delete", "GENE1"),
    ),
    BadInput(
        "perturb --resume with other arguments",
        lambda d: (
            _copy(d, "perturb_del").rename(d / "run")
            and _perturb(d, "--delete", "GENE1", "--resume", "--chunk-cells", "3")
        ),
    ),
    # ---- sc perturb-stats
    BadInput(
        "perturb-stats --mode that does not exist",
        lambda d: _stats(d, "perturb_del", "--mode", "ranksum"),
    ),
    BadInput("perturb-stats vs_null without --null", lambda d: _stats(d, "perturb_del")),
    BadInput(
        "perturb-stats goal_state_shift without --goal-state",
        lambda d: _stats(d, "perturb_del", "--mode", "goal_state_shift"),
    ),
    BadInput(
        "perturb-stats of a run that is not of sc perturb",
        lambda d: _stats(d, "corpus", "--mode", "aggregate_data"),
    ),
    BadInput(
        "perturb-stats of a perturbation run that did not finish",
        lambda d: (
            _edit_json(_copy(d, "perturb_del") / "manifest.json", status="interrupted")
            and ["sc", "perturb-stats", "perturb_del", "--out", "stats", "--mode", "aggregate_data"]
        ),
    ),
    BadInput(
        "perturb-stats --null that is not a run of sc perturb",
        lambda d: _copy(d, "pre") and _stats(d, "perturb_del", "--null", "pre"),
    ),
    BadInput(
        "perturb-stats --null run of another kind (overexpress against delete)",
        lambda d: _copy(d, "perturb_oe") and _stats(d, "perturb_del", "--null", "perturb_oe"),
    ),
    BadInput(
        "perturb-stats goal_state_shift of a run without cell states",
        lambda d: _stats(d, "perturb_del", "--mode", "goal_state_shift", "--goal-state", "b"),
    ),
    BadInput(
        "perturb-stats mixture_model of a run of one gene",
        lambda d: _stats(d, "perturb_del", "--mode", "mixture_model"),
    ),
    # ---- sc plot-embeddings
    BadInput(
        "plot-embeddings of a table that does not exist",
        lambda d: [
            "sc",
            "plot-embeddings",
            "cell_embeddings.parquet",
            "--label",
            "cell_type",
            "--out",
            "plots",
        ],
    ),
    BadInput(
        "plot-embeddings --label that is not a column",
        lambda d: (
            write(d / "cells.csv", "cell_id,cell_type,0,1\nc1,t,0.1,0.2\nc2,b,0.3,0.1\n")
            or ["sc", "plot-embeddings", "cells.csv", "--label", "tissue", "--out", "plots"]
        ),
    ),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict[str, Path]:
    """The vocabulary, cells, corpus and one-step pretraining run the cases copy."""
    folder = tmp_path_factory.mktemp("sc_bad_inputs")
    medians = {gene: 1.0 + i % 5 for i, gene in enumerate(GENES)}
    symbols = dict(zip(SYMBOLS, GENES, strict=True))
    vocab = GeneVocabulary.from_medians(medians, name="tiny24", input_size=32, symbol_to_id=symbols)
    SHARED["vocab"] = vocab.save(folder / "vocab.json")
    types = np.random.default_rng(1).choice(["t", "b"], N_CELLS)
    obs = pd.DataFrame({"cell_type": types}, index=[f"c{i}" for i in range(N_CELLS)])
    cells = _h5ad(folder, obs=obs)
    runs = {
        "corpus": ["sc", "tokenize", cells, "--out", folder / "corpus", "--vocabulary", SHARED["vocab"], "--attribute", "cell_type"],
        "pre": ["sc", "pretrain", folder / "corpus", "--out", folder / "pre", "--max-steps", "1", "--batch-size", "8", "--held-out", "0.1", "--device", "cpu"],
        "perturb_del": ["sc", "perturb", folder / "pre" / "model", folder / "corpus", "--out", folder / "perturb_del", "--delete", "GENE1", "--device", "cpu"],
        "perturb_oe": ["sc", "perturb", folder / "pre" / "model", folder / "corpus", "--out", folder / "perturb_oe", "--overexpress", "GENE1", "--device", "cpu"],
    }  # fmt: skip
    for name, args in runs.items():
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        assert done.value.code in (0, None), f"the shared {name} failed"
        SHARED[name] = folder / name
    return SHARED


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, shared, tmp_path, capsys):
    check_case(case, tmp_path, capsys, "sc")


def test_catalogue():
    check_catalogue(CASES, "sc")


def test_a_corpus_keeps_its_custom_vocabulary(shared):
    """`sc tokenize` with a vocabulary of `sc medians` leaves a copy in the corpus, which
    `sc pretrain` (the shared run, given no --vocabulary) found."""
    copy = GeneVocabulary.load(shared["corpus"] / "vocabulary.json")
    assert copy == GeneVocabulary.load(shared["vocab"])
    manifest = json.loads((shared["pre"] / "manifest.json").read_text())
    assert manifest["status"] == "complete"
