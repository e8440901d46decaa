"""Manhattan and QQ plots of association results: static (PNG/PDF) and interactive HTML.

Every function takes a results table in plink2 ``--glm`` columns (``#CHROM POS ID REF ALT
A1 ... BETA|OR ... P``; ``CHROM``/``CHR``, ``BP``, ``SNP`` are accepted too). When a
``TEST`` column is present only the ``ADD`` rows are drawn, so an unfiltered plink2 table
with covariate rows plots correctly. Chromosomes are ordered naturally: 1..22, X, Y, XY,
MT, then any other name alphabetically.

Millions of points are thinned before drawing: above ``p = 0.01`` (where points overlap
into a solid band) only one point per screen pixel-sized bin is kept; every point below is
drawn. The picture is the same, the files are small enough to open.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from genoformer.engine.genome import chromosome_order_key
from genoformer.engine.plots import FORMATS, save_figure, save_html
from genoformer.gwas.stats.adjust import genomic_control_lambda

__all__ = [
    "genomic_control_lambda",
    "manhattan",
    "manhattan_html",
    "qq",
    "pc_scatter",
    "qq_html",
]

GENOME_WIDE = 5e-8
SUGGESTIVE = 1e-5
#: Alternating chromosome colours (dark / light blue) and the colour of significant hits.
COLORS = ("#1f4e79", "#6fa8dc")
HIT_COLOR = "#d62728"
#: Above this p-value points are thinned to one per pixel-sized bin.
THIN_ABOVE_P = 0.01
_ALIASES = {
    "chrom": ("#CHROM", "CHROM", "CHR", "chrom", "chr"),
    "pos": ("POS", "BP", "pos", "bp"),
    "id": ("ID", "SNP", "id", "snp"),
    "p": ("P", "p", "PVALUE", "pval"),
}


def _column(results: pd.DataFrame, what: str, required: bool = True) -> str | None:
    for name in _ALIASES[what]:
        if name in results.columns:
            return name
    if required:
        raise ValueError(
            f"results need a {'/'.join(_ALIASES[what])} column; they have {list(results.columns)}"
        )
    return None


def _prepare(results: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: chrom, pos, id, p, -log10 p, x (genome coordinate), and hover text."""
    if "TEST" in results.columns:
        results = results[results["TEST"].astype(str) == "ADD"]
    chrom, pos, pid = _column(results, "chrom"), _column(results, "pos"), _column(results, "p")
    vid = _column(results, "id", required=False)
    table = pd.DataFrame(
        {
            "chrom": results[chrom].astype(str).to_numpy(),
            "pos": pd.to_numeric(results[pos], errors="coerce").to_numpy(dtype=np.float64),
            "p": pd.to_numeric(results[pid], errors="coerce").to_numpy(dtype=np.float64),
            "id": (results[vid].astype(str) if vid else pd.Series(["."] * len(results))).to_numpy(),
        }
    )
    for name in ("REF", "ALT", "A1"):
        table[name] = results[name].astype(str).to_numpy() if name in results.columns else ""
    effect = next((c for c in ("BETA", "OR") if c in results.columns), None)
    table["effect_name"] = effect or ""
    table["effect"] = (
        pd.to_numeric(results[effect], errors="coerce").to_numpy(dtype=np.float64)
        if effect
        else np.nan
    )
    table = table[np.isfinite(table["p"]) & np.isfinite(table["pos"])].copy()
    # p = 0 (underflow) is drawn at the smallest positive double rather than lost.
    table["logp"] = -np.log10(np.clip(table["p"].to_numpy(), np.finfo(float).tiny, 1.0))
    return table


def _genome_axis(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """Add a genome-wide x coordinate; return chromosome names and their centres."""
    names = sorted(table["chrom"].unique(), key=chromosome_order_key)
    spans = table.groupby("chrom")["pos"].agg(["min", "max"])
    total = float((spans["max"] - spans["min"]).sum()) or float(len(names))
    gap = 0.01 * total
    offsets, centres, start = {}, [], 0.0
    for name in names:
        lo, hi = spans.loc[name, "min"], spans.loc[name, "max"]
        offsets[name] = start - lo
        centres.append(start + (hi - lo) / 2)
        start += (hi - lo) + gap
    table = table.assign(x=table["pos"] + table["chrom"].map(offsets).to_numpy())
    order = np.lexsort(
        (table["pos"].to_numpy(), table["chrom"].map({n: i for i, n in enumerate(names)}))
    )
    return table.iloc[order].reset_index(drop=True), names, np.asarray(centres)


def _thin(
    x: np.ndarray, y: np.ndarray, p: np.ndarray, bins: int = 2000, ycell: float = 0.02
) -> np.ndarray:
    """Indices to draw: all points with p <= 0.01, one per (x, y) bin among the others."""
    keep = p <= THIN_ABOVE_P
    dense = np.flatnonzero(~keep)
    if dense.size <= bins:
        return np.arange(x.size)
    span = (np.ptp(x) or 1.0) / bins
    cells = np.floor((x[dense] - x.min()) / span) * 1e6 + np.floor(y[dense] / ycell)
    _, first = np.unique(cells, return_index=True)
    return np.sort(np.concatenate([np.flatnonzero(keep), dense[first]]))


def top_hits(
    table: pd.DataFrame, threshold: float, n: int = 10, window: float = 500_000
) -> pd.DataFrame:
    """The strongest variants below ``threshold``, at most one per ``window`` bp region."""
    candidates = table[table["p"] < threshold].sort_values("p", kind="stable")
    chosen: list[int] = []
    for idx, row in candidates.iterrows():
        if len(chosen) >= n:
            break
        near = table.loc[chosen]
        if ((near["chrom"] == row["chrom"]) & ((near["pos"] - row["pos"]).abs() < window)).any():
            continue
        chosen.append(idx)
    return table.loc[chosen]


def manhattan(
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    genome_wide: float = GENOME_WIDE,
    suggestive: float | None = SUGGESTIVE,
    title: str | None = None,
    annotate: int = 10,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Manhattan plot: -log10 p along the genome, chromosomes in alternating colours.

    Parameters
    ----------
    results
        Association results (plink2 ``--glm`` columns, see the module docstring).
    path
        Target path (see :func:`~genoformer.engine.plots.save_figure`).
    genome_wide, suggestive
        p-value thresholds drawn as a red and a dashed blue line (``None`` to leave one out).
    title
        Figure title.
    annotate
        Label at most this many top hits below ``genome_wide`` (one per 500 kb region).
    formats
        File formats to write.

    Returns
    -------
    list of Path
        The files written.
    """
    table, names, centres = _genome_axis(_prepare(results))
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax = fig.subplots()
    if table.empty:
        ax.text(0.5, 0.5, "no finite p-values", ha="center", va="center", transform=ax.transAxes)
    index = {n: i for i, n in enumerate(names)}
    colour_index = table["chrom"].map(index).to_numpy() % 2
    drawn = _thin(table["x"].to_numpy(), table["logp"].to_numpy(), table["p"].to_numpy())
    x, y = table["x"].to_numpy()[drawn], table["logp"].to_numpy()[drawn]
    colours = np.asarray(COLORS)[colour_index[drawn]]
    hit = table["p"].to_numpy()[drawn] < genome_wide
    # Rasterised points keep the PDF small and fast to open with a million variants.
    ax.scatter(x[~hit], y[~hit], c=colours[~hit], s=4, lw=0, rasterized=True)
    ax.scatter(x[hit], y[hit], c=HIT_COLOR, s=9, lw=0, rasterized=True, zorder=3)
    if genome_wide:
        ax.axhline(-np.log10(genome_wide), color=HIT_COLOR, lw=1, label=f"p = {genome_wide:g}")
    if suggestive:
        ax.axhline(
            -np.log10(suggestive), color=COLORS[0], lw=0.8, ls="--", label=f"p = {suggestive:g}"
        )
    for _, row in top_hits(table, genome_wide, annotate).iterrows():
        ax.annotate(
            row["id"],
            (row["x"], row["logp"]),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize="x-small",
            rotation=30,
        )
    labels = [re.sub(r"^chr", "", n, flags=re.IGNORECASE) for n in names]
    # Past ~30 chromosomes (scaffolds) the labels would overlap; label every other one.
    step = 1 if len(names) <= 30 else 2
    ax.set_xticks(centres[::step], labels[::step], fontsize="small")
    if not table.empty:
        ax.set_xlim(table["x"].min() - 1, table["x"].max() + 1)
    top = max(float(table["logp"].max()) if not table.empty else 1.0, -np.log10(genome_wide))
    ax.set_ylim(0, top * 1.08 + 0.5)
    ax.set_xlabel("chromosome")
    ax.set_ylabel(r"$-\log_{10}(p)$")
    ax.set_title(title or f"Manhattan plot ({len(table):,} variants)")
    ax.spines[["top", "right"]].set_visible(False)
    if genome_wide or suggestive:
        ax.legend(frameon=False, fontsize="small", loc="upper right")
    return save_figure(fig, path, formats=formats)


def _hover(table: pd.DataFrame) -> np.ndarray:
    effect = table["effect_name"].iloc[0] if len(table) else ""
    lines = [
        "<b>" + table["id"] + "</b>",
        table["chrom"] + ":" + table["pos"].map("{:.0f}".format),
        "REF " + table["REF"] + "  ALT " + table["ALT"] + "  A1 " + table["A1"],
    ]
    if effect:
        lines.append(f"{effect} " + table["effect"].map("{:.4g}".format))
    lines.append("p " + table["p"].map("{:.3g}".format))
    return pd.concat(lines, axis=1).agg("<br>".join, axis=1).to_numpy()


def manhattan_html(
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    genome_wide: float = GENOME_WIDE,
    suggestive: float | None = SUGGESTIVE,
    title: str | None = None,
) -> Path:
    """Interactive Manhattan plot (plotly, WebGL): zoom, and hover a variant for its statistics.

    Hovering shows the variant's id, chrom:pos, REF/ALT/A1, effect (BETA or OR) and p.

    Returns
    -------
    Path
        The self-contained HTML file written.
    """
    import plotly.graph_objects as go

    table, names, centres = _genome_axis(_prepare(results))
    n_variants = len(table)
    # Coarser than the PNG: every drawn point carries its hover text into the page.
    table = table.iloc[
        _thin(
            table["x"].to_numpy(),
            table["logp"].to_numpy(),
            table["p"].to_numpy(),
            bins=1000,
            ycell=0.05,
        )
    ]
    fig = go.Figure()
    for parity in (0, 1):
        part = table[table["chrom"].map({n: i % 2 for i, n in enumerate(names)}) == parity]
        fig.add_trace(
            go.Scattergl(
                x=part["x"],
                y=part["logp"],
                mode="markers",
                marker={"size": 4, "color": COLORS[parity]},
                text=_hover(part),
                hovertemplate="%{text}<extra></extra>",
                showlegend=False,
            )
        )
    hits = table[table["p"] < genome_wide]
    if len(hits):
        fig.add_trace(
            go.Scattergl(
                x=hits["x"],
                y=hits["logp"],
                mode="markers",
                marker={"size": 6, "color": HIT_COLOR},
                text=_hover(hits),
                hovertemplate="%{text}<extra></extra>",
                name=f"p < {genome_wide:g}",
            )
        )
    if genome_wide:
        fig.add_hline(y=-np.log10(genome_wide), line={"color": HIT_COLOR, "width": 1})
    if suggestive:
        fig.add_hline(
            y=-np.log10(suggestive), line={"color": COLORS[0], "width": 1, "dash": "dash"}
        )
    fig.update_layout(
        title=title or f"Manhattan plot ({n_variants:,} variants)",
        xaxis={
            "title": "chromosome",
            "tickvals": list(centres),
            "ticktext": [re.sub(r"^chr", "", n, flags=re.IGNORECASE) for n in names],
            "showgrid": False,
        },
        yaxis={"title": "-log10(p)", "rangemode": "tozero"},
        template="plotly_white",
        hovermode="closest",
    )
    return save_html(fig, path)


def _qq_points(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order of the p-values, then expected, observed -log10 p and the thinned draw indices."""
    order = np.argsort(table["p"].to_numpy(), kind="stable")
    n = order.size
    expected = -np.log10((np.arange(1, n + 1) - 0.5) / n)
    observed = table["logp"].to_numpy()[order]
    return order, expected, observed, _qq_thin(expected, observed)


def _qq_band(n: int, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% band of the i-th smallest of n uniform p-values, Beta(i, n - i + 1), at ``keep``."""
    i = keep + 1.0
    lower = -np.log10(stats.beta.ppf(0.975, i, n - i + 1))
    upper = -np.log10(stats.beta.ppf(0.025, i, n - i + 1))
    return lower, upper


def _qq_thin(expected: np.ndarray, observed: np.ndarray) -> np.ndarray:
    # The bulk near the origin holds most points but shows nothing: one per 0.005 cell.
    cells = np.round(expected / 0.005) * 1e7 + np.round(observed / 0.005)
    _, first = np.unique(cells, return_index=True)
    return np.sort(first)


def qq(
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    lambda_gc: float | None = None,
    title: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """QQ plot: observed against expected -log10 p with a 95% band, lambda in the title.

    Parameters
    ----------
    results
        Association results (plink2 ``--glm`` columns) or any table with a ``P`` column.
    path
        Target path (see :func:`~genoformer.engine.plots.save_figure`).
    lambda_gc
        Genomic-control lambda to show; computed from the p-values when ``None``.
    title
        Figure title (lambda is added below it).
    formats
        File formats to write.

    Returns
    -------
    list of Path
        The files written.
    """
    table = _prepare_p(results)
    lam = genomic_control_lambda(table["p"]) if lambda_gc is None else float(lambda_gc)
    order, expected, observed, keep = _qq_points(table)
    lower, upper = _qq_band(len(table), keep)
    fig = Figure(figsize=(5.5, 5.5), layout="constrained")
    ax = fig.subplots()
    ax.fill_between(expected[keep], lower, upper, color="grey", alpha=0.25, lw=0, label="95% band")
    top = float(expected.max()) if expected.size else 1.0
    ax.plot([0, top], [0, top], color="black", lw=1, ls="--", label="y = x")
    ax.scatter(expected[keep], observed[keep], s=6, color=COLORS[0], lw=0, rasterized=True)
    ax.set_xlabel(r"expected $-\log_{10}(p)$")
    ax.set_ylabel(r"observed $-\log_{10}(p)$")
    stats_line = rf"$\lambda_{{GC}}$ = {lam:.3f}   n = {len(table):,}"
    ax.set_title(f"{title}\n{stats_line}" if title else f"QQ plot\n{stats_line}")
    ax.set_xlim(0, top * 1.03 + 0.1)
    ax.set_ylim(0, max(top, float(observed.max()) if observed.size else 1.0) * 1.05 + 0.1)
    ax.legend(frameon=False, loc="upper left")
    ax.grid(alpha=0.3)
    return save_figure(fig, path, formats=formats)


def _prepare_p(results: pd.DataFrame) -> pd.DataFrame:
    try:
        return _prepare(results)
    except ValueError:
        # A bare table of p-values (no positions) still makes a QQ plot.
        if "TEST" in results.columns:
            results = results[results["TEST"].astype(str) == "ADD"]
        p = pd.to_numeric(results[_column(results, "p")], errors="coerce").to_numpy(float)
        vid = _column(results, "id", required=False)
        ids = results[vid].astype(str).to_numpy() if vid else np.full(p.size, ".")
        table = pd.DataFrame({"p": p, "id": ids})
        table = table[np.isfinite(table["p"])]
        table["logp"] = -np.log10(np.clip(table["p"].to_numpy(), np.finfo(float).tiny, 1.0))
        return table


def qq_html(
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    lambda_gc: float | None = None,
    title: str | None = None,
) -> Path:
    """Interactive QQ plot (plotly): hover a point for its variant id and p.

    Returns
    -------
    Path
        The self-contained HTML file written.
    """
    import plotly.graph_objects as go

    table = _prepare_p(results)
    lam = genomic_control_lambda(table["p"]) if lambda_gc is None else float(lambda_gc)
    order, expected, observed, keep = _qq_points(table)
    lower, upper = _qq_band(len(table), keep)
    ids = table["id"].to_numpy()[order][keep]
    p = table["p"].to_numpy()[order][keep]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([expected[keep], expected[keep][::-1]]),
            y=np.concatenate([upper, lower[::-1]]),
            fill="toself",
            fillcolor="rgba(128,128,128,0.25)",
            line={"width": 0},
            hoverinfo="skip",
            name="95% band",
        )
    )
    top = float(expected.max()) if expected.size else 1.0
    fig.add_trace(
        go.Scatter(
            x=[0, top],
            y=[0, top],
            mode="lines",
            line={"color": "black", "dash": "dash"},
            name="y = x",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scattergl(
            x=expected[keep],
            y=observed[keep],
            mode="markers",
            marker={"size": 4, "color": COLORS[0]},
            text=[f"<b>{i}</b><br>p {q:.3g}" for i, q in zip(ids, p, strict=True)],
            hovertemplate="%{text}<br>expected %{x:.2f}<extra></extra>",
            name="variants",
        )
    )
    fig.update_layout(
        title=f"{title or 'QQ plot'}: λGC = {lam:.3f}, n = {len(table):,}",
        xaxis={"title": "expected -log10(p)", "rangemode": "tozero"},
        yaxis={"title": "observed -log10(p)", "rangemode": "tozero"},
        template="plotly_white",
        hovermode="closest",
    )
    return save_html(fig, path)


def pc_scatter(
    eigenvectors: pd.DataFrame,
    path: str | os.PathLike,
    *,
    groups: Sequence[str] | None = None,
    title: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """PC1 against PC2, one point per sample, coloured by ``groups`` (e.g. populations)."""
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.subplots()
    pc1, pc2 = eigenvectors["PC1"].to_numpy(), eigenvectors["PC2"].to_numpy()
    if groups is None:
        ax.scatter(pc1, pc2, s=8, alpha=0.7, color=COLORS[0], linewidths=0)
    else:
        labels = np.asarray(groups, dtype=str)
        for name in sorted(set(labels)):
            chosen = labels == name
            ax.scatter(pc1[chosen], pc2[chosen], s=8, alpha=0.7, label=name, linewidths=0)
        ax.legend(fontsize="small", markerscale=2, frameon=False)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_title(title or "principal components")
    return save_figure(fig, path, formats=formats)


# ---------------------------------------------------------------------------------------
# Model importance beside the association (genoformer.gwas.model.explain)
# ---------------------------------------------------------------------------------------

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


def importance_track(
    importance: pd.DataFrame,
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    score: str,
    label: str | None = None,
    null_max: float | None = None,
    genome_wide: float = GENOME_WIDE,
    title: str | None = None,
    formats: Sequence[str] = FORMATS,
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
    path
        Target path (see :func:`~genoformer.engine.plots.save_figure`).
    score
        The importance column to draw.
    label
        Y axis label of the importance panel (default: ``score``).
    null_max
        The largest decoy score, drawn as a dashed line.
    genome_wide
        p-value line of the association panel.
    title, formats
        Figure title; file formats.

    Returns
    -------
    list of Path
        The files written.
    """
    assoc, track, names, centres = _importance_tracks(importance, results, score)
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    index = {n: i for i, n in enumerate(names)}
    for ax, table, y in ((top, assoc, "logp"), (bottom, track, "score")):
        colours = np.asarray(COLORS)[table["chrom"].map(index).to_numpy() % 2]
        hit = (
            table["p"].to_numpy() < genome_wide
            if y == "logp"
            else table["q"].to_numpy() <= CALLED_Q
        )
        ax.scatter(table["x"][~hit], table[y][~hit], c=colours[~hit], s=5, lw=0, rasterized=True)
        ax.scatter(table["x"][hit], table[y][hit], c=HIT_COLOR, s=10, lw=0, zorder=3)
        ax.spines[["top", "right"]].set_visible(False)
    if genome_wide:
        top.axhline(-np.log10(genome_wide), color=HIT_COLOR, lw=1, label=f"p = {genome_wide:g}")
        top.legend(frameon=False, fontsize="small", loc="upper right")
    if null_max is not None and np.isfinite(null_max):
        bottom.axhline(null_max, color="grey", lw=1, ls="--", label="largest decoy")
    if (track["q"] <= CALLED_Q).any() or null_max is not None:
        bottom.scatter([], [], c=HIT_COLOR, s=10, label=f"FDR <= {CALLED_Q:g}")
        bottom.legend(frameon=False, fontsize="small", loc="upper right")
    top.set_ylabel(r"association $-\log_{10}(p)$")
    bottom.set_ylabel(label or score)
    bottom.set_ylim(bottom=0)
    top.set_ylim(bottom=0)
    labels = [re.sub(r"^chr", "", n, flags=re.IGNORECASE) for n in names]
    step = 1 if len(names) <= 30 else 2
    bottom.set_xticks(centres[::step], labels[::step], fontsize="small")
    bottom.set_xlabel("chromosome")
    top.set_title(title or f"association and model importance ({len(track):,} variants)")
    return save_figure(fig, path, formats=formats)


def importance_track_html(
    importance: pd.DataFrame,
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    score: str,
    label: str | None = None,
    null_max: float | None = None,
    genome_wide: float = GENOME_WIDE,
    title: str | None = None,
) -> Path:
    """Interactive two-panel view (plotly): association above, importance below, one zoom.

    Hovering a point shows the variant's id, chrom:pos, association p, importance and the
    importance's empirical p and FDR.

    Returns
    -------
    Path
        The self-contained HTML file written.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    assoc, track, names, centres = _importance_tracks(importance, results, score)
    p_by_id = dict(zip(assoc["id"], assoc["p"], strict=False))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    parity = {n: i % 2 for i, n in enumerate(names)}
    for row, table, y in ((1, assoc, "logp"), (2, track, "score")):
        hit = table["p"] < genome_wide if row == 1 else table["q"] <= CALLED_Q
        if row == 1:
            text = _hover(table)
        else:
            p_assoc = table["id"].map(p_by_id).astype(float)
            text = (
                "<b>" + table["id"] + "</b><br>"
                + table["chrom"] + ":" + table["pos"].map("{:.0f}".format)
                + f"<br>{label or score} " + table["score"].map("{:.4g}".format)
                + "<br>empirical p " + table["p"].map("{:.3g}".format)
                + "  FDR " + table["q"].map("{:.3g}".format)
                + "<br>association p " + p_assoc.map("{:.3g}".format)
            ).to_numpy()  # fmt: skip
        for group in (0, 1):
            chosen = (table["chrom"].map(parity) == group).to_numpy() & ~hit.to_numpy()
            fig.add_trace(
                go.Scattergl(
                    x=table["x"][chosen],
                    y=table[y][chosen],
                    mode="markers",
                    marker={"size": 4, "color": COLORS[group]},
                    text=text[chosen],
                    hovertemplate="%{text}<extra></extra>",
                    showlegend=False,
                ),
                row=row,
                col=1,
            )
        chosen = hit.to_numpy()
        fig.add_trace(
            go.Scattergl(
                x=table["x"][chosen],
                y=table[y][chosen],
                mode="markers",
                marker={"size": 6, "color": HIT_COLOR},
                text=text[chosen],
                hovertemplate="%{text}<extra></extra>",
                name=f"p < {genome_wide:g}" if row == 1 else f"FDR <= {CALLED_Q:g}",
            ),
            row=row,
            col=1,
        )
    if genome_wide:
        fig.add_hline(y=-np.log10(genome_wide), line={"color": HIT_COLOR, "width": 1}, row=1, col=1)
    if null_max is not None and np.isfinite(null_max):
        fig.add_hline(y=null_max, line={"color": "grey", "width": 1, "dash": "dash"}, row=2, col=1)
    ticks = {
        "tickvals": list(centres),
        "ticktext": [re.sub(r"^chr", "", n, flags=re.IGNORECASE) for n in names],
        "showgrid": False,
    }
    fig.update_xaxes(**ticks)
    fig.update_xaxes(title="chromosome", row=2, col=1)
    fig.update_yaxes(title="association -log10(p)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title=label or score, rangemode="tozero", row=2, col=1)
    fig.update_layout(
        title=title or f"association and model importance ({len(track):,} variants)",
        template="plotly_white",
        hovermode="closest",
    )
    return save_html(fig, path)


def _pair_matrix(
    pairs: pd.DataFrame, order: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Variant ids (``order``, else first appearance) and symmetric interaction and q
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
    value = np.full((len(ids), len(ids)), np.nan)
    q = np.full((len(ids), len(ids)), np.nan)
    for row in tested.itertuples(index=False):
        i, j = where[str(row.id_a)], where[str(row.id_b)]
        value[i, j] = value[j, i] = row.interaction
        q[i, j] = q[j, i] = getattr(row, "q", np.nan)
    return ids, value, q


def pair_heatmap(
    pairs: pd.DataFrame,
    path: str | os.PathLike,
    *,
    order: Sequence[str] | None = None,
    title: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Heatmap of the interaction contrasts of variant pairs; ``*`` marks FDR <= 0.05.

    ``pairs`` holds ``id_a id_b interaction`` and optionally ``q`` and ``null`` (null
    pairs are left out). Variants appear in ``order`` (e.g. by importance), then in the
    order they first occur in the table.
    """
    ids, value, q = _pair_matrix(pairs, order)
    size = min(14.0, 2.5 + 0.35 * len(ids))
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.subplots()
    limit = float(np.nanmax(np.abs(value))) if np.isfinite(value).any() else 1.0
    # A symmetric range centres the diverging colormap at 0 (no interaction).
    image = ax.imshow(value, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(image, ax=ax, label="interaction contrast", shrink=0.8)
    for i, j in zip(*np.nonzero(q <= CALLED_Q), strict=True):
        ax.text(j, i, "*", ha="center", va="center", fontsize="small")
    ax.set_xticks(range(len(ids)), ids, rotation=90, fontsize="x-small")
    ax.set_yticks(range(len(ids)), ids, fontsize="x-small")
    ax.set_title(title or f"pairwise interaction ({len(ids)} variants)")
    return save_figure(fig, path, formats=formats)


def pair_heatmap_html(
    pairs: pd.DataFrame,
    path: str | os.PathLike,
    *,
    order: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Interactive pair heatmap (plotly): hover a cell for both ids, contrast, p and FDR."""
    import plotly.graph_objects as go

    ids, value, q = _pair_matrix(pairs, order)
    tested = pairs[~pairs["null"].astype(bool)] if "null" in pairs.columns else pairs
    p = np.full(value.shape, np.nan)
    where = {name: i for i, name in enumerate(ids)}
    for row in tested.itertuples(index=False):
        i, j = where[str(row.id_a)], where[str(row.id_b)]
        p[i, j] = p[j, i] = getattr(row, "p", np.nan)
    text = [
        [
            f"<b>{ids[i]}</b> x <b>{ids[j]}</b><br>interaction {value[i, j]:.4g}"
            f"<br>empirical p {p[i, j]:.3g}  FDR {q[i, j]:.3g}"
            for j in range(len(ids))
        ]
        for i in range(len(ids))
    ]
    limit = float(np.nanmax(np.abs(value))) if np.isfinite(value).any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=value,
            x=ids,
            y=ids,
            text=text,
            hovertemplate="%{text}<extra></extra>",
            colorscale="RdBu",
            reversescale=True,
            zmin=-limit,
            zmax=limit,
            colorbar={"title": "interaction"},
        )
    )
    fig.update_layout(
        title=title or f"pairwise interaction ({len(ids)} variants)",
        yaxis={"autorange": "reversed"},
        template="plotly_white",
    )
    return save_html(fig, path)
