"""Model importance beside the association (genoformer.gwas.model.explain): PNG/PDF and HTML.

:func:`importance_track` draws the association Manhattan plot above a model importance
track on one genome axis; :func:`pair_heatmap` the interaction contrasts of variant pairs.
Each computes its points, lines, hover text and title once into an
:class:`~genoformer.engine.figures.Chart`; the PNG and the HTML functions are its two
renderings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genoformer.engine.docs import shared_docs
from genoformer.engine.figure_files import FORMATS
from genoformer.engine.figures import Axis, Chart, Heatmap, Panel, RefLine, render_html, render_png
from genoformer.gwas.plots.association import (
    GENOME_WIDE,
    HIT_COLOR,
    LOG_P,
    _genome_axis,
    _hover,
    _prepare,
    chromosome_axis,
    genome_layers,
)

__all__ = [
    "importance_track",
    "importance_track_html",
    "pair_heatmap",
    "pair_heatmap_html",
]

#: FDR level at which an importance is drawn as called.
CALLED_Q = 0.05


def _importance_tracks(
    importance: pd.DataFrame, results: pd.DataFrame, score: str
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], np.ndarray]:
    """Association and importance rows on one genome axis: (assoc, importance, names, centres).

    ``importance`` needs ``chrom pos id`` and the ``score`` column (``{score}_p`` and
    ``{score}_q`` are used when present); decoy rows (``is_decoy``) are left out, since a
    decoy has no place of its own on the genome.
    """
    if score not in importance.columns:
        raise ValueError(f"no column {score!r} in the importance table")
    table = importance
    if "is_decoy" in table.columns:
        table = table[~table["is_decoy"].astype(bool)]
    track = pd.DataFrame(
        {
            "chrom": table["chrom"].astype(str).to_numpy(),
            "pos": pd.to_numeric(table["pos"], errors="coerce").to_numpy(dtype=np.float64),
            "id": table["id"].astype(str).to_numpy(),
            "score": pd.to_numeric(table[score], errors="coerce").to_numpy(dtype=np.float64),
        }
    )
    for suffix in ("p", "q"):
        column = f"{score}_{suffix}"
        track[suffix] = table[column].to_numpy(dtype=np.float64) if column in table else np.nan
    track = track[np.isfinite(track["pos"])]
    assoc = _prepare(results)
    both = pd.concat(
        [assoc.assign(_track=0), track.assign(_track=1)], ignore_index=True, sort=False
    )
    both, names, centres = _genome_axis(both)
    assoc = both[both["_track"] == 0].drop(columns="_track").reset_index(drop=True)
    track = both[both["_track"] == 1].reset_index(drop=True)
    return assoc, track[["chrom", "pos", "id", "score", "p", "q", "x"]], names, centres


def _track_hover(track: pd.DataFrame, assoc: pd.DataFrame, label: str) -> np.ndarray:
    """Hover text of the importance track: id, position, importance, its p and FDR, and the
    association p."""
    p_by_id = dict(zip(assoc["id"], assoc["p"], strict=False))
    p_assoc = track["id"].map(p_by_id).astype(float)
    return (
        "<b>" + track["id"] + "</b><br>"
        + track["chrom"] + ":" + track["pos"].map("{:.0f}".format)
        + f"<br>{label} " + track["score"].map("{:.4g}".format)
        + "<br>empirical p " + track["p"].map("{:.3g}".format)
        + "  FDR " + track["q"].map("{:.3g}".format)
        + "<br>association p " + p_assoc.map("{:.3g}".format)
    ).to_numpy()  # fmt: skip


def _importance_chart(
    importance: pd.DataFrame,
    results: pd.DataFrame,
    *,
    score: str,
    label: str | None = None,
    null_max: float | None = None,
    genome_wide: float = GENOME_WIDE,
    title: str | None = None,
) -> Chart:
    """Association (top panel) and importance (bottom panel) on one genome axis."""
    assoc, track, names, centres = _importance_tracks(importance, results, score)
    shown = label or score
    common = {"names": names, "sizes": (5, 10)}
    top_lines, bottom_lines = [], []
    if genome_wide:
        top_lines.append(
            RefLine(-np.log10(genome_wide), color=HIT_COLOR, label=f"p = {genome_wide:g}")
        )
    if null_max is not None and np.isfinite(null_max):
        bottom_lines.append(RefLine(null_max, color="grey", dash="dash", label="largest decoy"))
    top = Panel(
        genome_layers(
            assoc,
            "logp",
            hit=assoc["p"].to_numpy() < genome_wide,
            hit_label=f"p < {genome_wide:g}",
            hover=_hover(assoc),
            **common,
        ),
        top_lines,
        x=Axis(grid=False),
        y=Axis(f"association {LOG_P[0]}", tex=f"association {LOG_P[1]}", from_zero=True),
        legend="upper right",
        frame=False,
    )
    bottom = Panel(
        genome_layers(
            track,
            "score",
            hit=track["q"].to_numpy() <= CALLED_Q,
            hit_label=f"FDR <= {CALLED_Q:g}",
            hover=_track_hover(track, assoc, shown),
            **common,
        ),
        bottom_lines,
        x=chromosome_axis(names, centres),
        y=Axis(shown, from_zero=True),
        legend="upper right",
        frame=False,
    )
    return Chart(
        [top, bottom],
        title=title or f"association and model importance ({len(track):,} variants)",
        size=(12, 6.5),
    )


@shared_docs
def importance_track(
    importance: pd.DataFrame,
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    formats: Sequence[str] = FORMATS,
    **options: Any,
) -> list[Path]:
    """Association Manhattan plot (top) and a model importance track (bottom), one x axis.

    Parameters
    ----------
    importance
        One row per model column: ``chrom pos id``, the ``score`` column and, when present,
        ``{score}_q`` (points with q <= 0.05 are drawn red) and ``is_decoy`` (decoys are
        left out).
    results
        Association results of the same variants (plink2 ``--glm`` columns).
    {figure_path}
    score
        The importance column to draw.
    label
        Y axis label of the importance panel (default: ``score``).
    null_max
        The largest decoy score, drawn as a dashed line.
    genome_wide
        p-value line of the association panel.
    {figure_title}
    {formats}

    Returns
    -------
    {figures}
    """
    return render_png(_importance_chart(importance, results, **options), path, formats=formats)


@shared_docs
def importance_track_html(
    importance: pd.DataFrame, results: pd.DataFrame, path: str | os.PathLike, **options: Any
) -> Path:
    """Interactive two-panel view (plotly): association above, importance below, one zoom.

    Hovering a point shows the variant's id, chrom:pos, association p, importance and the
    importance's empirical p and FDR. ``options``: ``score``, ``label``, ``null_max``,
    ``genome_wide`` and ``title``, as :func:`importance_track` takes them.

    Returns
    -------
    {page}
    """
    return render_html(_importance_chart(importance, results, **options), path)


def _pair_matrix(
    pairs: pd.DataFrame, order: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Variant ids (``order``, else first appearance) and symmetric interaction, p and q
    matrices."""
    tested = pairs[~pairs["null"].astype(bool)] if "null" in pairs.columns else pairs
    ids: list[str] = []
    named = set(tested["id_a"].astype(str)) | set(tested["id_b"].astype(str))
    for name in order or []:
        if str(name) in named and str(name) not in ids:
            ids.append(str(name))
    for a, b in zip(tested["id_a"].astype(str), tested["id_b"].astype(str), strict=True):
        for name in (a, b):
            if name not in ids:
                ids.append(name)
    where = {name: i for i, name in enumerate(ids)}
    value, p, q = (np.full((len(ids), len(ids)), np.nan) for _ in range(3))
    for row in tested.itertuples(index=False):
        i, j = where[str(row.id_a)], where[str(row.id_b)]
        value[i, j] = value[j, i] = row.interaction
        p[i, j] = p[j, i] = getattr(row, "p", np.nan)
        q[i, j] = q[j, i] = getattr(row, "q", np.nan)
    return ids, value, p, q


def _pair_chart(
    pairs: pd.DataFrame, *, order: Sequence[str] | None = None, title: str | None = None
) -> Chart:
    """The pair heatmap's description: contrasts, ``*`` at FDR <= 0.05, hover per cell."""
    ids, value, p, q = _pair_matrix(pairs, order)
    hover = [
        [
            f"<b>{ids[i]}</b> x <b>{ids[j]}</b><br>interaction {value[i, j]:.4g}"
            f"<br>empirical p {p[i, j]:.3g}  FDR {q[i, j]:.3g}"
            for j in range(len(ids))
        ]
        for i in range(len(ids))
    ]
    limit = float(np.nanmax(np.abs(value))) if np.isfinite(value).any() else 1.0
    heatmap = Heatmap(
        value,
        ids,
        ids,
        # A symmetric range centres the diverging colormap at 0 (no interaction).
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        colorbar="interaction contrast",
        hover=hover,
        marks=q <= CALLED_Q,
    )
    side = min(14.0, 2.5 + 0.35 * len(ids))
    return Chart(
        [Panel([heatmap])],
        title=title or f"pairwise interaction ({len(ids)} variants)",
        size=(side + 1.5, side),
    )


def pair_heatmap(
    pairs: pd.DataFrame,
    path: str | os.PathLike,
    *,
    formats: Sequence[str] = FORMATS,
    **options: Any,
) -> list[Path]:
    """Heatmap of the interaction contrasts of variant pairs; ``*`` marks FDR <= 0.05.

    ``pairs`` holds ``id_a id_b interaction`` and optionally ``q`` and ``null`` (null
    pairs are left out). Variants appear in ``order`` (e.g. by importance), then in the
    order they first occur in the table; ``options``: ``order`` and ``title``.
    """
    return render_png(_pair_chart(pairs, **options), path, formats=formats)


def pair_heatmap_html(pairs: pd.DataFrame, path: str | os.PathLike, **options: Any) -> Path:
    """Interactive pair heatmap (plotly): hover a cell for both ids, contrast, p and FDR;
    ``options`` (``order``, ``title``) as :func:`pair_heatmap` takes them."""
    return render_html(_pair_chart(pairs, **options), path)
