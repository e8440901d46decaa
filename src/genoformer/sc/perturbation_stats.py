"""Statistics over the cells of a perturbation run, as Geneformer's InSilicoPerturberStats.

``vs_null``: each perturbed gene's values in the test run against its values in a null run
(Wilcoxon rank-sum, Benjamini-Hochberg FDR over the genes; a gene the null run lacks gets
p = 1, as in Geneformer). ``goal_state_shift``: each gene's shifts towards the goal state
against the pooled shifts of all the run's perturbations (rank-sum, BH FDR).
``aggregate_data``: every cell's value of each perturbation (also for a group of genes
perturbed jointly, where Geneformer's ``aggregate_data`` fails: "Length of values (3) does
not match length of index (20)").
``mixture_model``: a two-component Gaussian mixture (scikit-learn, ``random_state=0``) fitted
to the genes' mean values, each gene and each of its cells assigned to the impact component
or not, as Geneformer's ``isp_stats_mixture_model``, with one deliberate fix: the impact
component is the one with the lower mean (cosine similarity: the larger move), whichever
index scikit-learn gives it; Geneformer takes component 0, which scikit-learn does not order.
``aggregate_gene_shifts``: per perturbed gene (or group) and affected embedding (the cell's,
``cell_emb``, and with a gene embedding mode each affected gene's), the mean, population
standard deviation and number of the cosine similarities, as Geneformer's
``isp_aggregate_gene_shifts``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from genoformer.engine.errors import InputError, option, setting
from genoformer.engine.runs import RunDir, RunResult, read_manifest, write_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["perturb_stats"]

MODES = ("vs_null", "goal_state_shift", "mixture_model", "aggregate_data", "aggregate_gene_shifts")
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
        found = f" (a run of `{manifest['command']}`)" if manifest.get("command") else ""
        raise InputError(
            f"is not the run directory of `genoformer sc perturb`{found}",
            file=path,
            where=None if what == "perturbation" else setting(what),
            fix="pass the --out of a finished `sc perturb` run",
        )
    return pd.read_parquet(table)


#: The arguments of a perturbation run that make its values comparable with another's.
_KIND = ("perturb_type", "emb_mode", "emb_layer", "anchor_gene")


def _check_null_kind(run: Any, null: Any) -> None:
    """The null run perturbs as the test run does (same perturbation type, embedding mode,
    layer and anchor gene), when both are run directories whose manifests say so."""
    kinds = []
    for given in (run, null):
        if not isinstance(given, (str, os.PathLike, RunResult)):
            return  # a table: nothing recorded to compare
        path = Path(given.run_dir if isinstance(given, RunResult) else given)
        arguments = read_manifest(path).get("arguments", {})
        kinds.append({key: arguments.get(key) for key in _KIND})
    test, other = kinds
    if test.get("emb_mode") and other.get("emb_mode"):  # a gene mode gives the same values
        test["emb_mode"] = str(test["emb_mode"]).removesuffix("_and_gene")
        other["emb_mode"] = str(other["emb_mode"]).removesuffix("_and_gene")
    differ = [key for key in _KIND if key in test and test[key] != other[key]]
    if differ:
        key = differ[0]
        raise InputError(
            f"the null run has {key}={other[key]!r} but the test run {key}={test[key]!r}: "
            "its values are not comparable",
            file=Path(null.run_dir if isinstance(null, RunResult) else null),
            where=setting("null"),
            fix=f"give the null run of `sc perturb` with the test run's {key} (other cells, "
            "same perturbations)",
        )


def _gene_shift_table(run: Any, given: pd.DataFrame | None) -> pd.DataFrame | None:
    """The gene shifts of a run of a gene embedding mode (``gene_shifts.parquet``), if any."""
    import pandas as pd

    if given is not None or isinstance(run, pd.DataFrame):
        return given
    path = Path(run.run_dir if isinstance(run, RunResult) else run) / "gene_shifts.parquet"
    return pd.read_parquet(path) if path.exists() else None


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


def _run_path(run: Any) -> Path | None:
    """The run directory ``run`` names (None for a table)."""
    if isinstance(run, RunResult):
        return Path(run.run_dir)
    return Path(run) if isinstance(run, (str, os.PathLike)) else None


def _shift_column(test: pd.DataFrame, state: str, source: Path | None, *, goal: bool) -> str:
    """The run's ``shift_<state>`` column, or bad input naming the states it has."""
    column = f"shift_{state}"
    if column not in test.columns:
        shifts = [c.removeprefix("shift_") for c in test.columns if c.startswith("shift_")]
        role = "a goal state" if goal else "an alternative state"
        raise InputError(
            f"the run has no shifts towards {role} {state!r} "
            + (f"(its states: {', '.join(shifts)})" if shifts else "(it has no cell states)"),
            file=source,
            where=setting("goal_state") if goal else setting("alt_states", flag="--alt-state"),
            fix="run `sc perturb` with --state-attribute/--start-state/--goal-state, and name "
            "its goal state"
            if goal
            else "name states of the run, or none (the run's own alternative states)",
        )
    return column


def _goal_state_shift(
    test: pd.DataFrame, goal: str, alternatives: Sequence[str] = (), source: Path | None = None
) -> pd.DataFrame:
    """Geneformer's ``isp_stats_to_goal_state``: each gene's mean shift towards the goal (and
    each alternative) state, and a rank-sum test of its shifts against the pooled shifts of
    every perturbation, BH FDR over the genes; columns in Geneformer's order."""
    from scipy.stats import ranksums

    from genoformer.engine.stats import benjamini_hochberg

    # (mean shift, p-value, FDR, the run's column) of the goal state, then each alternative
    ends = [("shift_to_goal_end", "goal_end_vs_random_pval", "goal_end_FDR",
             _shift_column(test, goal, source, goal=True))]  # fmt: skip
    ends += [
        (f"shift_to_alt_end_{alt}", f"alt_end_vs_random_pval_{alt}", f"alt_end_FDR_{alt}",
         _shift_column(test, alt, source, goal=False))
        for alt in alternatives
    ]  # fmt: skip
    rows = []
    for (gene, symbol, token), group in test.groupby(_KEYS, sort=False):
        row: dict[str, Any] = {"perturbed": gene, "symbol": symbol, "token_ids": token}
        shifts = {column: group[column].to_numpy() for *_, column in ends}
        row.update({shift: float(np.mean(shifts[column])) for shift, _, _, column in ends})
        for _, pvalue, _, column in ends:
            pooled = test[column].to_numpy()
            row[pvalue] = float(ranksums(pooled, shifts[column], nan_policy="omit").pvalue)
        rows.append({**row, "n_detections": len(group)})
    table = _called(
        rows, "goal_end_vs_random_pval", "shift_to_goal_end", "goal_end_FDR", benjamini_hochberg
    )
    for _, pvalue, fdr, _ in ends[1:]:
        table.insert(
            table.columns.get_loc("sig"), fdr, benjamini_hochberg(table[pvalue].to_numpy())
        )
    return table


def _token_order(table: pd.DataFrame) -> pd.DataFrame:
    """The table's genes (or groups) in Geneformer's order: sorted by token id (a group by
    its tuple of token ids), the order its mixture model is fitted in."""
    keys = table["token_ids"].astype(str).map(lambda t: tuple(int(x) for x in t.split(",")))
    return table.assign(_order=keys).sort_values("_order", kind="stable").drop(columns="_order")


def _gene_means(test: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Each perturbed gene's (or group's) values (float64, NaN left out) and their mean, in
    token order; genes without a value are left out, as Geneformer leaves them out."""
    import pandas as pd

    values: dict[str, np.ndarray] = {}
    rows = []
    for (gene, symbol, token), group in test.groupby(_KEYS, sort=False):
        found = group["cos_sim"].to_numpy(np.float64)
        found = found[~np.isnan(found)]
        if found.size:
            values[gene] = found
            rows.append({"perturbed": gene, "symbol": symbol, "token_ids": token})
    genes = _token_order(pd.DataFrame(rows, columns=_KEYS))
    genes["test_avg_shift"] = [float(np.mean(values[g])) for g in genes["perturbed"]]
    return genes.reset_index(drop=True), values


def impact_components(values: np.ndarray, mixture: Any) -> np.ndarray:
    """1 where a value falls in the impact component of a fitted two-component mixture, else 0.

    As Geneformer's ``get_impact_component``: above the non-impact component's mean is 0,
    below the impact component's mean is 1, between them the mixture's prediction decides.
    The impact component is the one with the lower mean (lower cosine similarity: a larger
    move); Geneformer assumes it is component 0, which scikit-learn does not guarantee."""
    means = mixture.means_[:, 0]
    impact, other = int(np.argmin(means)), int(np.argmax(means))
    values = np.asarray(values, dtype=np.float64)
    found = (mixture.predict(values.reshape(-1, 1)) == impact).astype(np.int64)
    found[values < means[impact]] = 1
    found[values > means[other]] = 0
    return found


def _mixture_model(
    test: pd.DataFrame, source: Path | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    from sklearn.mixture import GaussianMixture

    genes, values = _gene_means(test)
    if len(genes) < 2:
        raise InputError(
            f"mixture_model needs at least two perturbed genes; the run has {len(genes)}",
            file=source,
            where=setting("mode"),
            fix="use a run of --all-genes (or many genes), or aggregate_data for one gene or group",
        )
    means = genes["test_avg_shift"].to_numpy()
    mixture = GaussianMixture(n_components=2, random_state=0).fit(means.reshape(-1, 1))
    genes["impact_component"] = impact_components(means, mixture)
    genes["impact_component_percent"] = [
        float(np.mean(impact_components(values[g], mixture)) * 100) for g in genes["perturbed"]
    ]
    genes["n_detections"] = [len(values[g]) for g in genes["perturbed"]]
    order = np.sort(mixture.means_[:, 0])
    info = {
        "impact_component_mean": float(order[0]),
        "other_component_mean": float(order[1]),
        # True: scikit-learn put the impact component second, where Geneformer's would be
        # the wrong one.
        "components_reordered": bool(mixture.means_[0, 0] > mixture.means_[1, 0]),
    }
    genes = genes.sort_values(
        ["impact_component", "test_avg_shift"], ascending=[False, True], kind="stable"
    )
    return genes, info


def _aggregate_gene_shifts(test: pd.DataFrame, gene_shifts: pd.DataFrame | None) -> pd.DataFrame:
    import pandas as pd

    cell = test[[*_KEYS, "cos_sim"]].assign(affected="cell_emb", affected_symbol="")
    cell["affected_token"] = ""
    parts = [cell]
    if gene_shifts is not None and len(gene_shifts):
        columns = [*_KEYS, "affected", "affected_symbol", "affected_token", "cos_sim"]
        parts.append(gene_shifts[columns].astype({"affected_token": str}))
    values = pd.concat(parts, ignore_index=True)
    values = _token_order(values)
    keys = [*_KEYS, "affected", "affected_symbol", "affected_token"]
    grouped = values.groupby(keys, sort=False)["cos_sim"]
    table = grouped.agg(
        cosine_sim_mean=lambda v: float(np.mean(v.to_numpy(np.float64))),
        cosine_sim_stdev=lambda v: float(np.std(v.to_numpy(np.float64))),
        n_detections="size",
    ).reset_index()
    table["_cell"] = table["affected"] == "cell_emb"
    table = table.sort_values(["_cell", "cosine_sim_mean"], ascending=[False, True], kind="stable")
    return table.drop(columns="_cell").reset_index(drop=True)


def _called(rows: list[dict], pval: str, shift: str, fdr: str, bh: Any) -> pd.DataFrame:
    """The FDR (BH over the genes) and ``sig`` (FDR < 0.05) columns, sorted as Geneformer
    sorts: called genes first, then by shift (largest first), then FDR."""
    import pandas as pd

    table = pd.DataFrame(rows)
    table[fdr] = bh(table[pval].to_numpy()) if len(table) else []
    table["sig"] = (table[fdr] < 0.05).astype(int)
    return table.sort_values(["sig", shift, fdr], ascending=[False, False, True], kind="stable")


def _check_mode(mode: str, null: Any, goal_state: str | None) -> None:
    """A known mode, with what it needs."""
    if mode not in MODES:
        raise InputError(
            f"unknown mode {mode!r}", where=setting("mode"), fix="use " + ", ".join(MODES)
        )
    if mode == "vs_null" and null is None:
        raise InputError(
            "vs_null needs a null run",
            where=setting("null"),
            fix=f"pass {option('null')} RUN (the same perturbations in other cells), or "
            f"another {setting('mode')}",
        )
    if mode == "goal_state_shift" and goal_state is None:
        raise InputError(
            "goal_state_shift needs the goal state",
            where=setting("goal_state"),
            fix=f"pass {option('goal_state')} STATE (the goal state of the `sc perturb` run)",
        )


def perturb_stats(
    run: str | os.PathLike | RunResult | pd.DataFrame,
    *,
    out: str | os.PathLike,
    mode: Literal[
        "vs_null", "goal_state_shift", "mixture_model", "aggregate_data", "aggregate_gene_shifts"
    ] = "vs_null",
    null: str | os.PathLike | RunResult | pd.DataFrame | None = None,
    goal_state: str | None = None,
    alt_states: Sequence[str] | None = None,
    gene_shifts: pd.DataFrame | None = None,
    plots: bool = True,
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
        cell states), ``mixture_model`` (a run of many genes), ``aggregate_data`` or
        ``aggregate_gene_shifts``.
    null
        The null run of ``vs_null``: the same perturbations in other cells.
    goal_state
        The goal state of ``goal_state_shift`` (the run's ``shift_<state>`` column).
    alt_states
        The alternative states of ``goal_state_shift`` (default: the run's), each with its
        ``shift_to_alt_end_<state>``, ``alt_end_vs_random_pval_<state>`` and
        ``alt_end_FDR_<state>`` columns, as Geneformer's.
    gene_shifts
        With a perturbations table as ``run``: its gene shifts (a run directory's
        ``gene_shifts.parquet`` is read by itself), for ``aggregate_gene_shifts``.
    plots
        Draw the pictures in ``out/figures`` (PNG and HTML each): ``volcano`` (shift
        against -log10 FDR; ``vs_null``, ``goal_state_shift``), ``distributions`` (each
        cell's value for the first genes of the table) and, for a run with cell states,
        ``states`` (the states and where the perturbed cells move).
    overwrite
        Replace an earlier run in ``out``.

    Returns
    -------
    RunResult
        ``outputs["stats"]``: one row per perturbed gene (or group) with its mean shift,
        p-value, BH FDR and ``sig`` (FDR < 0.05); for ``mixture_model`` its mean, impact
        component and the percentage of its cells in it; for ``aggregate_data`` one row per
        cell and perturbation; for ``aggregate_gene_shifts`` one row per perturbed gene and
        affected embedding.
    """
    start = time.perf_counter()
    _check_mode(mode, null, goal_state)
    test = _table(run, "perturbation")
    extra: dict[str, Any] = {}
    if mode == "vs_null":
        null_table = _table(null, "null")
        _check_null_kind(run, null)
        stats = _vs_null(test, null_table)
    elif mode == "goal_state_shift":
        alternatives = _alternative_states(run) if alt_states is None else tuple(alt_states)
        stats = _goal_state_shift(test, str(goal_state), alternatives, _run_path(run))
    elif mode == "mixture_model":
        stats, extra = _mixture_model(test, _run_path(run))
    elif mode == "aggregate_gene_shifts":
        stats = _aggregate_gene_shifts(test, _gene_shift_table(run, gene_shifts))
    else:
        stats = test[["row", "cell_id", *_KEYS, "cos_sim"]].copy() if "row" in test else test
    named = {"run": run if isinstance(run, (str, os.PathLike)) else "<table>", "mode": mode}
    named.update(null=str(null) if isinstance(null, (str, os.PathLike)) else None)
    if mode == "goal_state_shift":
        named.update(goal_state=goal_state, alt_states=list(alternatives))
    run_dir = RunDir(out, command="sc perturb-stats", arguments=named, overwrite=overwrite)
    files = {
        "stats": write_table(run_dir.file("stats.parquet"), stats),
        "stats_tsv": write_table(run_dir.file("stats.tsv"), stats),
    }
    if plots:
        files.update(_figures(run, test, stats, mode, goal_state, run_dir))
    metrics: dict[str, Any] = {"mode": mode, "n_rows": len(stats), **extra}
    if "sig" in stats:
        metrics["n_significant"] = int(stats["sig"].sum())
    if "impact_component" in stats:
        metrics["n_impact"] = int(stats["impact_component"].sum())
    metrics["seconds"] = round(time.perf_counter() - start, 3)
    run_dir.record_results("perturb-stats", metrics)
    return run_dir.finish(metrics, files)


#: The volcano plot's shift and FDR columns, by mode.
_VOLCANO = {
    "vs_null": ("test_vs_null_avg_shift", "test_vs_null_FDR"),
    "goal_state_shift": ("shift_to_goal_end", "goal_end_FDR"),
}


def _alternative_states(run: Any) -> tuple[str, ...]:
    """The alternative states of a run with cell states (none for a table)."""
    states = _states_table(run)
    if states is None:
        return ()
    return tuple(states.loc[states["role"] == "alternative", "state"].astype(str))


def _states_table(run: Any) -> pd.DataFrame | None:
    """The states of a run with cell states (``states.parquet``), if ``run`` is a run."""
    import pandas as pd

    if isinstance(run, pd.DataFrame):
        return None
    path = Path(run.run_dir if isinstance(run, RunResult) else run) / "states.parquet"
    return pd.read_parquet(path) if path.exists() else None


def _figures(
    run: Any, test: pd.DataFrame, stats: pd.DataFrame, mode: str, goal: str | None, run_dir: RunDir
) -> dict[str, Path]:
    """The pictures of the statistics (see :mod:`genoformer.sc.perturbation_plots`)."""
    from genoformer.sc import perturbation_plots as plots

    files: dict[str, Path] = {}
    folder = run_dir.file("figures")
    if mode in _VOLCANO and len(stats):
        shift, fdr = _VOLCANO[mode]
        for path in plots.volcano(stats, folder / "volcano", shift=shift, fdr=fdr):
            files[f"volcano_{path.suffix[1:]}"] = path
    column = f"shift_{goal}" if mode == "goal_state_shift" else "cos_sim"
    genes = list(dict.fromkeys(stats["perturbed"])) if "perturbed" in stats else []
    if genes and len(test):
        for path in plots.shift_distributions(test, genes, folder / "distributions", column=column):
            files[f"distributions_{path.suffix[1:]}"] = path
    states = _states_table(run)
    if states is not None and len(test):
        start = str(states.loc[states["role"] == "start", "state"].iloc[0])
        goal = goal or str(states.loc[states["role"] == "goal", "state"].iloc[0])
        if {f"cos_{start}", f"cos_{goal}"} <= set(test.columns):
            means = test.groupby("perturbed", sort=False)[f"shift_{goal}"].mean()
            top = means.sort_values(ascending=False, kind="stable").index.tolist()
            found = plots.state_map(
                test, states, folder / "states", start=start, goal=goal, top=top
            )
            for path in found:
                files[f"states_{path.suffix[1:]}"] = path
    return files
