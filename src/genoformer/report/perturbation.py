"""Views of in silico perturbation statistics (``sc perturb-stats``): the volcano (mean shift
of each perturbed gene against -log10 of its FDR, called genes coloured) and the table.

The columns are the ones the run wrote, as Geneformer's InSilicoPerturberStats names them:
``test_vs_null_avg_shift`` / ``test_vs_null_FDR`` (``vs_null``) or ``shift_to_goal_end`` /
``goal_end_FDR`` (``goal_state_shift``); ``aggregate_data`` has no test, so no volcano.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genoformer.engine.figures import Axis, Chart, Panel, RefLine, Scatter, to_plotly
from genoformer.report.page import View, figure_html
from genoformer.report.runs import Run
from genoformer.report.views import table_view

__all__ = ["VOLCANO_COLUMNS", "perturb_stats_views", "volcano_view"]

#: (shift, FDR, p-value, what the shift is) of each mode that tests.
VOLCANO_COLUMNS = (
    ("test_vs_null_avg_shift", "test_vs_null_FDR", "test_vs_null_pval", "shift vs null"),
    ("shift_to_goal_end", "goal_end_FDR", "goal_end_vs_random_pval", "shift to goal state"),
)
#: Rows of the statistics table on the page (the run's own order: called genes first).
TOP_ROWS = 500
CALLED, OTHER = "#d62728", "#9e9e9e"


def volcano_view(stats: pd.DataFrame, shift: str, fdr: str, p: str, what: str) -> View:
    """Shift against -log10 FDR, one point per perturbed gene; hover its name and numbers."""
    names = (stats["symbol"] if "symbol" in stats else stats["perturbed"]).astype(str)
    x = stats[shift].to_numpy(dtype=float)
    # An FDR of 0 (a p-value below double precision) is drawn at the highest one shown.
    q = stats[fdr].to_numpy(dtype=float)
    y = -np.log10(np.clip(q, np.nextafter(0, 1), 1.0))
    called = (stats["sig"].astype(bool) if "sig" in stats else pd.Series(q < 0.05)).to_numpy()
    hover = [
        f"<b>{n}</b> ({g})<br>{what} {s:.4g}<br>p {pv:.3g}<br>FDR {f:.3g}"
        for n, g, s, pv, f in zip(names, stats["perturbed"].astype(str), x,
                                  stats[p].to_numpy(dtype=float), q, strict=True)
    ]  # fmt: skip
    hover = np.asarray(hover, dtype=object)
    layers = [
        Scatter(x[~called], y[~called], OTHER, size=16, alpha=0.7,
                label=f"not called ({(~called).sum():,})", hover=list(hover[~called])),
        Scatter(x[called], y[called], CALLED, size=20, label=f"FDR < 0.05 ({called.sum():,})",
                hover=list(hover[called]), front=True),
    ]  # fmt: skip
    panel = Panel(
        layers,
        lines=[RefLine(-np.log10(0.05), color="grey", dash="dash", label="FDR 0.05")],
        x=Axis(what, grid=True),
        y=Axis("-log10 FDR", grid=True, from_zero=True),
    )
    chart = Chart([panel], title="perturbation volcano", subtitle=f"{len(stats):,} perturbed")
    return View("perturbation volcano", figure_html(to_plotly(chart), height=500), kind="volcano")


def perturb_stats_views(run: Run, anchor: str) -> list[View]:
    """The volcano of a testing mode, then the statistics table."""
    stats = run.table("stats", "stats_tsv")
    if stats is None or stats.empty:
        return []
    views = []
    for shift, fdr, p, what in VOLCANO_COLUMNS:
        if {shift, fdr, p, "perturbed"} <= set(stats.columns):
            views.append(volcano_view(stats, shift, fdr, p, what))
            break
    title = f"perturbation statistics (first {TOP_ROWS:,} of {len(stats):,})"
    if len(stats) <= TOP_ROWS:
        title = "perturbation statistics"
    views.append(table_view(title, stats.head(TOP_ROWS), anchor=anchor, kind="perturb-stats"))
    return views
