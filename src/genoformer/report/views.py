"""Views every kind of run can have: loss curves, parity, ROC/PR, tables, the run's pictures.

Each figure is an :class:`~genoformer.engine.figures.Chart` drawn by plotly
(:func:`~genoformer.engine.figures.to_plotly`), the way every page of genoformer is drawn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from genoformer.engine.figures import Axis, Chart, Line, Panel, Scatter, palette, to_plotly
from genoformer.engine.metrics import regression_metrics
from genoformer.engine.plots import EVAL_COLOR, TRAIN_COLOR
from genoformer.report.page import View, figure_html, image_html, table_html
from genoformer.report.runs import Run

__all__ = ["image_views", "loss_view", "parity_view", "roc_pr_view", "table_view"]

#: Points of a parity plot past which a sample of them is drawn (seeded).
MAX_PARITY_POINTS = 20_000


def loss_view(
    run: Run, *, history: pd.DataFrame | None = None, title: str = "loss curves"
) -> View | None:
    """Train and validation loss against the step, from the run's loss table (or
    ``history``, a loss table the run wrote elsewhere, such as a fold's)."""
    if history is None:
        history = run.table("loss_table")
    if history is None or "step" not in history.columns:
        return None
    lines = []
    for column, name, colour in (
        ("train_loss", "train", TRAIN_COLOR),
        ("eval_loss", "validation", EVAL_COLOR),
    ):
        if column in history.columns:
            rows = history[["step", column]].dropna()
            if not rows.empty:
                lines.append(
                    Line(rows["step"].tolist(), rows[column].tolist(), color=colour, label=name)
                )
    # A single evaluation is drawn as a marker too, since a line needs two points.
    markers = [
        Scatter(np.asarray(line.x), np.asarray(line.y), line.color, size=36)
        for line in lines
        if len(line.x) == 1
    ]
    panel = Panel([*lines, *markers], x=Axis("step", grid=True), y=Axis("loss", grid=True))
    chart = Chart([panel], title=title, subtitle=run.command)
    return View(title, figure_html(to_plotly(chart), height=380), kind="loss")


def parity_view(
    table: pd.DataFrame, truth: str, predicted: list[str], *, title: str = "parity"
) -> View:
    """Predicted against measured, one colour per prediction column, R2 in the legend."""
    if len(table) > MAX_PARITY_POINTS:
        table = table.sample(MAX_PARITY_POINTS, random_state=0)
    y = table[truth].to_numpy(dtype=float)
    layers, lows, highs = [], [np.nanmin(y)], [np.nanmax(y)]
    for column, colour in zip(predicted, palette(len(predicted)), strict=True):
        value = table[column].to_numpy(dtype=float)
        r2 = regression_metrics(y, value)["r2"]
        hover = [f"measured {a:.4g}<br>predicted {b:.4g}" for a, b in zip(y, value, strict=True)]
        layers.append(
            Scatter(
                y, value, colour, size=16, alpha=0.6, label=f"{column} (R2 {r2:.3f})", hover=hover
            )  # fmt: skip
        )
        lows.append(np.nanmin(value))
        highs.append(np.nanmax(value))
    low, high = float(min(lows)), float(max(highs))
    layers.append(Line([low, high], [low, high], color="grey", dash="dash", label="y = x"))
    panel = Panel(layers, x=Axis(f"measured {truth}", grid=True), y=Axis("predicted", grid=True))
    chart = Chart([panel], title=title)
    return View(title, figure_html(to_plotly(chart), height=460), kind="parity")


def roc_pr_view(curves: list[tuple[str, np.ndarray, np.ndarray]], *, title: str) -> View:
    """ROC (top) and precision-recall (bottom) curves of ``(name, positive, score)`` each
    (one class against the rest, or one model's score)."""
    roc, pr = [], []
    for (name, positive, score), colour in zip(curves, palette(len(curves)), strict=True):
        positive = np.asarray(positive, dtype=bool)
        if positive.all() or not positive.any():
            continue
        score = np.asarray(score, dtype=float)
        fpr, tpr, _ = roc_curve(positive, score)
        precision, recall, _ = precision_recall_curve(positive, score)
        roc.append(Line(fpr.tolist(), tpr.tolist(), color=colour, label=str(name)))
        pr.append(Line(recall.tolist(), precision.tolist(), color=colour, dash="dot"))
    roc.append(Line([0, 1], [0, 1], color="grey", dash="dash"))
    panels = [
        Panel(roc, x=Axis(grid=True), y=Axis("true positive rate (ROC)", grid=True)),
        Panel(pr, x=Axis("false positive rate / recall"), y=Axis("precision (PR)", grid=True)),
    ]
    chart = Chart(panels, title=title)
    return View(title, figure_html(to_plotly(chart), height=620), kind="roc")


def table_view(title: str, table: pd.DataFrame, *, anchor: str, kind: str = "table") -> View:
    """A sortable, searchable table."""
    return View(title, table_html(table, table_id=f"{anchor}-{kind}", searchable=True), kind=kind)


def image_views(run: Run, keys: list[str]) -> list[View]:
    """The pictures the run wrote under ``keys`` (PNG), inlined."""
    views = []
    for key in keys:
        path = run.output(key)
        if path is not None and path.suffix.lower() == ".png":
            views.append(View(key.replace("_", " "), image_html(path, key), kind="image"))
    return views
