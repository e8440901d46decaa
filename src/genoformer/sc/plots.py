"""Pictures of cell embeddings: a UMAP coloured by a cell attribute, a clustered heatmap.

Each picture is written as a PNG (matplotlib) and as an interactive HTML page (plotly) whose
hover shows the cell id and its label (UMAP) or the label, dimension and value (heatmap).
:func:`plot_embeddings` draws both from an embeddings table written by
:func:`genoformer.sc.embeddings.embed`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from genoformer.engine.errors import InputError
from genoformer.engine.plots import save_figure, save_html
from genoformer.sc.io.matrix import read_failure

__all__ = [
    "embedding_heatmap",
    "embedding_umap",
    "label_means",
    "plot_embeddings",
    "umap_coordinates",
]

#: Above this many distinct labels the UMAP colours a continuous attribute instead.
MAX_CATEGORIES = 40
#: Formats of the static pictures (the HTML page is always written beside them).
FORMATS = ("png",)
#: What to pass instead of an unreadable embeddings table.
_FIX_TABLE = "pass cell_embeddings.parquet or .csv written by `genoformer sc embed`"


def _as_labels(labels: Sequence | np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(labels, dtype=object)
    if values.shape != (n,):
        raise ValueError(f"{values.size} labels for {n} cells")
    return np.array(["NA" if pd.isna(v) else str(v) for v in values], dtype=object)


def _check_embeddings(embeddings: np.ndarray) -> np.ndarray:
    values = np.asarray(embeddings, dtype=np.float32)
    if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] < 1:
        raise ValueError(f"embeddings of shape {values.shape}: expected (cells >= 2, dimensions)")
    if not np.isfinite(values).all():
        raise ValueError("embeddings hold NaN or infinite values")
    return values


def umap_coordinates(
    embeddings: np.ndarray, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.3
) -> np.ndarray:
    """Two-dimensional UMAP coordinates of ``embeddings`` (cells x dimensions), seeded.

    ``n_neighbors`` is lowered for fewer cells than it (UMAP needs at least two more cells).
    """
    values = _check_embeddings(embeddings)
    n = values.shape[0]
    if n < 4:
        raise ValueError(f"UMAP needs at least 4 cells, got {n}")
    import umap

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(n_neighbors, n - 2),
        min_dist=min_dist,
        random_state=seed,
        # A fixed seed makes UMAP single-threaded; it says so on every call.
        n_jobs=1,
        init="spectral" if n > 10 else "random",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(reducer.fit_transform(values), dtype=np.float64)


def _category_colors(names: Sequence[str]) -> dict[str, tuple]:
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _hex(color: tuple) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in color[:3])


@dataclass(frozen=True)
class _UmapPoints:
    """The cells of a UMAP, drawn into the picture (matplotlib) and the page (plotly)."""

    xy: np.ndarray
    ids: np.ndarray
    names: np.ndarray
    label: str
    size: float

    def draw_continuous(self, fig: Figure, ax: Any, page: Any, values: pd.Series) -> None:
        """Numbers with many distinct values: one continuous colour scale."""
        import plotly.graph_objects as go

        xy, label = self.xy, self.label
        points = ax.scatter(
            xy[:, 0], xy[:, 1], c=values, s=self.size, cmap="viridis", edgecolor="none", alpha=0.8
        )
        fig.colorbar(points, ax=ax, label=label)
        page.add_trace(
            go.Scattergl(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers",
                marker={"size": 5, "color": values, "colorscale": "Viridis", "showscale": True},
                text=[f"{i}<br>{label}: {v}" for i, v in zip(self.ids, self.names, strict=True)],
                hovertemplate="%{text}<extra></extra>",
                showlegend=False,
            )
        )

    def draw_categories(self, ax: Any, page: Any) -> None:
        """Categories: one colour and legend entry each, the largest first."""
        import plotly.graph_objects as go

        xy, label, names = self.xy, self.label, self.names
        categories = list(pd.Series(names).value_counts().index)
        colors = _category_colors(categories)
        for category in categories:
            chosen = names == category
            ax.scatter(
                xy[chosen, 0],
                xy[chosen, 1],
                s=self.size,
                color=colors[category],
                edgecolor="none",
                alpha=0.8,
                label=f"{category} ({chosen.sum():,})",
            )
            page.add_trace(
                go.Scattergl(
                    x=xy[chosen, 0],
                    y=xy[chosen, 1],
                    mode="markers",
                    name=category,
                    marker={"size": 5, "color": _hex(colors[category])},
                    text=[f"{i}<br>{label}: {category}" for i in self.ids[chosen]],
                    hovertemplate="%{text}<extra></extra>",
                )
            )
        ax.legend(
            title=label,
            frameon=False,
            fontsize="small",
            markerscale=max(1.0, 12 / self.size),
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
        )


def embedding_umap(
    embeddings: np.ndarray,
    labels: Sequence | np.ndarray,
    path: str | os.PathLike,
    *,
    cell_ids: Sequence | np.ndarray | None = None,
    label: str = "label",
    title: str | None = None,
    seed: int = 0,
    coordinates: np.ndarray | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """UMAP of cell embeddings coloured by a cell attribute: PNG and interactive HTML.

    Parameters
    ----------
    embeddings
        Cells x dimensions.
    labels
        One label per cell (categories; numbers with more than :data:`MAX_CATEGORIES`
        distinct values are coloured on a continuous scale).
    path
        Target path; the HTML page is written as ``<path>.html``.
    cell_ids
        Shown on hover (default: the row numbers).
    label
        Name of the attribute, for the legend and the hover.
    title
        Figure title.
    seed
        Seed of the UMAP layout.
    coordinates
        Precomputed two-dimensional coordinates (skips UMAP).
    formats
        Static formats (see :func:`~genoformer.engine.plots.save_figure`).

    Returns
    -------
    list of Path
        The static files, then the HTML page.
    """
    import plotly.graph_objects as go

    values = _check_embeddings(embeddings)
    n = values.shape[0]
    xy = umap_coordinates(values, seed=seed) if coordinates is None else np.asarray(coordinates)
    ids = np.arange(n).astype(str) if cell_ids is None else np.asarray(cell_ids).astype(str)
    raw = pd.Series(np.asarray(labels, dtype=object))
    numeric = pd.to_numeric(raw, errors="coerce")
    continuous = bool(numeric.notna().all() and raw.nunique() > MAX_CATEGORIES)
    names = _as_labels(labels, n)
    title = title or f"UMAP of {n:,} cells by {label}"

    fig = Figure(figsize=(7.5, 6), layout="constrained")
    ax = fig.subplots()
    size = max(2.0, min(20.0, 3000 / n))
    page = go.Figure()
    points = _UmapPoints(xy, ids, names, label, size)
    if continuous:
        points.draw_continuous(fig, ax, page, numeric)
    else:
        points.draw_categories(ax, page)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    written = save_figure(fig, path, formats=formats)
    page.update_layout(
        title=title,
        xaxis={"title": "UMAP 1", "showticklabels": False},
        yaxis={"title": "UMAP 2", "showticklabels": False},
        legend={"title": {"text": label}},
        template="plotly_white",
        hovermode="closest",
    )
    html = Path(path)
    written.append(save_html(page, html.with_name(html.stem + ".html")))
    return written


def label_means(embeddings: np.ndarray, labels: Sequence | np.ndarray) -> pd.DataFrame:
    """The mean embedding of each label: labels x dimensions (labels sorted)."""
    values = np.asarray(embeddings, dtype=np.float64)
    names = _as_labels(labels, values.shape[0])
    frame = pd.DataFrame(values, columns=[str(i) for i in range(values.shape[1])])
    return frame.groupby(names, sort=True).mean()


def _leaf_order(values: np.ndarray) -> np.ndarray:
    """Rows ordered by average-linkage clustering on correlation (Euclidean if constant)."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering

    if values.shape[0] < 3:
        return np.arange(values.shape[0])
    metric = "correlation" if np.all(values.std(axis=1) > 0) else "euclidean"
    tree = linkage(values, method="average", metric=metric)
    return leaves_list(optimal_leaf_ordering(tree, values, metric=metric))


def embedding_heatmap(
    embeddings: np.ndarray,
    labels: Sequence | np.ndarray,
    path: str | os.PathLike,
    *,
    label: str = "label",
    title: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Heatmap of the mean embedding per label, labels and dimensions clustered.

    Each dimension is standardised across labels (z-score) so that all dimensions show;
    labels and dimensions are ordered by average-linkage hierarchical clustering.

    Returns
    -------
    list of Path
        The static files, then the HTML page (``<path>.html``; hover: label, dimension,
        z-score and mean).
    """
    import plotly.graph_objects as go

    means = label_means(_check_embeddings(embeddings), labels)
    values = means.to_numpy()
    spread = values.std(axis=0)
    z = (values - values.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    rows = _leaf_order(z)
    cols = _leaf_order(z.T)
    z = z[np.ix_(rows, cols)]
    raw = values[np.ix_(rows, cols)]
    row_names = [str(means.index[i]) for i in rows]
    col_names = [str(means.columns[j]) for j in cols]
    title = title or f"Mean embedding by {label}"
    limit = float(np.abs(z).max()) or 1.0

    n_rows, n_cols = z.shape
    fig = Figure(figsize=(min(16.0, 4 + 0.04 * n_cols), 2 + 0.3 * n_rows), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(
        z, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest"
    )
    fig.colorbar(image, ax=ax, label="z-score across labels", shrink=0.8)
    ax.set_yticks(range(n_rows), row_names, fontsize="small")
    ax.set_ylabel(label)
    ax.set_xlabel(f"embedding dimension ({n_cols}, clustered)")
    if n_cols <= 64:
        ax.set_xticks(range(n_cols), col_names, fontsize="x-small", rotation=90)
    else:
        ax.set_xticks([])
    ax.set_title(title)
    written = save_figure(fig, path, formats=formats)

    hover = [
        [
            f"{label}: {row_names[i]}<br>dimension {col_names[j]}<br>z {z[i, j]:.2f}"
            f"<br>mean {raw[i, j]:.4g}"
            for j in range(n_cols)
        ]
        for i in range(n_rows)
    ]
    page = go.Figure(
        go.Heatmap(
            z=z,
            x=col_names,
            y=row_names,
            colorscale="RdBu_r",
            zmid=0,
            text=hover,
            hovertemplate="%{text}<extra></extra>",
            colorbar={"title": {"text": "z-score"}},
        )
    )
    page.update_layout(
        title=title,
        xaxis={"title": "embedding dimension", "type": "category"},
        yaxis={"title": label, "type": "category", "autorange": "reversed"},
        template="plotly_white",
    )
    html = Path(path)
    written.append(save_html(page, html.with_name(html.stem + ".html")))
    return written


def plot_embeddings(
    table: str | os.PathLike | pd.DataFrame,
    *,
    label: str,
    out: str | os.PathLike,
    seed: int = 0,
    formats: Sequence[str] = FORMATS,
) -> dict[str, list[Path]]:
    """The UMAP and the heatmap from an embeddings table (``cell_embeddings.parquet``/``.csv``).

    Parameters
    ----------
    table
        A table with ``cell_id``, the ``label`` column and the dimensions ``0`` .. ``H-1``,
        as :func:`~genoformer.sc.embeddings.embed` writes it, or its path.
    label
        The cell attribute that colours the UMAP and groups the heatmap.
    out
        Folder for ``umap.png``/``.html`` and ``heatmap.png``/``.html``.
    seed
        Seed of the UMAP layout.

    Returns
    -------
    dict
        ``{"umap": [...], "heatmap": [...]}``: the files written.
    """
    source = None
    if not isinstance(table, pd.DataFrame):
        source = Path(table)
        if not source.exists():
            raise InputError("file not found", file=source, fix="pass cell_embeddings.parquet")
        with read_failure(source, "cannot read the table ({error})", _FIX_TABLE):
            table = (
                pd.read_parquet(source)
                if source.suffix == ".parquet"
                else pd.read_csv(source, sep="\t" if source.suffix == ".tsv" else ",")
            )
    table.columns = [str(c) for c in table.columns]
    dims = [c for c in table.columns if c.isdigit()]
    if not dims:
        raise InputError(
            "no embedding columns (0, 1, ...) in the table", file=source, fix=_FIX_TABLE
        )
    if label not in table.columns:
        raise InputError(
            f"no column {label!r} (columns: "
            + ", ".join(c for c in table.columns if not c.isdigit())
            + ")",
            file=source,
            where="label",
            fix="pick one of those columns",
        )
    dims.sort(key=int)
    values = table[dims].to_numpy(np.float32)
    labels = table[label].to_numpy()
    ids = table["cell_id"].to_numpy() if "cell_id" in table.columns else None
    out = Path(out)
    return {
        "umap": embedding_umap(
            values,
            labels,
            out / "umap",
            cell_ids=ids,
            label=label,
            seed=seed,
            formats=formats,
        ),
        "heatmap": embedding_heatmap(values, labels, out / "heatmap", label=label, formats=formats),
    }
