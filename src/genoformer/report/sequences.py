"""Views of sequence runs: ``seq train`` / ``seq evaluate`` (metrics, parity or ROC/PR, the
worst predictions, loss curves) and ``seq interpret`` (filter logos with their JASPAR
matches, ISM and gradient x input logos: the pictures and table the run wrote)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genoformer.report.page import View
from genoformer.report.runs import Run
from genoformer.report.views import (
    image_views,
    loss_view,
    parity_view,
    roc_pr_view,
    table_view,
)

__all__ = ["interpret_views", "prediction_views"]

#: Rows of the worst-predictions table.
WORST = 25


def _regression(table: pd.DataFrame, anchor: str, label: str) -> list[View]:
    targets = [c[len("predicted_") :] for c in table.columns if c.startswith("predicted_")]
    targets = [t for t in targets if t in table.columns]
    if not targets:
        return []
    name = targets[0]
    error = (table[f"predicted_{name}"] - table[name]).abs()
    worst = table.assign(abs_error=error).nlargest(WORST, "abs_error")
    return [
        parity_view(table, name, [f"predicted_{name}"], title=f"parity ({label})"),
        table_view(f"worst predictions ({label})", worst, anchor=anchor, kind="worst"),
    ]


def _classification(table: pd.DataFrame, anchor: str, label: str) -> list[View]:
    classes = [c[2:] for c in table.columns if c.startswith("p_")]
    if "label" not in table.columns or not classes:
        return []
    labels = table["label"].astype(str).to_numpy()
    curves = [(name, labels == name, table[f"p_{name}"]) for name in classes]
    truth_p = np.array(
        [
            row[f"p_{t}"] if f"p_{t}" in table else np.nan
            for t, (_, row) in zip(labels, table.iterrows(), strict=True)
        ]  # fmt: skip
    )
    worst = table.assign(p_true_class=truth_p).nsmallest(WORST, "p_true_class")
    return [
        roc_pr_view(curves, title=f"ROC and PR ({label})"),
        table_view(f"worst predictions ({label})", worst, anchor=anchor, kind="worst"),
    ]


def prediction_views(run: Run, anchor: str) -> list[View]:
    """Loss curves, then parity or ROC/PR and the worst predictions of each split written."""
    views = []
    loss = loss_view(run)
    if loss is not None:
        views.append(loss)
    for key in run.outputs():
        if not key.endswith("predictions"):
            continue
        table = run.table(key)
        if table is None:
            continue
        label = key.removesuffix("predictions").strip("_") or "predictions"
        views += _regression(table, anchor, label) or _classification(table, anchor, label)
    return views + image_views(run, [k for k in run.outputs() if k.endswith("confusion")])


def interpret_views(run: Run, anchor: str) -> list[View]:
    """The filters table (consensus, JASPAR matches) and the logos the run drew."""
    views = []
    filters = run.table("filters")
    if filters is not None:
        views.append(table_view("first-layer filters", filters, anchor=anchor, kind="filters"))
    return views + image_views(
        run, ["filter_logos", "filter_heatmaps", "ism", "gradient_x_input", "saliency"]
    )
