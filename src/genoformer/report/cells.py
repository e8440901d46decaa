"""Views of single-cell runs: ``sc embed`` (UMAP coloured by any cell attribute, or by the
label a classification run of the same report gave the cells, chosen in a menu) and
``sc pretrain`` (loss curves and the masked-gene metrics).

The UMAP layout is computed here from the cell embeddings the run wrote, with the run's
seed, as ``sc embed`` computes its own picture. The colour menu is plotly's own
(``updatemenus``): one set of traces per attribute, the menu shows one set at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from genoformer.report.page import View, figure_html
from genoformer.report.runs import Run
from genoformer.report.views import loss_view

__all__ = ["embed_views", "pretrain_views", "umap_figure"]

#: Attributes with more distinct values than this are drawn on a colour scale (numbers) or
#: left out of the menu (text, e.g. cell ids).
MAX_CATEGORIES = 40
#: Commands whose ``predictions`` table labels cells (``cell_id``, ``predicted``).
PREDICTING = ("sc classify", "sc predict")


def _attributes(cells: pd.DataFrame) -> list[str]:
    """Cell attributes a colour can show: the non-embedding columns but the cell index."""
    chosen = []
    for column in cells.columns:
        name = str(column)
        if name.isdigit() or name in ("cell_index", "cell_id"):
            continue
        values = cells[column]
        numeric = pd.api.types.is_numeric_dtype(values)
        if numeric or values.nunique() <= MAX_CATEGORIES:
            chosen.append(name)
    return chosen


def _traces(xy: np.ndarray, ids: np.ndarray, name: str, values: pd.Series) -> list:
    """Categories (one trace each, the largest first) or one trace on a colour scale."""
    import plotly.graph_objects as go

    from genoformer.engine.figures import palette

    common = {"mode": "markers", "hovertemplate": "%{text}<extra></extra>"}
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > MAX_CATEGORIES:
        text = [f"{i}<br>{name}: {v:.4g}" for i, v in zip(ids, values, strict=True)]
        marker = {"size": 5, "color": values.to_numpy(dtype=float), "colorscale": "Viridis",
                  "showscale": True, "colorbar": {"title": {"text": name}}}  # fmt: skip
        return [go.Scattergl(x=xy[:, 0], y=xy[:, 1], marker=marker, text=text, name=name,
                             showlegend=False, **common)]  # fmt: skip
    labels = values.astype(str).where(values.notna(), "NA").to_numpy()
    categories = list(pd.Series(labels).value_counts().index)
    traces = []
    for category, colour in zip(categories, palette(len(categories)), strict=True):
        chosen = labels == category
        text = [f"{i}<br>{name}: {category}" for i in ids[chosen]]
        traces.append(
            go.Scattergl(
                x=xy[chosen, 0],
                y=xy[chosen, 1],
                marker={"size": 5, "color": colour},
                name=f"{category} ({chosen.sum():,})",
                text=text,
                **common,
            )  # fmt: skip
        )
    return traces


def umap_figure(xy: np.ndarray, cells: pd.DataFrame, attributes: list[str]):
    """UMAP points, one set of traces per attribute, a menu choosing which set shows."""
    import plotly.graph_objects as go

    ids = (cells["cell_id"] if "cell_id" in cells else pd.Series(range(len(cells)))).astype(str)
    fig = go.Figure()
    groups = []
    for name in attributes:
        traces = _traces(xy, ids.to_numpy(), name, cells[name])
        groups.append(range(len(fig.data), len(fig.data) + len(traces)))
        for trace in traces:
            fig.add_trace(trace.update(visible=not groups[:-1]))
    buttons = []
    for name, group in zip(attributes, groups, strict=True):
        visible = [i in group for i in range(len(fig.data))]
        buttons.append({"label": name, "method": "update",
                        "args": [{"visible": visible}, {"legend.title.text": name}]})  # fmt: skip
    fig.update_layout(
        title={"text": f"UMAP of {len(cells):,} cells", "x": 0.5, "xanchor": "center"},
        xaxis={"title": {"text": "UMAP 1"}, "showticklabels": False},
        yaxis={"title": {"text": "UMAP 2"}, "showticklabels": False},
        legend={"title": {"text": attributes[0] if attributes else ""}},
        updatemenus=[
            {
                "buttons": buttons,
                "direction": "down",
                "x": 0.0,
                "xanchor": "left",
                "y": 1.12,
                "yanchor": "top",
                "showactive": True,
            }
        ],  # fmt: skip
        template="plotly_white",
        hovermode="closest",
    )
    return fig


def _with_predictions(cells: pd.DataFrame, others: Sequence[Run]) -> pd.DataFrame:
    """``cells`` and, from each classification run in the report (``sc classify``,
    ``sc predict``) that labelled some of these cells (same ``cell_id``), the label it gave."""
    if "cell_id" not in cells.columns:
        return cells
    ids = cells["cell_id"].astype(str)
    added = {}
    for other in others:
        if other.command not in PREDICTING:
            continue
        table = other.table("predictions")
        if table is None or not {"cell_id", "predicted"} <= set(table.columns):
            continue
        given = table.drop_duplicates("cell_id").set_index(table["cell_id"].astype(str))
        predicted = ids.map(given["predicted"].astype(str))
        if predicted.notna().any():
            name = f"predicted ({other.command}: {other.path.name})"
            added[name] = predicted.fillna("not predicted").to_numpy()
    return cells.assign(**added) if added else cells


def embed_views(run: Run, anchor: str, *, others: Sequence[Run] = ()) -> list[View]:
    """The UMAP of the cell embeddings, coloured by any cell attribute, or by the label a
    classification run among ``others`` (the report's runs) gave the cells."""
    from genoformer.sc.embeddings import embedding_matrix
    from genoformer.sc.plots import umap_coordinates

    cells = run.table("cells", "cells_csv")
    if cells is None or len(cells) < 4:
        return [View("UMAP", "<p class='note'>fewer than 4 cells: no UMAP</p>", kind="umap")]
    xy = umap_coordinates(embedding_matrix(cells), seed=run.manifest.get("seed") or 0)
    cells = _with_predictions(cells, others)
    attributes = _attributes(cells)
    fig = umap_figure(xy, cells, attributes)
    note = (
        "<p class='caption'>Colour by: the menu at the top left "
        f"({', '.join(attributes) or 'no cell attributes in the run'}).</p>"
    )
    return [View("UMAP of cell embeddings", note + figure_html(fig, height=560), kind="umap")]


def pretrain_views(run: Run, anchor: str) -> list[View]:
    """Loss curves of masked-gene pretraining."""
    loss = loss_view(run)
    return [loss] if loss is not None else []
