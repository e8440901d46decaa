"""One figure description, two renderers: a static picture (matplotlib) and a page (plotly).

A plot computes its data once (points, colours, hover text, reference lines, axis labels and
ticks, title) into a :class:`Chart`; :func:`render_png` draws it with matplotlib and writes
it through :func:`~genoformer.engine.figure_files.save_figure` (PNG, PDF ...), :func:`render_html`
draws it with plotly and writes it through :func:`~genoformer.engine.figure_files.save_html`. The
picture and the page therefore show the same points, lines and words.

A chart is one or more panels stacked top to bottom on one shared x axis. A panel holds
layers (:class:`Scatter`, :class:`Line`, :class:`Band`, :class:`Heatmap`), horizontal
reference lines (:class:`RefLine`), point labels (:class:`Note`) and its two axes
(:class:`Axis`). Hover text is shown by the page only; ``Chart.size`` and ``Axis.tex`` are
for the picture only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex, to_rgba
from matplotlib.figure import Figure

from genoformer.engine.figure_files import FORMATS, save_figure, save_html

__all__ = [
    "Axis",
    "Band",
    "Chart",
    "Heatmap",
    "Line",
    "Note",
    "Panel",
    "RefLine",
    "Scatter",
    "Stroke",
    "palette",
    "render_html",
    "render_png",
    "to_plotly",
]

Dash = Literal["solid", "dash", "dot"]
#: Line styles in matplotlib's words.
_MPL_DASH = {"solid": "-", "dash": "--", "dot": ":"}


@dataclass(frozen=True)
class Scatter:
    """Markers at (x, y): one colour, or one per point; ``hover`` is one text per point."""

    x: np.ndarray
    y: np.ndarray
    color: str | Sequence[str]
    #: Marker area in points² (matplotlib's ``s``); the page draws ``2 * sqrt(size)`` px.
    size: float = 6.0
    alpha: float = 1.0
    label: str | None = None
    hover: Sequence[str] | None = None
    #: Drawn above the reference lines (e.g. significant hits).
    front: bool = False
    #: Rasterised in vector formats, which keeps a PDF of a million points small.
    rasterized: bool = True


@dataclass(frozen=True, kw_only=True)
class Stroke:
    """How a line is drawn, and its legend entry (keyword arguments of every line)."""

    color: str = "black"
    width: float = 1.0
    dash: Dash = "solid"
    label: str | None = None


@dataclass(frozen=True)
class Line(Stroke):
    """A polyline through (x, y)."""

    x: Sequence[float]
    y: Sequence[float]


@dataclass(frozen=True)
class Band:
    """The area between ``lower`` and ``upper`` along x (e.g. a confidence band)."""

    x: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    color: str = "grey"
    opacity: float = 0.25
    label: str | None = None


@dataclass(frozen=True)
class Heatmap:
    """A matrix of colours, row 0 at the top; ``marks`` (a boolean matrix) puts a ``*``."""

    z: np.ndarray
    x_labels: Sequence[str]
    y_labels: Sequence[str]
    #: A colormap name both libraries know (``"RdBu_r"``: ``_r`` reverses it).
    cmap: str = "viridis"
    vmin: float | None = None
    vmax: float | None = None
    colorbar: str = ""
    #: One text per cell, as nested lists ``hover[row][column]``.
    hover: Sequence[Sequence[str]] | None = None
    marks: np.ndarray | None = None


Layer = Scatter | Line | Band | Heatmap


@dataclass(frozen=True)
class RefLine(Stroke):
    """A horizontal line across the panel at ``y`` (e.g. a significance threshold)."""

    y: float


@dataclass(frozen=True)
class Note:
    """A small label next to the point (x, y)."""

    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Axis:
    """An axis: label, ticks, range and grid."""

    label: str = ""
    #: The label in matplotlib mathtext where it reads better in the picture.
    tex: str | None = None
    ticks: Sequence[float] | None = None
    tick_labels: Sequence[str] | None = None
    #: Past this many ticks the picture labels every other one (the page can zoom).
    sparse_past: int | None = None
    limits: tuple[float, float] | None = None
    #: Start the axis at 0 (when ``limits`` is not given).
    from_zero: bool = False
    #: Grid lines on or off; ``None`` leaves each renderer's default.
    grid: bool | None = None


@dataclass(frozen=True)
class Panel:
    """One plotting area: layers in drawing order, reference lines, notes, axes."""

    layers: Sequence[Layer] = ()
    lines: Sequence[RefLine] = ()
    notes: Sequence[Note] = ()
    x: Axis = field(default_factory=Axis)
    y: Axis = field(default_factory=Axis)
    #: Where the picture puts the legend (matplotlib ``loc``); labelled items make one.
    legend: str = "best"
    #: ``False``: no top and right spines in the picture.
    frame: bool = True
    #: Text in the middle of the panel (e.g. that there is nothing to draw).
    message: str | None = None


@dataclass(frozen=True)
class Chart:
    """A whole figure: panels top to bottom on one shared x axis, and a title."""

    panels: Sequence[Panel]
    title: str = ""
    #: A second part of the title: below it in the picture, after a colon on the page.
    subtitle: str = ""
    #: The picture's size in inches; the page fills its window.
    size: tuple[float, float] = (6.4, 4.8)


def palette(n: int) -> list[str]:
    """``n`` distinct colours as hex strings (matplotlib's default cycle, tab10, repeated)."""
    cmap = colormaps["tab10"]
    return [to_hex(cmap(i % cmap.N)) for i in range(n)]


def _title(chart: Chart, between: str) -> str:
    parts = [part for part in (chart.title, chart.subtitle) if part]
    return between.join(parts)


def _is_empty(layer: Layer) -> bool:
    return not isinstance(layer, Heatmap) and len(layer.x) == 0


# ---------------------------------------------------------------------------------------
# The picture: matplotlib
# ---------------------------------------------------------------------------------------


def render_png(
    chart: Chart, path: str | os.PathLike, *, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Draw ``chart`` with matplotlib; write it as :func:`~genoformer.engine.figure_files.save_figure`
    does (each of ``formats``, atomically) and return the files written."""
    fig = Figure(figsize=chart.size, layout="constrained")
    axes = fig.subplots(len(chart.panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, chart.panels, strict=True):
        _mpl_panel(fig, ax, panel)
    axes[0].set_title(_title(chart, "\n"))
    return save_figure(fig, path, formats=formats)


def _mpl_panel(fig: Figure, ax, panel: Panel) -> None:
    for layer in panel.layers:
        if not _is_empty(layer):
            _MPL_LAYERS[type(layer)](fig, ax, layer)
    for line in panel.lines:
        ax.axhline(line.y, **_mpl_stroke(line))
    for note in panel.notes:
        ax.annotate(
            note.text,
            (note.x, note.y),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize="x-small",
            rotation=30,
        )
    if panel.message:
        ax.text(0.5, 0.5, panel.message, ha="center", va="center", transform=ax.transAxes)
    _mpl_axis(ax, "x", panel.x)
    _mpl_axis(ax, "y", panel.y)
    if not panel.frame:
        ax.spines[["top", "right"]].set_visible(False)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize="small", markerscale=2, loc=panel.legend)


def _mpl_axis(ax, which: str, axis: Axis) -> None:
    is_x = which == "x"
    if axis.label or axis.tex:
        (ax.set_xlabel if is_x else ax.set_ylabel)(axis.tex or axis.label)
    if axis.ticks is not None:
        ticks = list(axis.ticks)
        labels = None if axis.tick_labels is None else list(axis.tick_labels)
        step = 2 if axis.sparse_past is not None and len(ticks) > axis.sparse_past else 1
        set_ticks = ax.set_xticks if is_x else ax.set_yticks
        set_ticks(ticks[::step], None if labels is None else labels[::step], fontsize="small")
    set_lim = ax.set_xlim if is_x else ax.set_ylim
    if axis.limits is not None:
        set_lim(*axis.limits)
    elif axis.from_zero:
        set_lim(0, None)
    if axis.grid:
        ax.grid(True, axis=which, alpha=0.3)
    elif axis.grid is False:
        ax.grid(False, axis=which)


def _mpl_scatter(fig: Figure, ax, layer: Scatter) -> None:
    colour = {"color": layer.color} if isinstance(layer.color, str) else {"c": list(layer.color)}
    extra = {"zorder": 3} if layer.front else {}
    fill = _mpl_fill(layer.alpha, layer.label)
    ax.scatter(
        layer.x, layer.y, s=layer.size, rasterized=layer.rasterized, **fill, **colour, **extra
    )


def _mpl_fill(alpha: float, label: str | None) -> dict:
    """Keywords of a filled artist drawn without an edge (markers, a band)."""
    return {"alpha": alpha, "lw": 0, "label": label}


def _mpl_stroke(stroke: Stroke) -> dict:
    return {
        "color": stroke.color,
        "lw": stroke.width,
        "ls": _MPL_DASH[stroke.dash],
        "label": stroke.label,
    }


def _mpl_line(fig: Figure, ax, layer: Line) -> None:
    ax.plot(layer.x, layer.y, **_mpl_stroke(layer))


def _mpl_band(fig: Figure, ax, layer: Band) -> None:
    fill = _mpl_fill(layer.opacity, layer.label)
    ax.fill_between(layer.x, layer.lower, layer.upper, color=layer.color, **fill)


def _mpl_heatmap(fig: Figure, ax, layer: Heatmap) -> None:
    image = ax.imshow(layer.z, cmap=layer.cmap, vmin=layer.vmin, vmax=layer.vmax)
    fig.colorbar(image, ax=ax, label=layer.colorbar, shrink=0.8)
    if layer.marks is not None:
        for i, j in zip(*np.nonzero(layer.marks), strict=True):
            ax.text(j, i, "*", ha="center", va="center", fontsize="small")
    ax.set_xticks(range(len(layer.x_labels)), layer.x_labels, rotation=90, fontsize="x-small")
    ax.set_yticks(range(len(layer.y_labels)), layer.y_labels, fontsize="x-small")


_MPL_LAYERS = {
    Scatter: _mpl_scatter,
    Line: _mpl_line,
    Band: _mpl_band,
    Heatmap: _mpl_heatmap,
}


# ---------------------------------------------------------------------------------------
# The page: plotly
# ---------------------------------------------------------------------------------------


def render_html(chart: Chart, path: str | os.PathLike) -> Path:
    """Draw ``chart`` with plotly (WebGL markers); write it as one self-contained page as
    :func:`~genoformer.engine.figure_files.save_html` does and return its path."""
    return save_html(to_plotly(chart), path)


def to_plotly(chart: Chart):
    """``chart`` as a ``plotly.graph_objects.Figure`` (WebGL markers), for a page of many
    figures (genoformer.report) or one of its own (:func:`render_html`)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = len(chart.panels)
    if n == 1:
        fig = go.Figure()
    else:
        fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for i, panel in enumerate(chart.panels):
        where = {} if n == 1 else {"row": i + 1, "col": 1}
        _page_panel(fig, panel, where, suffix="" if i == 0 else str(i + 1))
    fig.update_layout(title=_title(chart, ": "), template="plotly_white", hovermode="closest")
    return fig


def _page_panel(fig, panel: Panel, where: dict, suffix: str) -> None:
    for layer in panel.layers:
        if not _is_empty(layer):
            for trace in _PAGE_LAYERS[type(layer)](layer):
                fig.add_trace(trace, **where)
    for line in panel.lines:
        fig.add_hline(y=line.y, line=_page_stroke(line), **where)
    for note in panel.notes:
        fig.add_annotation(
            x=note.x,
            y=note.y,
            text=note.text,
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            textangle=-30,
            font={"size": 9},
            **where,
        )
    if panel.message:
        fig.add_annotation(
            x=0.5,
            y=0.5,
            xref=f"x{suffix} domain",
            yref=f"y{suffix} domain",
            text=panel.message,
            showarrow=False,
        )
    fig.update_xaxes(**_page_axis(panel.x), **where)
    y_axis = _page_axis(panel.y)
    if any(isinstance(layer, Heatmap) for layer in panel.layers):
        y_axis["autorange"] = "reversed"  # row 0 at the top, as in the picture
    fig.update_yaxes(**y_axis, **where)


def _page_axis(axis: Axis) -> dict:
    props: dict = {}
    if axis.label:
        props["title"] = axis.label
    if axis.ticks is not None:
        props["tickvals"] = list(axis.ticks)
        if axis.tick_labels is not None:
            props["ticktext"] = list(axis.tick_labels)
    if axis.grid is not None:
        props["showgrid"] = axis.grid
    if axis.limits is not None:
        props["range"] = list(axis.limits)
    elif axis.from_zero:
        props["rangemode"] = "tozero"
    return props


def _page_stroke(stroke: Stroke) -> dict:
    style = {"color": stroke.color, "width": stroke.width}
    if stroke.dash != "solid":
        style["dash"] = stroke.dash
    return style


def _legend(label: str | None) -> dict:
    return {"name": label, "showlegend": True} if label is not None else {"showlegend": False}


def _hover(hover) -> dict:
    if hover is None:
        return {"hoverinfo": "skip"}
    return {"text": hover, "hovertemplate": "%{text}<extra></extra>"}


def _page_scatter(layer: Scatter) -> list:
    import plotly.graph_objects as go

    marker = {
        "size": 2 * float(np.sqrt(layer.size)),
        "color": layer.color if isinstance(layer.color, str) else list(layer.color),
    }
    if layer.alpha != 1:
        marker["opacity"] = layer.alpha
    trace = go.Scattergl(x=layer.x, y=layer.y, mode="markers", marker=marker, **_hover(layer.hover))
    return [trace.update(**_legend(layer.label))]


def _page_line(layer: Line) -> list:
    import plotly.graph_objects as go

    trace = go.Scatter(x=list(layer.x), y=list(layer.y), mode="lines", line=_page_stroke(layer))
    return [trace.update(hoverinfo="skip", **_legend(layer.label))]


def _page_band(layer: Band) -> list:
    import plotly.graph_objects as go

    x = np.asarray(layer.x)
    r, g, b, _ = (round(255 * v) for v in to_rgba(layer.color))
    trace = go.Scatter(
        x=np.concatenate([x, x[::-1]]),
        y=np.concatenate([np.asarray(layer.upper), np.asarray(layer.lower)[::-1]]),
        fill="toself",
        fillcolor=f"rgba({r},{g},{b},{layer.opacity:g})",
        line={"width": 0},
        hoverinfo="skip",
    )
    return [trace.update(**_legend(layer.label))]


def _page_heatmap(layer: Heatmap) -> list:
    import plotly.graph_objects as go

    x, y = list(layer.x_labels), list(layer.y_labels)
    traces = [
        go.Heatmap(
            z=layer.z,
            x=x,
            y=y,
            colorscale=layer.cmap,
            zmin=layer.vmin,
            zmax=layer.vmax,
            colorbar={"title": {"text": layer.colorbar}},
            **_hover(layer.hover),
        )
    ]
    if layer.marks is not None and np.any(layer.marks):
        rows, cols = np.nonzero(layer.marks)
        traces.append(
            go.Scatter(
                x=[x[j] for j in cols],
                y=[y[i] for i in rows],
                mode="text",
                text=["*"] * len(rows),
                hoverinfo="skip",
                showlegend=False,
            )
        )
    return traces


_PAGE_LAYERS = {
    Scatter: _page_scatter,
    Line: _page_line,
    Band: _page_band,
    Heatmap: _page_heatmap,
}
