"""Pictures specific to sequence models: worst predictions, filters, attribution logos."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from matplotlib.figure import Figure

from genoformer.engine.docs import shared_docs
from genoformer.engine.metrics import as_class_arrays
from genoformer.engine.plots import EVAL_COLOR, FORMATS, save_figure, save_html

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["attribution_logos", "filter_heatmaps", "truncate_sequence", "worst_predictions_html"]

BASES = ("A", "C", "G", "T")
#: Hover text shows at most this many bases; the table holds the full sequence.
HOVER_BASES = 60


def truncate_sequence(sequence: str, width: int = HOVER_BASES) -> str:
    """Shorten a sequence to about ``width`` characters by eliding its middle.

    Parameters
    ----------
    sequence
        The sequence.
    width
        Bases kept, half from each end.

    Returns
    -------
    str
        ``sequence`` itself when short enough, else ``"ACGT...(120 bp)...TTGA"``.
    """
    if len(sequence) <= width:
        return sequence
    half = width // 2
    return f"{sequence[:half]}...({len(sequence) - 2 * half} bp)...{sequence[-half:]}"


class _View(NamedTuple):
    """What the worst-predictions page shows for each sequence."""

    error: np.ndarray
    truth: list[str]
    prediction: list[str]
    x: np.ndarray
    y: np.ndarray
    x_title: str
    y_title: str
    class_names: list[str] | None = None


def _wrap(sequence: str, width: int = HOVER_BASES) -> str:
    """The whole sequence as escaped lines of ``width`` bases (plotly tables only wrap at
    spaces, so an unbroken sequence would run out of its cell)."""
    return "<br>".join(
        html.escape(sequence[i : i + width]) for i in range(0, max(len(sequence), 1), width)
    )


def _view(
    y_true: np.ndarray, y_pred: np.ndarray, task: str, classes: Sequence[str] | None
) -> _View:
    if task == "regression":
        t = np.asarray(y_true, dtype=np.float64).ravel()
        p = np.asarray(y_pred, dtype=np.float64).ravel()
        if t.shape != p.shape:
            raise ValueError(f"y_true ({t.size}) and y_pred ({p.size}) differ in length")
        error = np.abs(p - t)
        return _View(
            error, [f"{v:.4g}" for v in t], [f"{v:.4g}" for v in p], t, p, "measured", "predicted"
        )
    if task == "classification":
        y, prob = as_class_arrays(y_true, y_pred)
        n_classes = prob.shape[1]
        names = [str(i) for i in range(n_classes)] if classes is None else list(classes)
        if len(names) != n_classes:
            raise ValueError(f"{len(names)} class names for {n_classes} probability columns")
        names = [html.escape(str(n)) for n in names]
        p_true = prob[np.arange(len(y)), y]
        pred = prob.argmax(axis=1)
        # Deterministic jitter spreads each class column so that points stay hoverable.
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(y))
        return _View(
            1.0 - p_true,
            [names[c] for c in y],
            [f"{names[c]} (p={prob[i, c]:.3f})" for i, c in enumerate(pred)],
            y + jitter,
            p_true,
            "true class",
            "probability of the true class",
            names,
        )
    raise ValueError(f"task must be 'regression' or 'classification', not {task!r}")


def worst_predictions_html(
    ids: Sequence[str],
    sequences: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    path: str | os.PathLike,
    *,
    top: int = 50,
    task: str = "regression",
    classes: Sequence[str] | None = None,
    max_points: int = 20_000,
) -> Path:
    """An interactive page of the test sequences the model gets most wrong.

    A scatter of every test sequence (truth against prediction; the ``top`` worst in red;
    hover for id, sequence, truth, prediction and error) above a table of the ``top`` worst
    with their full sequences (in lines of 60 bases).

    Parameters
    ----------
    ids, sequences
        One per test sequence.
    y_true
        Regression: measured values ``(N,)``. Classification: class indices ``(N,)``.
    y_pred
        Regression: predictions ``(N,)``. Classification: class probabilities ``(N, C)``.
    path
        Target ``.html`` path.
    top
        How many of the worst to list and highlight.
    task
        ``"regression"`` (error = ``|prediction - truth|``) or ``"classification"``
        (error = 1 - probability of the true class).
    classes
        Class names for classification.
    max_points
        Cap on the other (not worst) points drawn, a seeded random subset, to keep the page
        small on large test sets.

    Returns
    -------
    Path
        The HTML file written (self-contained, works offline).
    """
    from plotly.subplots import make_subplots

    # Plotly renders hover and table text as HTML: escape what came from the user's files.
    ids = [html.escape(str(i)) for i in ids]
    sequences = [str(s) for s in sequences]
    view = _view(y_true, y_pred, task, classes)
    if not (len(ids) == len(sequences) == len(view.error)):
        raise ValueError(
            f"ids ({len(ids)}), sequences ({len(sequences)}) and predictions ({len(view.error)}) "
            "differ in length"
        )
    scorable, worst, rest = _rank_by_error(view, top, max_points)
    fig = make_subplots(
        rows=2,
        cols=1,
        row_heights=[0.55, 0.45],
        vertical_spacing=0.08,
        specs=[[{"type": "xy"}], [{"type": "table"}]],
    )
    _add_points(fig, view, ids, sequences, worst, rest)
    _add_reference(fig, view, scorable)
    fig.add_trace(_worst_table(view, ids, sequences, worst), row=2, col=1)
    fig.update_layout(
        title=f"The {len(worst)} test sequences with the largest errors ({task})",
        height=1100,
        template="plotly_white",
        legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"},
    )
    return save_html(fig, path)


def _rank_by_error(
    view: _View, top: int, max_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the scorable sequences, the ``top`` worst, and the others drawn (at most
    ``max_points``, a seeded random subset in input order)."""
    error, x, y = view.error, view.x, view.y
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    scorable = np.flatnonzero(np.isfinite(error) & np.isfinite(x) & np.isfinite(y))
    if scorable.size == 0:
        raise ValueError("no sequence has a finite truth and prediction")
    # Stable sort: equal errors keep input order, so the page is reproducible.
    ranked = scorable[np.argsort(-error[scorable], kind="stable")]
    worst = ranked[:top]
    rest = ranked[top:]
    if rest.size > max_points:
        rest = np.sort(np.random.default_rng(0).choice(rest, max_points, replace=False))
    return scorable, worst, rest


def _hover(view: _View, ids: list[str], sequences: list[str], idx: np.ndarray) -> list[str]:
    return [
        f"<b>{ids[i]}</b><br>{html.escape(truncate_sequence(sequences[i]))}"
        f"<br>truth: {view.truth[i]}<br>prediction: {view.prediction[i]}"
        f"<br>error: {view.error[i]:.4g}"
        for i in idx
    ]


def _add_points(
    fig: go.Figure,
    view: _View,
    ids: list[str],
    sequences: list[str],
    worst: np.ndarray,
    rest: np.ndarray,
) -> None:
    """The scatter of truth against prediction: the others in grey, the worst in red."""
    import plotly.graph_objects as go

    x, y = view.x, view.y
    # WebGL keeps tens of thousands of points responsive.
    fig.add_trace(
        go.Scattergl(
            x=x[rest],
            y=y[rest],
            mode="markers",
            name="other test sequences",
            marker={"size": 5, "color": "rgba(120,120,120,0.45)"},
            hovertext=_hover(view, ids, sequences, rest),
            hoverinfo="text",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scattergl(
            x=x[worst],
            y=y[worst],
            mode="markers",
            name=f"{len(worst)} worst",
            marker={"size": 8, "color": EVAL_COLOR, "line": {"width": 1, "color": "black"}},
            hovertext=_hover(view, ids, sequences, worst),
            hoverinfo="text",
        ),
        row=1,
        col=1,
    )


def _add_reference(fig: go.Figure, view: _View, scorable: np.ndarray) -> None:
    """The line y = x (regression) or the class names on the x axis, and the axis titles."""
    import plotly.graph_objects as go

    x, y = view.x, view.y
    if view.class_names is None:
        lo = float(min(x[scorable].min(), y[scorable].min()))
        hi = float(max(x[scorable].max(), y[scorable].max()))
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                name="y = x",
                line={"color": "black", "dash": "dash", "width": 1},
                hoverinfo="skip",
            ),
            row=1,
            col=1,
        )
    else:
        fig.update_xaxes(
            tickvals=list(range(len(view.class_names))), ticktext=view.class_names, row=1, col=1
        )
    fig.update_xaxes(title_text=view.x_title, row=1, col=1)
    fig.update_yaxes(title_text=view.y_title, row=1, col=1)


def _worst_table(view: _View, ids: list[str], sequences: list[str], worst: np.ndarray) -> go.Table:
    """The table of the worst, with their whole sequences in lines of 60 bases."""
    import plotly.graph_objects as go

    return go.Table(
        columnwidth=[0.5, 1.5, 6, 1.2, 1.6, 1],
        header={
            "values": ["rank", "id", "sequence", "truth", "prediction", "error"],
            "fill_color": "#e8e8e8",
            "align": "left",
        },
        cells={
            "values": [
                list(range(1, len(worst) + 1)),
                [ids[i] for i in worst],
                [_wrap(sequences[i]) for i in worst],
                [view.truth[i] for i in worst],
                [view.prediction[i] for i in worst],
                [f"{view.error[i]:.4g}" for i in worst],
            ],
            "align": "left",
            "font": {"family": "monospace", "size": 11},
        },
    )


@shared_docs
def filter_heatmaps(
    weights: np.ndarray,
    path: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    shared_scale: bool = False,
    columns: int = 8,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """First-layer convolution filters as a grid of small heatmaps.

    Parameters
    ----------
    weights
        Filter weights, shape ``(F, 4, W)``, rows in A, C, G, T order.
    {figure_path}
    titles
        One title per filter; default ``"filter <i>"``.
    shared_scale
        One colour scale for all filters (shows which filters are weak) instead of one per
        filter, centred at 0 (shows each filter's pattern).
    columns
        Panels per row.
    {formats}

    Returns
    -------
    {figures}
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 3 or w.shape[1] != 4 or w.shape[0] == 0:
        raise ValueError(f"weights must have shape (filters, 4, width), got {w.shape}")
    n_filters, _, width = w.shape
    titles = [f"filter {i}" for i in range(n_filters)] if titles is None else list(titles)
    if len(titles) != n_filters:
        raise ValueError(f"{len(titles)} titles for {n_filters} filters")
    panel_w = max(1.4, 0.12 * width + 0.4)
    # Wide filters get fewer panels per row so that the figure stays about a page wide.
    ncols = max(1, min(columns, n_filters, int(16 // panel_w)))
    nrows = -(-n_filters // ncols)
    fig = Figure(figsize=(panel_w * ncols + 0.8, 1.3 * nrows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    shared = float(np.abs(w).max()) or 1.0
    image = None
    for i, ax in enumerate(axes):
        if i >= n_filters:
            ax.set_axis_off()
            continue
        # A symmetric range centres the diverging colormap at 0: red favours, blue disfavours.
        limit = shared if shared_scale else float(np.abs(w[i]).max()) or 1.0
        image = ax.imshow(w[i], cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_yticks(range(4), BASES, fontsize="x-small")
        ax.set_xticks([])
        ax.set_title(titles[i], fontsize="small")
    if shared_scale and image is not None:
        fig.colorbar(image, ax=axes.tolist(), shrink=0.6, label="weight")
    return save_figure(fig, path, formats=formats)


@shared_docs
def attribution_logos(
    attributions: np.ndarray,
    sequences_one_hot: np.ndarray | None,
    path: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    window: tuple[int, int] | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Attribution scores as sequence logos, one row per sequence.

    Parameters
    ----------
    attributions
        Per-base scores (in silico mutagenesis or gradient x input), shape ``(N, 4, L)``,
        rows A, C, G, T. Keep ``N`` to a handful: every base is drawn as a glyph.
    sequences_one_hot
        One-hot sequences ``(N, 4, L)``. The logo shows ``attributions * one_hot``, the score
        of the observed base at each position, above (positive) or below (negative) zero.
        ``None`` draws all four rows as given.
    {figure_path}
    titles
        One title per sequence; default ``"sequence <i>"``.
    window
        ``(start, end)`` positions (0-based, end exclusive) to zoom into.
    {formats}

    Returns
    -------
    {figures}
    """
    from genoformer.seq.motifs import draw_letters

    a = np.asarray(attributions, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1] != 4 or a.shape[0] == 0:
        raise ValueError(f"attributions must have shape (N, 4, length), got {a.shape}")
    if sequences_one_hot is not None:
        one_hot = np.asarray(sequences_one_hot, dtype=np.float64).reshape(-1, *a.shape[1:])
        if one_hot.shape != a.shape:
            raise ValueError(
                f"sequences_one_hot {np.shape(sequences_one_hot)} must match attributions {a.shape}"
            )
        a = a * one_hot
    n_seqs, _, length = a.shape
    start, end = (0, length) if window is None else window
    if not 0 <= start < end <= length:
        raise ValueError(f"window {window} must satisfy 0 <= start < end <= {length}")
    titles = [f"sequence {i}" for i in range(n_seqs)] if titles is None else list(titles)
    if len(titles) != n_seqs:
        raise ValueError(f"{len(titles)} titles for {n_seqs} sequences")

    span = end - start
    fig = Figure(
        figsize=(min(max(6.0, 0.14 * span + 1.5), 40.0), 1.9 * n_seqs + 0.3),
        layout="constrained",
    )
    axes = fig.subplots(n_seqs, 1, squeeze=False)[:, 0]
    positions = np.arange(start, end)
    for i, ax in enumerate(axes):
        draw_letters(a[i, :, start:end], ax, positions)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xlim(start - 0.5, end - 0.5)
        ax.set_ylabel("attribution", fontsize="small")
        ax.set_title(titles[i], fontsize="small", loc="left")
    axes[-1].set_xlabel("position")
    return save_figure(fig, path, formats=formats)
