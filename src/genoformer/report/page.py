"""The page: one self-contained HTML file of sections (one per run), each a list of views.

Everything the page needs is inside it: plotly.js (once, from the installed plotly package),
the style sheet and the page's own small script (``page.js``: table sort and search, a hit
click drawing its regional view), images as ``data:`` URIs and data as JSON blocks. A
Content-Security-Policy meta tag forbids the page any request (``default-src 'none'``), so
a page that tried one would fail loudly in the browser instead of leaking to a network.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CSP",
    "Section",
    "View",
    "data_block",
    "figure_html",
    "image_html",
    "render_page",
    "table_html",
]

#: No request of any kind (scripts, styles, images, fonts, fetch/XHR, frames) may leave the
#: page. plotly.js needs inline scripts and ``eval`` (its WebGL traces compile their shaders
#: through ``new Function``) and ``data:``/``blob:`` images and workers for its own drawing.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; worker-src blob:; base-uri 'none'; form-action 'none'"
)
#: plotly's mode bar without the links to plotly's website.
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass
class View:
    """One picture, table or block of a run's section: a heading and its HTML."""

    title: str
    body: str
    #: A word the page's tests find the view by (``data-view`` attribute).
    kind: str = ""


@dataclass
class Section:
    """One run: its heading, its summary (HTML) and its views."""

    anchor: str
    title: str
    summary: str
    views: list[View] = field(default_factory=list)


#: Figures with fewer points than this are drawn as SVG: a browser keeps only about 16 WebGL
#: contexts a page, and each WebGL figure holds some (past the limit the oldest go blank).
WEBGL_FROM = 5_000


def _points(fig: Any) -> int:
    return sum(len(trace.x) for trace in fig.data if getattr(trace, "x", None) is not None)


def figure_html(fig: Any, *, height: int = 460, webgl: bool | None = None) -> str:
    """A plotly figure as a ``<div>`` and the plotly call that draws it (no plotly.js).

    ``webgl``: keep the figure's WebGL traces (``True``), draw them as SVG (``False``), or
    keep them only from :data:`WEBGL_FROM` points on (``None``).
    """
    import plotly.graph_objects as go

    if webgl is False or (webgl is None and _points(fig) < WEBGL_FROM):
        traces = [
            go.Scatter(**{k: v for k, v in t.to_plotly_json().items() if k != "type"})
            if t.type == "scattergl"
            else t
            for t in fig.data
        ]
        fig = go.Figure(traces, layout=fig.layout)
    fig.update_layout(height=height, margin={"t": 50, "r": 20, "b": 50, "l": 60})
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        config=PLOTLY_CONFIG,
        default_width="100%",
        default_height=f"{height}px",
    )


def data_block(element_id: str, data: Any) -> str:
    """JSON for the page's script, in a ``<script type="application/json">`` block."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    # "<" escaped, so no "</script>" inside the data can end the block early.
    text = text.replace("<", "\\u003c")
    return f'<script type="application/json" id="{html.escape(element_id)}">{text}</script>'


def image_html(path: str | Path, alt: str) -> str:
    """A PNG (or JPEG, SVG) the run wrote, inlined as a ``data:`` URI."""
    path = Path(path)
    kind = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".svg": "svg+xml"}[path.suffix.lower()]
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<img class="picture" alt="{html.escape(alt)}" src="data:image/{kind};base64,{encoded}">'
    )


def cell_text(value: Any) -> str:
    """A table cell: numbers to 4 significant digits, everything else as text."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        return "NA" if not np.isfinite(value) else f"{value:.4g}"
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "NA"
    return str(value)


def table_html(
    table: pd.DataFrame,
    *,
    table_id: str = "",
    searchable: bool = False,
    row_data: Sequence[dict[str, str]] | None = None,
    attrs: dict[str, str] | None = None,
    caption: str = "",
) -> str:
    """A sortable table (click a heading); ``searchable`` adds a search box above it;
    ``row_data`` are ``data-*`` attributes of each row and ``attrs`` of the table (the page's
    script reads them)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for i, values in enumerate(table.itertuples(index=False, name=None)):
        extra = ""
        if row_data is not None:
            extra = "".join(
                f' data-{key}="{html.escape(str(value))}"' for key, value in row_data[i].items()
            )
        cells = "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in values)
        rows.append(f"<tr{extra}>{cells}</tr>")
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    ident += "".join(f' data-{k}="{html.escape(v)}"' for k, v in (attrs or {}).items())
    search = (
        f'<input class="search" type="search" placeholder="search" data-table="{table_id}">'
        if searchable
        else ""
    )
    note = f"<p class='caption'>{caption}</p>" if caption else ""
    return (
        f'{note}{search}<div class="table-wrap"><table class="sortable"{ident}>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _asset(name: str) -> str:
    return resources.files("genoformer.report").joinpath(name).read_text(encoding="utf-8")


def render_page(title: str, sections: Sequence[Section]) -> str:
    """The whole page: head (policy, style, plotly.js), a list of runs, then each section."""
    from plotly.offline import get_plotlyjs

    nav = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections)
    body = []
    for section in sections:
        views = "".join(
            f'<div class="view" data-view="{html.escape(v.kind)}">'
            f"<h3>{html.escape(v.title)}</h3>{v.body}</div>"
            for v in section.views
        )
        body.append(
            f'<section class="run" id="{section.anchor}"><h2>{html.escape(section.title)}</h2>'
            f"{section.summary}{views}</section>"
        )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_asset('page.css')}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>{html.escape(title)}</h1><ul class='runs'>{nav}</ul></header>"
        f"<main>{''.join(body)}</main><script>{_asset('page.js')}</script></body></html>\n"
    )
