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
