"""Figure helpers every pillar uses: loss curve, parity, ROC/PR, confusion matrix, bars.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through pyplot, so
that plotting from a run neither needs a display nor changes the backend of a user's
notebook. Every file is written to a temporary name in its directory and renamed, so a
killed run never leaves a half-written figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from genoformer.engine.docs import shared_docs
from genoformer.engine.figure_files import FORMATS, save_figure, save_html
from genoformer.engine.metrics import as_class_arrays, one_vs_rest, regression_metrics

__all__ = [
    "comparison_bar",
    "confusion_matrix_plot",
    "loss_curve",
    "parity_plot",
    "roc_pr_curves",
    "save_figure",
    "save_html",
]

HEXBIN_ABOVE = 5_000
#: Colours of train / validation curves and of highlighted points, shared across pillars.
TRAIN_COLOR = "#1f77b4"
EVAL_COLOR = "#d62728"


def _spans_decades(values: np.ndarray, decades: float = 2.0) -> bool:
    positive = values[np.isfinite(values) & (values > 0)]
    return (
        positive.size > 1
        and positive.size == np.isfinite(values).sum()
        and (np.log10(positive.max() / positive.min()) > decades)
    )


@shared_docs
def loss_curve(
    history: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Training and validation loss against step, with the best validation step marked.

    Parameters
    ----------
    history
        Columns ``step``, ``epoch``, ``train_loss``, ``eval_loss`` (NaN where a row has no
        such value; ``epoch`` and either loss column may be absent).
    {figure_path}
    {figure_title}
    {formats}

    Returns
    -------
    {figures}
    """
    if "step" not in history.columns:
        raise ValueError(f"history needs a 'step' column; it has {list(history.columns)}")
    steps = pd.to_numeric(history["step"], errors="coerce").to_numpy(dtype=float)
    curves = {}
    for column in ("train_loss", "eval_loss"):
        if column in history.columns:
            loss = pd.to_numeric(history[column], errors="coerce").to_numpy(dtype=float)
            keep = np.isfinite(loss) & np.isfinite(steps)
            if keep.any():
                order = np.argsort(steps[keep], kind="stable")
                curves[column] = (steps[keep][order], loss[keep][order])
    if not curves:
        raise ValueError("history has no finite train_loss or eval_loss values to plot")

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    if "train_loss" in curves:
        x, y = curves["train_loss"]
        ax.plot(x, y, color=TRAIN_COLOR, lw=1.5, label="train")
    if "eval_loss" in curves:
        x, y = curves["eval_loss"]
        ax.plot(x, y, color=EVAL_COLOR, lw=1.5, marker="o", ms=3, label="validation")
        best = int(np.argmin(y))
        ax.scatter(
            [x[best]],
            [y[best]],
            marker="*",
            s=180,
            color=EVAL_COLOR,
            edgecolor="black",
            zorder=5,
            label=f"best validation: {y[best]:.4g} at step {x[best]:.0f}",
        )
        ax.axvline(x[best], color=EVAL_COLOR, lw=0.8, ls=":")
    all_loss = np.concatenate([y for _, y in curves.values()])
    if _spans_decades(all_loss):
        ax.set_yscale("log")
    _epoch_axis(ax, history, steps)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "Loss")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return save_figure(fig, path, formats=formats)


def _epoch_axis(ax, history: pd.DataFrame, steps: np.ndarray) -> None:
    """Add epochs as a top axis when step and epoch rise together (as Trainer logs them)."""
    if "epoch" not in history.columns:
        return
    epochs = pd.to_numeric(history["epoch"], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(epochs) & np.isfinite(steps)
    s, idx = np.unique(steps[keep], return_index=True)
    e = epochs[keep][idx]
    # np.interp in both directions needs a strictly monotonic mapping.
    if s.size < 2 or np.any(np.diff(e) <= 0):
        return
    top = ax.secondary_xaxis(
        "top", functions=(lambda v: np.interp(v, s, e), lambda v: np.interp(v, e, s))
    )
    top.set_xlabel("epoch")


@shared_docs
def parity_plot(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    label: str = "",
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Predicted against measured values with the y = x line, R2 and Pearson r.

    Above 5,000 points a hexagonal-bin density replaces the scatter, which would be an
    opaque blob.

    Parameters
    ----------
    y_true, y_pred
        Measured and predicted values, shape ``(N,)``; non-finite pairs are left out.
    {figure_path}
    title
        Figure title; the statistics are added below it.
    label
        What is measured (e.g. ``"expression"``), for the axis labels.
    {formats}

    Returns
    -------
    {figures}
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true ({t.size}) and y_pred ({p.size}) differ in length")
    keep = np.isfinite(t) & np.isfinite(p)
    t, p = t[keep], p[keep]
    m = regression_metrics(t, p)

    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    if t.size > HEXBIN_ABOVE:
        hb = ax.hexbin(t, p, gridsize=60, bins="log", cmap="viridis", mincnt=1)
        fig.colorbar(hb, ax=ax, label="points per bin")
    else:
        ax.scatter(t, p, s=10, alpha=0.5, color=TRAIN_COLOR, edgecolor="none")
    if t.size:
        lo = float(min(t.min(), p.min()))
        hi = float(max(t.max(), p.max()))
        pad = 0.02 * (hi - lo or 1.0)
        ax.plot(
            [lo - pad, hi + pad], [lo - pad, hi + pad], color="black", lw=1, ls="--", label="y = x"
        )
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.legend(frameon=False, loc="upper left")
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"measured {label}".strip())
    ax.set_ylabel(f"predicted {label}".strip())
    stats = f"R² = {m['r2']:.3f}   Pearson r = {m['pearson_r']:.3f}   n = {m['n']:,}"
    ax.set_title(f"{title}\n{stats}" if title else stats)
    ax.grid(alpha=0.3)
    return save_figure(fig, path, formats=formats)


@shared_docs
def roc_pr_curves(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    path: str | os.PathLike,
    *,
    classes: Sequence[str],
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """ROC and precision-recall curves side by side, AUROC/AUPRC in the legends.

    Parameters
    ----------
    y_true
        Integer class indices, shape ``(N,)``.
    probabilities
        Class probabilities, shape ``(N, C)`` (or ``(N,)``: probability of class 1).
    {figure_path}
    classes
        Class names, length ``C``. Binary tasks draw one curve for class 1; multi-class
        tasks one per class present in ``y_true``, that class against the rest. When
        ``y_true`` holds a single class the panels say that the curves are undefined.
    {formats}

    Returns
    -------
    {figures}
    """
    y, prob = as_class_arrays(y_true, probabilities)
    names = [str(c) for c in classes]
    if len(names) != prob.shape[1]:
        raise ValueError(f"{len(names)} class names for {prob.shape[1]} probability columns")
    problems = one_vs_rest(y, prob)

    fig = Figure(figsize=(11, 4.8), layout="constrained")
    ax_roc, ax_pr = fig.subplots(1, 2)
    if not problems:
        # A tiny test set can hold a single class; say so in the picture rather than fail
        # the run whose metrics (NaN AUROC) are already written.
        for ax in (ax_roc, ax_pr):
            ax.text(
                0.5,
                0.5,
                "undefined: y_true holds a single class",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="grey",
            )
    colors = _class_colors(len(problems))
    for (c, is_c, score), color in zip(problems, colors, strict=True):
        name = names[c] if prob.shape[1] > 2 else f"{names[c]} vs {names[0]}"
        # The same sklearn scores as classification_metrics, so legend and metrics.json agree.
        auroc = roc_auc_score(is_c, score)
        auprc = average_precision_score(is_c, score)
        fpr, tpr, _ = roc_curve(is_c, score)
        ax_roc.plot(fpr, tpr, color=color, lw=1.5, label=f"{name} (AUROC {auroc:.3f})")
        precision, recall, _ = precision_recall_curve(is_c, score)
        ax_pr.step(
            recall,
            precision,
            where="post",
            color=color,
            lw=1.5,
            label=f"{name} (AUPRC {auprc:.3f})",
        )
        if len(problems) == 1:
            prevalence = is_c.mean()
            ax_pr.axhline(
                prevalence, color="grey", lw=1, ls="--", label=f"chance ({prevalence:.3f})"
            )
    ax_roc.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="chance")
    ax_roc.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="ROC",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax_pr.set(
        xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.01)
    )
    for ax in (ax_roc, ax_pr):
        ax.set_aspect("equal", adjustable="box")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            loc = "lower right" if ax is ax_roc else "best"
            ax.legend(frameon=False, fontsize="small", loc=loc)
    return save_figure(fig, path, formats=formats)


def _class_colors(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


@shared_docs
def confusion_matrix_plot(
    matrix: np.ndarray | Sequence[Sequence[int]],
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    normalize: bool = True,
    title: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """A confusion matrix as a heatmap, true classes as rows.

    Parameters
    ----------
    matrix
        Counts, ``matrix[i][j]`` = true class ``i`` predicted as ``j`` (as returned by
        :func:`~genoformer.engine.metrics.classification_metrics`).
    classes
        Class names, one per row.
    {figure_path}
    normalize
        Colour by the fraction of each true class (row) instead of raw counts; the cells
        then show the fraction and the count.
    {figure_title}
    {formats}

    Returns
    -------
    {figures}
    """
    counts = np.asarray(matrix, dtype=np.float64)
    n = counts.shape[0] if counts.ndim == 2 else -1
    if counts.ndim != 2 or counts.shape != (n, n) or len(classes) != n:
        raise ValueError(
            f"matrix {counts.shape} must be square with one row per class ({len(classes)})"
        )
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        shown = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    else:
        shown = counts
    side = min(3.0 + 0.55 * n, 20.0)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, label="fraction of true class" if normalize else "count", shrink=0.8)
    # Numbers become unreadable past ~25 classes; the colours still tell the story.
    if n <= 25:
        vmax = shown.max() if shown.size else 0
        for i in range(n):
            for j in range(n):
                text = (
                    f"{shown[i, j]:.2f}\n({counts[i, j]:.0f})"
                    if normalize
                    else (f"{counts[i, j]:.0f}")
                )
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if shown[i, j] > 0.6 * vmax else "black",
                )
    labels = [str(c) for c in classes]
    ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix")
    return save_figure(fig, path, formats=formats)


def _as_float(value: object) -> float:
    return float("nan") if value is None else float(value)


@shared_docs
def comparison_bar(
    table: Mapping[str, Mapping[str, float]],
    metric: str,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """One metric across models as a bar chart (e.g. linear vs CNN test R2).

    Parameters
    ----------
    table
        ``{model name: {metric name: value}}``; bars follow the mapping's order. A model
        without ``metric`` (or with NaN) is shown as "n/a".
    metric
        The metric to compare.
    {figure_path}
    {figure_title}
    {formats}

    Returns
    -------
    {figures}
    """
    models = list(table)
    values = np.array([_as_float(table[m].get(metric)) for m in models], dtype=np.float64)
    if not np.isfinite(values).any():
        raise ValueError(f"no model in the table has a value for {metric!r}")
    fig = Figure(figsize=(max(4.0, 1.1 * len(models) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(models))
    colors = _class_colors(len(models))
    ax.bar(x, np.nan_to_num(values), color=colors, edgecolor="black", lw=0.5)
    for xi, v in zip(x, values, strict=True):
        finite = bool(np.isfinite(v))
        ax.annotate(
            f"{v:.3g}" if finite else "n/a",
            (xi, v if finite else 0.0),
            xytext=(0, -12 if finite and v < 0 else 3),
            textcoords="offset points",
            ha="center",
            fontsize="small",
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(
        x,
        models,
        rotation=30 if len(models) > 4 else 0,
        ha="right" if len(models) > 4 else "center",
    )
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} by model")
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.12)
    return save_figure(fig, path, formats=formats)
