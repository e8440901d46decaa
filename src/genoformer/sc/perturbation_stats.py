"""Statistics over the cells of a perturbation run, as Geneformer's InSilicoPerturberStats.

``vs_null``: each perturbed gene's values in the test run against its values in a null run
(Wilcoxon rank-sum, Benjamini-Hochberg FDR over the genes; a gene the null run lacks gets
p = 1, as in Geneformer). ``goal_state_shift``: each gene's shifts towards the goal state
against the pooled shifts of all the run's perturbations (rank-sum, BH FDR).
``aggregate_data``: every cell's value of each perturbation (also for a group of genes
perturbed jointly, where Geneformer's ``aggregate_data`` fails: "Length of values (3) does
not match length of index (20)").
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from genoformer.engine.errors import InputError
from genoformer.engine.runs import RunDir, RunResult, read_manifest, write_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["perturb_stats"]

MODES = ("vs_null", "goal_state_shift", "aggregate_data")
_KEYS = ["perturbed", "symbol", "token_ids"]


def _table(run: str | os.PathLike | RunResult | pd.DataFrame, what: str) -> pd.DataFrame:
    """The perturbations table of a finished ``sc perturb`` run (or the table itself)."""
    import pandas as pd

    if isinstance(run, pd.DataFrame):
        return run
    path = Path(run.run_dir if isinstance(run, RunResult) else run)
    manifest = read_manifest(path, what=f"{what} run")
    table = path / "perturbations.parquet"
    if manifest.get("command") != "sc perturb" or not table.exists():
        raise InputError(
            "is not the run directory of `genoformer sc perturb`",
            file=path,
            fix="pass the --out of a finished `sc perturb` run",
        )
    return pd.read_parquet(table)


def _vs_null(test: pd.DataFrame, null: pd.DataFrame) -> pd.DataFrame:
    from scipy.stats import ranksums

    from genoformer.engine.stats import benjamini_hochberg

    nulls = {key: g["cos_sim"].to_numpy() for key, g in null.groupby("perturbed")}
    rows = []
    for (gene, symbol, token), group in test.groupby(_KEYS, sort=False):
        shifts = group["cos_sim"].to_numpy()
        against = nulls.get(gene, np.empty(0))
        p = ranksums(shifts, against, nan_policy="omit").pvalue if against.size else np.nan
        mean_null = float(np.mean(against)) if against.size else np.nan
        rows.append(
            {
                "perturbed": gene,
                "symbol": symbol,
                "token_ids": token,
                "test_avg_shift": float(np.mean(shifts)),
                "null_avg_shift": mean_null,
                "test_vs_null_avg_shift": float(np.mean(shifts)) - mean_null,
                "test_vs_null_pval": 1.0 if np.isnan(p) else float(p),
                "n_detections_test": len(shifts),
                "n_detections_null": int(against.size),
            }
        )
    return _called(
        rows, "test_vs_null_pval", "test_vs_null_avg_shift", "test_vs_null_FDR", benjamini_hochberg
    )


def _goal_state_shift(test: pd.DataFrame, goal: str) -> pd.DataFrame:
    from scipy.stats import ranksums

    from genoformer.engine.stats import benjamini_hochberg

    column = f"shift_{goal}"
    if column not in test.columns:
        raise InputError(
            f"the run has no shifts towards a goal state {goal!r} (columns: "
            + ", ".join(c for c in test.columns if c.startswith("shift_"))
            + ")",
            where="goal_state",
            fix="run `sc perturb` with --state-attribute/--start-state/--goal-state, and name "
            "its goal state",
        )
    pooled = test[column].to_numpy()
    rows = []
    for (gene, symbol, token), group in test.groupby(_KEYS, sort=False):
        shifts = group[column].to_numpy()
        rows.append(
            {
                "perturbed": gene,
                "symbol": symbol,
                "token_ids": token,
                "shift_to_goal_end": float(np.mean(shifts)),
                "goal_end_vs_random_pval": float(
                    ranksums(pooled, shifts, nan_policy="omit").pvalue
                ),
                "n_detections": len(shifts),
            }
        )
    return _called(
        rows, "goal_end_vs_random_pval", "shift_to_goal_end", "goal_end_FDR", benjamini_hochberg
    )


def _called(rows: list[dict], pval: str, shift: str, fdr: str, bh: Any) -> pd.DataFrame:
    """The FDR (BH over the genes) and ``sig`` (FDR < 0.05) columns, sorted as Geneformer
    sorts: called genes first, then by shift (largest first), then FDR."""
    import pandas as pd

    table = pd.DataFrame(rows)
    table[fdr] = bh(table[pval].to_numpy()) if len(table) else []
    table["sig"] = (table[fdr] < 0.05).astype(int)
    return table.sort_values(["sig", shift, fdr], ascending=[False, False, True], kind="stable")


def perturb_stats(
    run: str | os.PathLike | RunResult | pd.DataFrame,
    *,
    out: str | os.PathLike,
    mode: Literal["vs_null", "goal_state_shift", "aggregate_data"] = "vs_null",
    null: str | os.PathLike | RunResult | pd.DataFrame | None = None,
    goal_state: str | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Statistics over the cells of an ``sc perturb`` run.

    Parameters
    ----------
    run
        The run directory of ``sc perturb`` (or its result, or its perturbations table).
    out
        The run directory of the statistics: ``stats.parquet`` / ``.tsv``, ``manifest.json``.
    mode
        ``vs_null`` (needs ``null``), ``goal_state_shift`` (needs ``goal_state``, a run with
        cell states) or ``aggregate_data``.
    null
        The null run of ``vs_null``: the same perturbations in other cells.
    goal_state
        The goal state of ``goal_state_shift`` (the run's ``shift_<state>`` column).
    overwrite
        Replace an earlier run in ``out``.

    Returns
    -------
    RunResult
        ``outputs["stats"]``: one row per perturbed gene (or group) with its mean shift,
        p-value, BH FDR and ``sig`` (FDR < 0.05); for ``aggregate_data`` one row per cell
        and perturbation.
    """
    start = time.perf_counter()
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}", where="mode", fix="use " + ", ".join(MODES))
    if mode == "vs_null" and null is None:
        raise InputError("vs_null needs a null run", where="null", fix="pass --null RUN")
    if mode == "goal_state_shift" and goal_state is None:
        raise InputError(
            "goal_state_shift needs the goal state", where="goal_state", fix="pass --goal-state"
        )
    test = _table(run, "perturbation")
    if mode == "vs_null":
        stats = _vs_null(test, _table(null, "null"))
    elif mode == "goal_state_shift":
        stats = _goal_state_shift(test, str(goal_state))
    else:
        stats = test[["row", "cell_id", *_KEYS, "cos_sim"]].copy() if "row" in test else test
    named = {"run": run if isinstance(run, (str, os.PathLike)) else "<table>", "mode": mode}
    named.update(null=str(null) if isinstance(null, (str, os.PathLike)) else None)
    run_dir = RunDir(out, command="sc perturb-stats", arguments=named, overwrite=overwrite)
    files = {
        "stats": write_table(run_dir.file("stats.parquet"), stats),
        "stats_tsv": write_table(run_dir.file("stats.tsv"), stats),
    }
    metrics: dict[str, Any] = {"mode": mode, "n_rows": len(stats)}
    if "sig" in stats:
        metrics["n_significant"] = int(stats["sig"].sum())
    metrics["seconds"] = round(time.perf_counter() - start, 3)
    run_dir.record_results("perturb-stats", metrics)
    return run_dir.finish(metrics, files)
