"""explain(): errors, the figures it draws, and the whole run on a trained model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from genoformer.engine.errors import InputError
from genoformer.gwas.model.explain import explain
from genoformer.gwas.plots.importance import (
    importance_track,
    importance_track_html,
    pair_heatmap,
    pair_heatmap_html,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def trained_like(tmp_path):
    """A directory with the files a training run leaves (contents unread by the checks)."""
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "variants.tsv").write_text("column\tid\n")
    return run


def test_run_directory_without_a_model(tmp_path):
    with pytest.raises(InputError, match="no such run directory"):
        explain(tmp_path / "nowhere", out=tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no trained model here") as error:
        explain(tmp_path / "empty", out=tmp_path / "out")
    assert "empty" in str(error.value) and "gwas train" in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"methods": ("ig", "shap")}, "unknown attribution method 'shap'"),
        ({"methods": ()}, "no attribution method"),
        ({"top_pairs": 1}, "top_pairs is 1"),
        ({"max_samples": 0}, "max_samples is 0"),
        ({"substitution_budget": 0}, "substitution_budget is 0"),
        ({"pair_samples": 0}, "pair_samples is 0"),
    ],
)
def test_bad_arguments(trained_like, tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        explain(trained_like, out=tmp_path / "out", **kwargs)


def test_bad_truth_table(trained_like, tmp_path):
    with pytest.raises(InputError, match="no such truth table"):
        explain(trained_like, out=tmp_path / "out", truth=tmp_path / "none.tsv")
    bad = tmp_path / "bad.truth.tsv"
    bad.write_text("snp\teffect\nrs1\t0.5\n")
    with pytest.raises(InputError, match="lacks column\\(s\\) id, kind"):
        explain(trained_like, out=tmp_path / "out", truth=bad)


@pytest.fixture
def tables():
    rng = np.random.default_rng(0)
    n = 200
    chrom = np.repeat(["2", "1", "10"], [80, 70, 50])
    pos = np.concatenate([np.sort(rng.integers(1, 10**6, k)) for k in (80, 70, 50)])
    ids = [f"rs{i}" for i in range(n)]
    assoc = pd.DataFrame(
        {"#CHROM": chrom, "POS": pos, "ID": ids, "REF": "A", "ALT": "G", "A1": "G",
         "TEST": "ADD", "BETA": rng.normal(size=n), "P": rng.uniform(size=n)}
    )  # fmt: skip
    assoc.loc[5, "P"] = 1e-12
    importance = pd.DataFrame(
        {"id": ids + ["decoy0"], "chrom": list(chrom) + ["1"], "pos": list(pos) + [pos[0]],
         "is_decoy": [False] * n + [True], "ig": np.r_[rng.exponential(size=n), 50.0],
         "ig_p": np.r_[rng.uniform(size=n), 0.5], "ig_q": np.r_[np.ones(n), 1.0]}
    )  # fmt: skip
    importance.loc[7, ["ig", "ig_p", "ig_q"]] = [9.0, 0.001, 0.01]
    pairs = pd.DataFrame(
        {"id_a": ["rs7", "rs7", "rs5", "rs7"], "id_b": ["rs5", "rs9", "rs9", "decoy0"],
         "null": [False, False, False, True], "interaction": [0.8, -0.1, 0.05, 0.3],
         "p": [0.001, 0.4, 0.6, 0.2], "q": [0.003, 0.6, 0.6, 0.4]}
    )  # fmt: skip
    return importance, assoc, pairs


def test_importance_track_figures(tables, tmp_path):
    importance, assoc, _ = tables
    files = importance_track(importance, assoc, tmp_path / "track.png", score="ig", null_max=4.0)
    assert [f.suffix for f in files] == [".png", ".pdf"]
    assert files[0].read_bytes().startswith(PNG_MAGIC)
    page = importance_track_html(
        importance, assoc, tmp_path / "track.html", score="ig", label="mean |IG|", null_max=4.0
    ).read_text()
    # Hover text of the called variant: id, importance, its p and FDR, association p.
    assert "rs7" in page and "empirical p 0.001" in page and "FDR 0.01" in page
    assert "association p 1e-12" in page
    # Decoys have no place on the genome: not drawn.
    assert "decoy0" not in page


def test_importance_track_shares_one_genome_axis(tables):
    from genoformer.gwas.plots.importance import _importance_tracks

    importance, assoc, _ = tables
    top, bottom, names, _ = _importance_tracks(importance, assoc, "ig")
    assert names == ["1", "2", "10"]
    x_top = dict(zip(top["id"], top["x"], strict=True))
    x_bottom = dict(zip(bottom["id"], bottom["x"], strict=True))
    assert all(x_top[i] == x for i, x in x_bottom.items())


def test_pair_heatmap(tables, tmp_path):
    _, _, pairs = tables
    files = pair_heatmap(pairs, tmp_path / "pairs.png", order=["rs9", "rs7"])
    assert files[0].read_bytes().startswith(PNG_MAGIC)
    page = pair_heatmap_html(pairs, tmp_path / "pairs.html", order=["rs9", "rs7"]).read_text()
    assert "interaction 0.8" in page and "FDR 0.003" in page
    assert "decoy0" not in page  # null pairs are the calibration, not the result


def test_explain_end_to_end(tmp_path):
    """A simulated cohort with additive and epistatic variants, trained and explained."""
    train_module = pytest.importorskip("genoformer.gwas.model.training")
    from genoformer.gwas.io.simulate import simulate

    sim = simulate(
        tmp_path / "cohort", n_samples=300, n_variants=120, n_chromosomes=2, n_causal=4,
        epistatic_pairs=1, heritability=0.8, seed=3,
    )  # fmt: skip
    train_module.train(
        sim.outputs["prefix"], sim.outputs["pheno"], out=tmp_path / "train", trait="quant",
        epochs=3, baselines_to_fit=(), device="cpu", seed=0,
    )  # fmt: skip
    result = explain(
        tmp_path / "train", out=tmp_path / "explain", truth=sim.outputs["truth"],
        methods=("saliency", "ig", "substitution"), top_pairs=4, null_pairs=40,
        substitution_budget=60, ig_steps=8, max_samples=40, pair_samples=24, progress=False,
    )  # fmt: skip
    out = tmp_path / "explain"
    table = pd.read_csv(out / "importance.tsv", sep="\t")
    assert {"ig", "ig_p", "ig_q", "substitution", "substitution_q", "assoc_p"} <= set(table)
    decoys = table["is_decoy"].astype(bool)
    assert decoys.any() and (~decoys).sum() == 120
    # The screened substitution leaves the unscreened real variants at p = 1.
    assert np.isnan(table["substitution"]).sum() == len(table) - 60
    assert (table.loc[np.isnan(table["substitution"]) & ~decoys, "substitution_p"] == 1).all()
    pairs = pd.read_csv(out / "pairs.tsv", sep="\t")
    assert (~pairs["null"]).sum() == 6 and pairs["null"].sum() == 40
    metrics = result.metrics
    for method in ("saliency", "ig", "substitution"):
        assert metrics[method]["decoys_called_share"] <= 0.05
    truth = metrics["truth"]
    assert truth["causal_in_model"] == 6
    assert {"ig", "substitution", "association"} <= set(truth)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    for name in ("importance_ig.png", "importance_ig.html", "pairs_heatmap.html"):
        assert (out / name).exists()


def test_truth_recall_ranks_the_association_over_every_tested_variant():
    """The association ranking is the GWAS's, over every variant tested, not only the
    model's; recall counts every causal variant of the truth, in the model or not."""
    from genoformer.gwas.model.explain import truth_recall

    importance = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d_decoy"],
            "is_decoy": [False, False, False, True],
            "substitution": [3.0, 2.0, 0.1, 0.2],
            "substitution_q": [0.01, 0.02, 0.9, np.nan],
            "substitution_rank": [1, 2, 3, np.nan],
            "assoc_p": [1e-9, 0.5, 0.3, np.nan],
        }
    )
    association = pd.DataFrame(
        {"ID": ["a", "b", "c", "x", "y"], "P": [1e-9, 0.5, 0.3, 1e-12, 1e-10]}
    )
    truth = pd.DataFrame(
        {"id": ["a", "b", "e"], "kind": ["additive", "epistatic", "epistatic"], "pair": [0, 1, 1]}
    )
    pairs = pd.DataFrame({"id_a": ["a"], "id_b": ["b"], "null": [False], "interaction": [0.0],
                          "p": [0.5], "q": [0.5], "called": [False]})  # fmt: skip
    out = truth_recall(
        importance, pairs, truth, methods=["substitution"], association=association, top=2
    )
    assert out["causal"] == 3 and out["causal_in_model"] == 2
    assert out["association_variants"] == 5
    # GWAS top 2: x and y (not causal); model top 2: a and b.
    assert out["association"]["causal_in_top"] == 0
    assert out["substitution"]["causal_in_top"] == 2
    assert out["substitution"]["recall"] == pytest.approx(2 / 3)
    assert out["substitution"]["epistatic_in_top"] == 1
    assert out["association"]["called"] == 3  # x, y and a at FDR 5%
    [pair] = out["epistatic_pairs"]
    assert pair["id_a"] == "b" and pair["scanned"] is False  # b x e: e is not in the model
