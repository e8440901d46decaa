"""Figures to files: matplotlib figures in each format, plotly figures as one page.

Kept apart from :mod:`genoformer.engine.plots` (whose figures need scikit-learn) so that a
command that only writes figures loads neither scikit-learn nor, until it writes a page,
plotly. Every file is written to a temporary name in its directory and renamed, so a killed
run never leaves a half-written figure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from genoformer.engine.runs import atomic_path, write_text

if TYPE_CHECKING:
    # plotly is only needed by callers that already built a plotly figure.
    import plotly.graph_objects as go

__all__ = ["DPI", "FORMATS", "IMAGE_SUFFIXES", "save_figure", "save_html"]

#: Suffixes treated as "the format" of a path passed to :func:`save_figure`.
IMAGE_SUFFIXES = {".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".eps", ".ps"}
DPI = 150
#: Formats every figure is written in unless asked otherwise.
FORMATS = ("png", "pdf")


def _close(fig: Figure) -> None:
    # A figure made through pyplot is also held by pyplot's registry and leaks unless
    # pyplot closes it; importing pyplot just to check would pick a backend, so only look.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


def save_figure(
    fig: Figure, path: str | os.PathLike, *, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write a matplotlib figure atomically in each format, then close it.

    Parameters
    ----------
    fig
        The figure.
    path
        Target path; an image suffix (``.png``, ``.pdf`` ...) is replaced by each format,
        any other name gets the format appended.
    formats
        File formats, e.g. ``("png", "pdf")``.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in IMAGE_SUFFIXES else path
    written = []
    engine = fig.get_layout_engine()
    try:
        for fmt in formats:
            fmt = fmt.lower().lstrip(".")
            target = stem.with_name(f"{stem.name}.{fmt}")
            # Without a creation date, reruns write byte-identical PDFs (PNGs already are).
            metadata = {"CreationDate": None} if fmt == "pdf" else None
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata)
            written.append(target)
            # The layout (constrained layout: the slow part of a small figure's drawing) is
            # the same in every format: work it out for the first only.
            fig.set_layout_engine("none")
    finally:
        fig.set_layout_engine(engine)
        _close(fig)
    return written


def save_html(plotly_fig: go.Figure, path: str | os.PathLike) -> Path:
    """Write a plotly figure atomically as one self-contained HTML file.

    plotly.js is embedded (about 4 MB) rather than linked to a CDN, so the page also opens
    on machines without internet access.

    Parameters
    ----------
    plotly_fig
        A ``plotly.graph_objects.Figure``.
    path
        Target ``.html`` path.

    Returns
    -------
    Path
        The file written.
    """
    html = plotly_fig.to_html(include_plotlyjs=True, full_html=True)
    return write_text(path, html)
