"""Statistics over perturbation runs: Geneformer's InSilicoPerturberStats outputs, goal-state
shifts, multi-gene groups and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ranksums

from genoformer.cli import main
from genoformer.engine.errors import InputError
from genoformer.sc.perturbation_stats import perturb_stats
from tests.sc.test_perturb import fixture, geneformer_run


def delete_all_tables() -> dict[str, pd.DataFrame]:
    """Geneformer's delete-all values as two perturbation tables: cells h0-h2 (test) and
    h3-h4 (null), as its vs_null fixture splits them."""
    run = geneformer_run("delete_all_first5")
    rows = {"test": [], "null": []}
    for name, part in run["files"].items():
        h = int(name.split("cell_embs_")[1].split("batch")[0])
        for entry in part["entries"]:
            rows["test" if h < 3 else "null"].append(
                {
                    "row": h,
                    "cell_id": run["cells"][h]["cell_id"],
                    "perturbed": entry["perturbed_ensembl"],
                    "symbol": "",
                    "token_ids": str(entry["perturbed"]),
                    "cos_sim": entry["cos_sims"][0],
                }
            )
    return {key: pd.DataFrame(value) for key, value in rows.items()}


def test_vs_null_equals_geneformer(tmp_path):
    tables = delete_all_tables()
    result = perturb_stats(tables["test"], null=tables["null"], out=tmp_path / "stats")
    ours = result.table("stats").set_index("perturbed")
    theirs = pd.read_csv(
        fixture("perturbation/delete_all_vs_null_h012_vs_h34.csv"), index_col=0
    ).set_index("Ensembl_ID")
    assert set(ours.index) == set(theirs.index)  # the genes of the test cells
    ours = ours.loc[theirs.index]
    for column in ("test_avg_shift", "test_vs_null_pval", "test_vs_null_FDR"):
        mine, geneformer = ours[column].to_numpy(), theirs[column.replace("test", "Test", 1)]
        np.testing.assert_allclose(mine, geneformer.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours["null_avg_shift"], theirs["Null_avg_shift"], rtol=1e-6)
    assert (ours["sig"] == theirs["Sig"]).all()
    assert (ours["n_detections_null"] == theirs["N_Detections_null"]).all()


def test_goal_state_shift_tests_each_gene_against_all_shifts(tmp_path):
    rng = np.random.default_rng(0)
    genes = np.repeat(["G1", "G2", "G3"], 12)
    shifts = rng.normal(0, 0.01, genes.size) + (genes == "G1") * 0.05
    table = pd.DataFrame(
        {"perturbed": genes, "symbol": genes, "token_ids": genes, "cos_sim": 0.9}
    ).assign(**{"shift_healthy": shifts})
    result = perturb_stats(
        table, out=tmp_path / "stats", mode="goal_state_shift", goal_state="healthy"
    )
    stats = result.table("stats").set_index("perturbed")
    assert stats.index[0] == "G1" and stats.loc["G1", "sig"] == 1
    expected = ranksums(shifts, shifts[genes == "G2"]).pvalue
    assert stats.loc["G2", "goal_end_vs_random_pval"] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(InputError, match="no shifts towards a goal state 'sick'"):
        perturb_stats(table, out=tmp_path / "bad", mode="goal_state_shift", goal_state="sick")


def test_aggregate_data_of_a_gene_group_and_the_cli(tmp_path, capsys):
    table = pd.DataFrame(
        {
            "row": range(20),
            "cell_id": [f"c{i}" for i in range(20)],
            "perturbed": "ENSG00000254709,ENSG00000134333,ENSG00000118194",
            "symbol": "ENSG00000254709,LDHA,TNNT2",
            "token_ids": "20837,6849,4776",
            "cos_sim": np.linspace(0.6, 0.7, 20),
        }
    )
    result = perturb_stats(table, out=tmp_path / "agg", mode="aggregate_data")
    assert len(result.table("stats")) == 20  # Geneformer: "Length of values (3) does not match"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "sc",
                "perturb-stats",
                str(tmp_path / "agg"),
                "--out",
                str(tmp_path / "x"),
                "--mode",
                "aggregate_data",
            ]
        )
    assert exit_info.value.code == 2
    assert "is not the run directory of `genoformer sc perturb`" in capsys.readouterr().err
    with pytest.raises(InputError, match="vs_null needs a null run"):
        perturb_stats(table, out=tmp_path / "y")


def test_mixture_model_equals_geneformer(tmp_path):
    """All five cells' delete-all values: the same 555 genes in the same order, means,
    impact components, percentages and detections as Geneformer's CSV (whose mixture put
    the impact component first, so the ordering fix changes nothing here)."""
    tables = delete_all_tables()
    every = pd.concat([tables["test"], tables["null"]], ignore_index=True)
    result = perturb_stats(every, out=tmp_path / "mm", mode="mixture_model")
    ours = result.table("stats")
    theirs = pd.read_csv(fixture("perturbation/delete_all_mixture_model.csv"), index_col=0)
    assert ours["perturbed"].tolist() == theirs["Ensembl_ID"].tolist()
    np.testing.assert_allclose(ours["test_avg_shift"], theirs["Test_avg_shift"], rtol=1e-6)
    assert (ours["impact_component"].to_numpy() == theirs["Impact_component"].to_numpy()).all()
    np.testing.assert_allclose(
        ours["impact_component_percent"], theirs["Impact_component_percent"], rtol=1e-6
    )
    assert (ours["n_detections"].to_numpy() == theirs["N_Detections"].to_numpy()).all()
    assert result.metrics["n_impact"] == 252 and not result.metrics["components_reordered"]


def genes_table(means: np.ndarray, cells: int = 3, seed: int = 0) -> pd.DataFrame:
    """A perturbations table of one gene per mean (token ids in the means' order), each
    perturbed in ``cells`` cells with values near its mean."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "row": c,
            "cell_id": f"c{c}",
            "perturbed": f"ENSG{g:011d}",
            "symbol": f"G{g}",
            "token_ids": str(g + 2),
            "cos_sim": float(m + rng.normal(0, 0.001)),
        }
        for g, m in enumerate(means)
        for c in range(cells)
    ]
    return pd.DataFrame(rows)


def test_mixture_model_takes_the_lower_mean_as_impact_whatever_sklearn_orders():
    from sklearn.mixture import GaussianMixture

    from genoformer.sc.perturbation_stats import impact_components

    rng = np.random.default_rng(0)
    means = np.concatenate([rng.normal(0.7, 0.01, 10), rng.normal(0.95, 0.01, 30)])
    fitted = GaussianMixture(n_components=2, random_state=0).fit(means.reshape(-1, 1))
    # scikit-learn puts the high (non-impact) component first on these values: Geneformer's
    # get_impact_component, which takes component 0 as the impact one, calls the 30 genes
    # that barely move impact genes and the 10 that move most not.
    assert fitted.means_[0, 0] > fitted.means_[1, 0]
    assert impact_components(means, fitted).tolist() == [1] * 10 + [0] * 30


def test_mixture_model_on_a_reordered_mixture_and_its_bad_input(tmp_path):
    rng = np.random.default_rng(0)
    means = np.concatenate([rng.normal(0.7, 0.01, 10), rng.normal(0.95, 0.01, 30)])
    result = perturb_stats(genes_table(means), out=tmp_path / "mm", mode="mixture_model")
    stats = result.table("stats")
    assert result.metrics["components_reordered"] and result.metrics["n_impact"] == 10
    impact = stats[stats["impact_component"] == 1]
    assert set(impact["symbol"]) == {f"G{g}" for g in range(10)}
    assert (impact["impact_component_percent"] == 100).all()
    assert stats["impact_component"].is_monotonic_decreasing  # impact genes first
    one = genes_table(np.array([0.8]))
    with pytest.raises(InputError, match="mixture_model needs at least two perturbed genes"):
        perturb_stats(one, out=tmp_path / "one", mode="mixture_model")


def test_aggregate_gene_shifts_of_cell_and_gene_values(tmp_path):
    """Per perturbed gene and affected embedding: mean, population sd and count; the cell
    embedding rows first, then by mean (as Geneformer's isp_aggregate_gene_shifts)."""
    tables = delete_all_tables()
    every = pd.concat([tables["test"], tables["null"]], ignore_index=True)
    result = perturb_stats(every, out=tmp_path / "agg", mode="aggregate_gene_shifts")
    ours = result.table("stats").set_index("perturbed")
    theirs = pd.read_csv(fixture("perturbation/delete_all_mixture_model.csv"), index_col=0)
    theirs = theirs.set_index("Ensembl_ID").loc[ours.index]
    assert (ours["affected"] == "cell_emb").all() and len(ours) == 555
    np.testing.assert_allclose(ours["cosine_sim_mean"], theirs["Test_avg_shift"], rtol=1e-6)
    assert (ours["n_detections"] == theirs["N_Detections"]).all()
    assert ours["cosine_sim_mean"].is_monotonic_increasing
    # With gene shifts (a cell_and_gene run): one row per perturbed and affected gene.
    table = genes_table(np.array([0.8, 0.9]), cells=2)
    gene_shifts = pd.DataFrame(
        {
            "row": [0, 0, 1, 1, 0],
            "cell_id": ["c0", "c0", "c1", "c1", "c0"],
            "perturbed": ["ENSG00000000000"] * 4 + ["ENSG00000000001"],
            "symbol": ["G0"] * 4 + ["G1"],
            "token_ids": ["2"] * 4 + ["3"],
            "affected": ["ENSG00000000001", "ENSG00000000005"] * 2 + ["ENSG00000000000"],
            "affected_symbol": ["G1", "G5", "G1", "G5", "G0"],
            "affected_token": [3, 7, 3, 7, 2],
            "cos_sim": [0.5, 0.9, 0.7, 0.95, 0.99],
        }
    )
    result = perturb_stats(
        table, gene_shifts=gene_shifts, out=tmp_path / "genes", mode="aggregate_gene_shifts"
    )
    stats = result.table("stats")
    assert stats["affected"].tolist()[:2] == ["cell_emb", "cell_emb"]
    g1 = stats[(stats["symbol"] == "G0") & (stats["affected_symbol"] == "G1")].iloc[0]
    assert g1["cosine_sim_mean"] == pytest.approx(0.6) and g1["n_detections"] == 2
    assert g1["cosine_sim_stdev"] == pytest.approx(0.1)  # population sd, as np.std
    assert stats["affected_symbol"].tolist()[2:] == ["G1", "G5", "G0"]


@pytest.fixture
def treatment_run(tmp_path):
    """An in silico treatment of 8 cells: start state a, goal b, alternative c."""
    import datasets

    from genoformer.sc.models import build_model
    from genoformer.sc.perturbation import perturb
    from genoformer.sc.vocabulary import GeneVocabulary
    from tests.sc.test_perturb import small_cells

    vocab = GeneVocabulary.packaged("V1")
    cells = small_cells(vocab, 8, seed=4)
    labels = ["a", "b", "a", "c", "b", "a", "c", "a"]
    corpus = datasets.Dataset.from_dict(
        {"input_ids": cells, "length": [len(c) for c in cells], "state": labels}
    )
    return perturb(
        build_model("tiny", vocab, seed=3),
        corpus,
        out=tmp_path / "run",
        vocabulary=vocab,
        all_genes=True,
        state_attribute="state",
        start_state="a",
        goal_state="b",
        alt_states=("c",),
        progress=False,
    )


def test_goal_state_shift_tests_each_alternative_state_too(treatment_run, tmp_path):
    from genoformer.engine.stats import benjamini_hochberg

    run, test = treatment_run, treatment_run.table("perturbations")
    # The run's alternative states by default, as Geneformer's cell_states_to_model.
    stats = perturb_stats(run, out=tmp_path / "goal", mode="goal_state_shift", goal_state="b")
    table = stats.table("stats")
    assert list(table.columns) == [
        "perturbed", "symbol", "token_ids", "shift_to_goal_end", "shift_to_alt_end_c",
        "goal_end_vs_random_pval", "alt_end_vs_random_pval_c", "n_detections", "goal_end_FDR",
        "alt_end_FDR_c", "sig",
    ]  # fmt: skip
    gene = table.iloc[0]
    shifts = test.loc[test["perturbed"] == gene["perturbed"], "shift_c"].to_numpy()
    assert gene["shift_to_alt_end_c"] == pytest.approx(shifts.mean(), rel=1e-12)
    expected = ranksums(test["shift_c"].to_numpy(), shifts).pvalue
    assert gene["alt_end_vs_random_pval_c"] == pytest.approx(expected, rel=1e-12)
    fdr = benjamini_hochberg(table["alt_end_vs_random_pval_c"].to_numpy())
    np.testing.assert_allclose(table["alt_end_FDR_c"], fdr, rtol=1e-12)
    # None asked for, none given; a state the run lacks is refused, naming its states.
    only = perturb_stats(
        run, out=tmp_path / "only", mode="goal_state_shift", goal_state="b", alt_states=()
    ).table("stats")
    assert not any(c.startswith("shift_to_alt_end") for c in only.columns)
    with pytest.raises(InputError, match=r"alternative state 'd' \(its states: a, b, c\)"):
        perturb_stats(
            run, out=tmp_path / "bad", mode="goal_state_shift", goal_state="b", alt_states=["d"]
        )


def test_the_figures_of_an_in_silico_treatment(treatment_run, tmp_path):
    """goal_state_shift on a run with cell states: the volcano plot, the distributions and
    the states' picture, each as PNG and HTML; vs_null draws its volcano too."""
    run = treatment_run
    result = perturb_stats(run, out=tmp_path / "goal", mode="goal_state_shift", goal_state="b")
    figures = tmp_path / "goal" / "figures"
    for name in ("volcano", "distributions", "states"):
        assert (figures / f"{name}.png").stat().st_size > 10_000
        assert "plotly" in (figures / f"{name}.html").read_text()[:100_000]
        assert f"{name}_png" in result.outputs
    states_page = (figures / "states.html").read_text()
    assert "a (start state)" in states_page and "c (alternative state)" in states_page
    null = perturb_stats(run, null=run, out=tmp_path / "null", mode="vs_null")
    assert (tmp_path / "null" / "figures" / "volcano.png").exists()
    assert "states_png" in null.outputs
    quiet = perturb_stats(run, out=tmp_path / "mm", mode="mixture_model", plots=False)
    assert not (tmp_path / "mm" / "figures").exists() and quiet.metrics["n_rows"] > 2
