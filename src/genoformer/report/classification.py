"""Views of cell classification runs: ``sc classify`` (confusion matrix, per-class metrics,
ROC/PR of the tested cells, loss curves of every fold) and ``sc predict`` (the labels given,
and against the corpus's own labels where it has them).

The confusion matrix is drawn from the tables the run wrote (``confusion_matrix*.tsv``); a
``sc predict`` run writes only its predictions, so its matrix is counted from them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genoformer.engine.figures import Axis, Chart, Heatmap, Panel, to_plotly
from genoformer.engine.training import LOSS_TABLE
from genoformer.report.page import View, figure_html
from genoformer.report.runs import Run, read_any_table
from genoformer.report.views import loss_view, roc_pr_view, table_view

__all__ = ["classify_views", "confusion_view", "predict_views", "prediction_columns"]


def prediction_columns(table: pd.DataFrame) -> list[str]:
    """The classes of a predictions table (its ``p_<class>`` columns)."""
    return [c[2:] for c in table.columns if str(c).startswith("p_")]


def confusion_view(counts: pd.DataFrame, *, title: str) -> View:
    """Counts of true (rows) by predicted (columns) class, coloured by the share of the row.

    ``counts``: one row per true class, its name in column ``true``, one column per class.
    """
    classes = [c for c in counts.columns if c != "true"]
    rows = counts["true"].astype(str).tolist()
    z = counts[classes].to_numpy(dtype=float)
    totals = z.sum(axis=1, keepdims=True)
    share = np.divide(z, totals, out=np.zeros_like(z), where=totals > 0)
    hover = [
        [
            f"true {t}<br>predicted {p}<br>{int(n):,} cells ({s:.1%} of {t})"
            for p, n, s in zip(classes, z[i], share[i], strict=True)
        ]
        for i, t in enumerate(rows)
    ]
    # Colour by the share of each true class, so small classes read as well as large ones.
    layer = Heatmap(share, classes, rows, cmap="Blues", vmin=0.0, vmax=1.0,
                    colorbar="share of true class", hover=hover)  # fmt: skip
    panel = Panel([layer], x=Axis("predicted class"), y=Axis("true class"))
    chart = Chart([panel], title=title, subtitle=f"{int(z.sum()):,} cells")
    fig = to_plotly(chart)
    # The counts written in the cells: what a reader compares first.
    fig.data[0].update(text=z.astype(int).astype(str).tolist(), texttemplate="%{text}")
    height = max(360, 120 + 36 * len(rows))
    return View(title, figure_html(fig, height=height), kind="confusion")


def _roc(table: pd.DataFrame, *, title: str) -> list[View]:
    classes = prediction_columns(table)
    if "label" not in table.columns or len(classes) < 2:
        return []
    labels = table["label"].astype(str).to_numpy()
    curves = [(name, labels == name, table[f"p_{name}"].to_numpy()) for name in classes]
    return [roc_pr_view(curves, title=title)]


def _fold_losses(run: Run) -> list[View]:
    """The loss curves of the run (one split) or of each fold (k-fold): the table beside each
    model the manifest names."""
    folders = set()
    for key in run.outputs():
        model = run.output(key) if key.endswith("_model") else None
        if model is not None:
            folders.add(model.parent)
    views = []
    for folder in sorted(folders):
        path = folder / LOSS_TABLE
        if path.is_file():
            name = "" if folder == run.path else f" ({folder.name})"
            views.append(loss_view(run, history=read_any_table(path), title=f"loss curves{name}"))
    return views


def classify_views(run: Run, anchor: str) -> list[View]:
    """Confusion matrix, per-class metrics, ROC/PR of the tested cells, loss curves."""
    views = []
    confusion = run.table("confusion")
    if confusion is not None and "true" in confusion.columns:
        views.append(confusion_view(confusion, title="confusion matrix (tested cells)"))
    per_class = run.table("per_class")
    if per_class is not None:
        views.append(table_view("per-class metrics", per_class, anchor=anchor, kind="per-class"))
    predictions = run.table("predictions")
    if predictions is not None:
        views += _roc(predictions, title="ROC and PR (tested cells, one class against the rest)")
    return views + _fold_losses(run)


def predict_views(run: Run, anchor: str) -> list[View]:
    """The labels given (counts per class), and against the corpus's labels where known."""
    predictions = run.table("predictions")
    if predictions is None or "predicted" not in predictions.columns:
        return []
    counts = predictions["predicted"].astype(str).value_counts().rename_axis("predicted class")
    views = [table_view("cells per predicted class", counts.reset_index(name="cells"),
                        anchor=anchor, kind="predicted-counts")]  # fmt: skip
    if "label" in predictions.columns:
        classes = prediction_columns(predictions)
        known = predictions[predictions["label"].astype(str).isin(classes)]
        if not known.empty:
            table = pd.crosstab(known["label"].astype(str), known["predicted"].astype(str))
            table = table.reindex(index=classes, columns=classes, fill_value=0).dropna(how="all")
            table = table.loc[table.sum(axis=1) > 0]
            counts = table.rename_axis(index="true", columns=None).reset_index()
            views.append(confusion_view(counts, title="confusion matrix (cells with a label)"))
            views += _roc(known, title="ROC and PR (cells with a label)")
    return views
