"""Views of genotype model runs: ``gwas train`` (models compared, loss, parity or ROC/PR) and
``gwas explain`` (importance under the Manhattan plot, pair heatmap, pairs with their LD).

The importance track and the pair heatmap are the charts ``gwas explain`` draws itself;
LD between the two variants of a pair is computed here from the genotypes the training
run's manifest names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genoformer.engine.figures import to_plotly
from genoformer.engine.runs import read_manifest
from genoformer.gwas.plots.importance import _importance_chart, _pair_chart
from genoformer.report.association import _genotype_columns, _genotype_input
from genoformer.report.page import View, figure_html
from genoformer.report.runs import Run, read_any_table
from genoformer.report.views import loss_view, parity_view, roc_pr_view, table_view

__all__ = ["explain_views", "train_views"]

#: Rows of the importance table (the highest ranked).
TOP_IMPORTANCE = 200


def train_views(run: Run, anchor: str) -> list[View]:
    """The comparison of the models on the test samples, loss curves, parity or ROC/PR."""
    views = []
    comparison = run.table("comparison")
    if comparison is not None:
        views.append(table_view("model comparison (test samples)", comparison, anchor=anchor,
                                kind="comparison"))  # fmt: skip
    loss = loss_view(run)
    if loss is not None:
        views.append(loss)
    predictions = run.table("test_predictions")
    if predictions is not None and "y" in predictions.columns:
        models = [c for c in predictions.columns if c not in ("fid", "iid", "y")]
        y = predictions["y"].to_numpy(dtype=float)
        if np.unique(y[np.isfinite(y)]).size <= 2:
            curves = [(name, y == np.nanmax(y), predictions[name]) for name in models]
            views.append(roc_pr_view(curves, title="ROC and PR (test samples)"))
        else:
            views.append(parity_view(predictions, "y", models, title="parity (test samples)"))
    return views


def _association(run: Run) -> pd.DataFrame | None:
    table = run.table("association")
    if table is not None:
        return table
    source = ((run.results.get("explain") or {}).get("association") or {}).get("source")
    return read_any_table(Path(source)) if source and Path(source).is_file() else None


def _training_run(run: Run) -> Run | None:
    folder = run.arguments.get("run_dir")
    if not isinstance(folder, str) or not (Path(folder) / "manifest.json").is_file():
        return None
    return Run(Path(folder), read_manifest(folder))


def _pair_ld(pairs: pd.DataFrame, genotypes: str | None) -> pd.Series:
    """r2 between the two variants of each pair (NaN where genotypes are missing)."""
    from genoformer.gwas.stats.ld import r2_with

    r2 = pd.Series(np.nan, index=pairs.index)
    if genotypes is None or pairs.empty:
        return r2
    ids = np.unique(np.concatenate([pairs["id_a"].astype(str), pairs["id_b"].astype(str)]))
    columns = _genotype_columns(genotypes, ids)
    if columns is None:
        return r2
    dosages, found = columns
    where = dict(zip(ids[found], range(int(found.sum())), strict=True))
    for i, (a, b) in enumerate(zip(pairs["id_a"].astype(str), pairs["id_b"].astype(str),
                                   strict=True)):  # fmt: skip
        if a in where and b in where:
            r2.iloc[i] = r2_with(dosages[:, where[a]], dosages[:, [where[b]]])[0]
    return r2


def explain_views(run: Run, anchor: str) -> list[View]:
    """Importance tracks under the association, the pair heatmap and tables."""
    importance, pairs = run.table("importance"), run.table("pairs")
    association = _association(run)
    metrics = run.results.get("explain") or {}
    views = []
    methods = run.arguments.get("methods") or []
    if importance is not None and association is not None:
        for method in methods:
            if method not in importance.columns:
                continue
            chart = _importance_chart(
                importance,
                association,
                score=method,
                label=f"importance ({method})",
                null_max=(metrics.get(method) or {}).get("decoy_max"),
            )
            views.append(View(f"importance track: {method}", figure_html(to_plotly(chart),
                              height=560), kind="importance"))  # fmt: skip
    if importance is not None:
        rank = next((c for c in importance.columns if c.endswith("_rank")), None)
        ordered = importance.sort_values(rank, kind="stable") if rank else importance
        views.append(table_view("variant importance", ordered.head(TOP_IMPORTANCE),
                                anchor=anchor, kind="importance-table"))  # fmt: skip
    if pairs is not None and not pairs.empty:
        order = ordered["id"].astype(str).tolist() if importance is not None else None
        chart = _pair_chart(pairs, order=order)
        views.append(View("pair interactions", figure_html(to_plotly(chart), height=560),
                          kind="pairs"))  # fmt: skip
        training = _training_run(run)
        genotypes = _genotype_input(training) if training is not None else None
        tested = pairs[~pairs["null"].astype(bool)] if "null" in pairs.columns else pairs
        shown = tested.assign(ld_r2=_pair_ld(tested, genotypes))
        columns = [c for c in ("id_a", "id_b", "interaction", "score", "p", "q", "called",
                               "assoc_p_a", "assoc_p_b", "ld_r2") if c in shown.columns]  # fmt: skip
        views.append(table_view("pairs (model score, scan p, LD r2 between the two)",
                                shown[columns], anchor=anchor, kind="pairs-table"))  # fmt: skip
    return views
