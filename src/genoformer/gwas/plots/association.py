"""Manhattan, QQ and PC plots of association results: static (PNG/PDF) and interactive HTML.

Every function takes a results table in plink2 ``--glm`` columns (``#CHROM POS ID REF ALT
A1 ... BETA|OR ... P``; ``CHROM``/``CHR``, ``BP``, ``SNP`` are accepted too). When a
``TEST`` column is present only the ``ADD`` rows are drawn, so an unfiltered plink2 table
with covariate rows plots correctly. Chromosomes are ordered naturally: 1..22, X, Y, XY,
MT, then any other name alphabetically.

Millions of points are thinned before drawing, as PheWeb does: every point below
``p = 1e-3`` is drawn; above it, where points overlap into a solid band, one point per cell
of a grid about one marker wide and high (cells along the genome, by the height of the y
axis) is kept. The picture is the same, a million variants draw in seconds and the files
are small enough to open; the tables keep every variant.

The QQ plot can be drawn by minor allele frequency as PheWeb draws it: the variants sorted
by MAF and cut into :data:`MAF_STRATA` strata of equal count, each stratum a series of its
own against the quantiles of its own size, with its MAF range, count and lambda.

Each plot computes its points, lines, hover text and title once into an
:class:`~genoformer.engine.figures.Chart`; the PNG and the HTML functions are its two
renderings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError
from genoformer.engine.figure_files import FORMATS
from genoformer.engine.figures import (
    Axis,
    Band,
    Chart,
    Line,
    Note,
    Panel,
    RefLine,
    Scatter,
    palette,
    render_html,
    render_png,
)
from genoformer.engine.genome import chromosome_order_key
from genoformer.gwas.stats.adjust import genomic_control_lambda
from genoformer.gwas.stats.tails import beta_ppf

__all__ = [
    "MAF_STRATA",
    "genomic_control_lambda",
    "manhattan",
    "manhattan_html",
    "maf_strata",
    "qq",
    "pc_scatter",
    "plottable",
    "qq_html",
]

GENOME_WIDE = 5e-8
SUGGESTIVE = 1e-5
#: Alternating chromosome colours (dark / light blue) and the colour of significant hits.
COLORS = ("#1f4e79", "#6fa8dc")
HIT_COLOR = "#d62728"
#: Above this p-value points are thinned to one per marker-sized cell.
THIN_ABOVE_P = 1e-3
#: Thinning grid (cells along the genome, cells up the y axis) of the picture (12 x 4.5
#: inches at 150 dpi: about 1,650 x 560 pixels of axes, markers about 4 pixels wide) and of
#: the page, which is coarser: every point it draws carries its hover text into the file.
PICTURE_THINNING = (500, 150)
PAGE_THINNING = (400, 100)
#: Strata of the QQ plot by MAF: PheWeb's four, of equal counts.
MAF_STRATA = 4
#: -log10(p) as a plain label (page) and in mathtext (picture).
LOG_P = ("-log10(p)", r"$-\log_{10}(p)$")
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


def _tested(results: pd.DataFrame) -> pd.DataFrame:
    """The ``ADD`` rows of a table with a ``TEST`` column (covariate rows left out)."""
    if "TEST" in results.columns:
        return results[results["TEST"].astype(str) == "ADD"]
    return results


def plottable(results: pd.DataFrame) -> int:
    """How many variants of ``results`` have a p-value and a position to draw."""
    results = _tested(results)
    p = pd.to_numeric(results[_column(results, "p")], errors="coerce").to_numpy(dtype=float)
    pos = pd.to_numeric(results[_column(results, "pos")], errors="coerce").to_numpy(dtype=float)
    return int((np.isfinite(p) & np.isfinite(pos)).sum())


def _prepare(results: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: chrom, pos, id, p, -log10 p, x (genome coordinate), and hover text."""
    results = _tested(results)
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
    se = next((c for c in ("SE", "LOG(OR)_SE") if c in results.columns), None)
    table["se"] = (
        pd.to_numeric(results[se], errors="coerce").to_numpy(dtype=np.float64) if se else np.nan
    )
    table = table[np.isfinite(table["p"]) & np.isfinite(table["pos"])].copy()
    if table.empty:
        raise InputError(
            f"none of the {len(results):,} variants has a p-value to plot (every test failed "
            "or was not run: see the ERRCODE column of the results)",
            where=pid,
            fix="check the covariates (collinear or constant ones fail every test) and that "
            "QC leaves variants",
        )
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
    x: np.ndarray, y: np.ndarray, p: np.ndarray, *, bins: int, rows: int, top: float
) -> np.ndarray:
    """Indices to draw, in order: all points with p below ``THIN_ABOVE_P``; among the others
    the first of each cell of a grid of ``bins`` columns over the x range and ``rows`` rows
    over ``0..top`` (the y axis)."""
    keep = p < THIN_ABOVE_P
    dense = np.flatnonzero(~keep)
    if dense.size <= bins:
        return np.arange(x.size)
    width = (np.ptp(x) or 1.0) / bins
    column = np.minimum(np.floor((x[dense] - x.min()) / width), bins - 1).astype(np.int64)
    row = np.floor(y[dense] / (top / rows)).astype(np.int64)  # y >= 0 (-log10 p, p <= 1)
    _, first = np.unique(column * (rows + 1) + np.minimum(row, rows), return_index=True)
    return np.sort(np.concatenate([np.flatnonzero(keep), dense[first]]))


def top_hits(
    table: pd.DataFrame, threshold: float, n: int = 10, window: float = 500_000
) -> pd.DataFrame:
    """The strongest variants below ``threshold``, at most one per ``window`` bp region."""
    candidates = table[table["p"] < threshold].sort_values("p", kind="stable")
    # Plain arrays: a peak can hold thousands of candidates, each compared with the chosen.
    chrom, pos = candidates["chrom"].to_numpy(), candidates["pos"].to_numpy()
    chosen: list[int] = []
    for i in range(len(candidates)):
        if len(chosen) >= n:
            break
        if ((chrom[chosen] == chrom[i]) & (np.abs(pos[chosen] - pos[i]) < window)).any():
            continue
        chosen.append(i)
    return candidates.iloc[chosen]


def _hover(table: pd.DataFrame) -> np.ndarray:
    """Hover text per variant: id, chrom:pos, REF/ALT/A1, effect (BETA or OR), its SE and p."""
    if table.empty:
        return np.array([], dtype=object)
    effect = table["effect_name"].iloc[0]
    # Whole columns joined at once (a row-wise join takes seconds for 100,000 points).
    text = (
        "<b>" + table["id"] + "</b><br>"
        + table["chrom"] + ":" + table["pos"].map("{:.0f}".format) + "<br>"
        + "REF " + table["REF"] + "  ALT " + table["ALT"] + "  A1 " + table["A1"] + "<br>"
    )  # fmt: skip
    if effect:
        text = text + f"{effect} " + table["effect"].map("{:.4g}".format) + "<br>"
    if table["se"].notna().any():
        text = text + "SE " + table["se"].map("{:.4g}".format) + "<br>"
    return (text + "p " + table["p"].map("{:.3g}".format)).to_numpy()


def chromosome_axis(names: Sequence[str], centres: np.ndarray) -> Axis:
    """The genome x axis: one tick per chromosome centre, named without a ``chr`` prefix."""
    return Axis(
        label="chromosome",
        ticks=list(centres),
        tick_labels=[re.sub(r"^chr", "", n, flags=re.IGNORECASE) for n in names],
        # Past ~30 chromosomes (scaffolds) the picture's labels would overlap.
        sparse_past=30,
        grid=False,
    )


def genome_layers(
    table: pd.DataFrame,
    y: str,
    *,
    hit: np.ndarray,
    hit_label: str,
    names: Sequence[str],
    hover: np.ndarray | None,
    sizes: tuple[float, float],
) -> list[Scatter]:
    """Points along the genome: chromosomes in alternating colours, ``hit`` rows in red;
    ``hover``: one text per row, or None for none."""
    parity = table["chrom"].map({n: i % 2 for i, n in enumerate(names)}).to_numpy()
    x, values = table["x"].to_numpy(), table[y].to_numpy()
    layers = []
    for group in (0, 1):
        chosen = (parity == group) & ~hit
        layers.append(
            Scatter(
                x[chosen],
                values[chosen],
                COLORS[group],
                size=sizes[0],
                hover=None if hover is None else hover[chosen],
            )
        )
    layers.append(
        Scatter(
            x[hit],
            values[hit],
            HIT_COLOR,
            size=sizes[1],
            label=hit_label,
            hover=None if hover is None else hover[hit],
            front=True,
        )
    )
    return layers


def _manhattan_chart(
    results: pd.DataFrame,
    *,
    annotate: int,
    thinning: tuple[int, int],
    hover: bool = False,
    genome_wide: float = GENOME_WIDE,
    suggestive: float | None = SUGGESTIVE,
    title: str | None = None,
) -> Chart:
    """The Manhattan plot's description, thinned to ``thinning`` = (columns, rows) of the
    grid; hover text only with ``hover`` (the page shows it, the picture does not)."""
    table, names, centres = _genome_axis(_prepare(results))
    top = max(float(table["logp"].max()) if not table.empty else 1.0, -np.log10(genome_wide))
    y_limit = top * 1.08 + 0.5
    bins, rows = thinning
    x, logp, p = table["x"].to_numpy(), table["logp"].to_numpy(), table["p"].to_numpy()
    drawn = table.iloc[_thin(x, logp, p, bins=bins, rows=rows, top=y_limit)]
    layers = genome_layers(
        drawn,
        "logp",
        hit=drawn["p"].to_numpy() < genome_wide,
        hit_label=f"p < {genome_wide:g}",
        names=names,
        hover=_hover(drawn) if hover else None,
        sizes=(4, 9),
    )
    lines = []
    if genome_wide:
        lines.append(RefLine(-np.log10(genome_wide), color=HIT_COLOR, label=f"p = {genome_wide:g}"))
    if suggestive:
        lines.append(
            RefLine(
                -np.log10(suggestive),
                color=COLORS[0],
                width=0.8,
                dash="dash",
                label=f"p = {suggestive:g}",
            )
        )
    notes = [
        Note(row["x"], row["logp"], row["id"])
        for _, row in top_hits(table, genome_wide, annotate).iterrows()
    ]
    x_axis = chromosome_axis(names, centres)
    if not table.empty:
        x_axis = replace(x_axis, limits=(table["x"].min() - 1, table["x"].max() + 1))
    panel = Panel(
        layers,
        lines,
        notes,
        x=x_axis,
        y=Axis(LOG_P[0], tex=LOG_P[1], limits=(0, y_limit)),
        legend="upper right",
        frame=False,
        message="no finite p-values" if table.empty else None,
    )
    return Chart(
        [panel], title=title or f"Manhattan plot ({len(table):,} variants)", size=(12, 4.5)
    )


@shared_docs
def manhattan(
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    annotate: int = 10,
    formats: Sequence[str] = FORMATS,
    **options: Any,
) -> list[Path]:
    """Manhattan plot: -log10 p along the genome, chromosomes in alternating colours.

    Parameters
    ----------
    results
        Association results (plink2 ``--glm`` columns, see the module docstring).
    {figure_path}
    genome_wide, suggestive
        p-value thresholds drawn as a red and a dashed blue line (``None`` to leave one out).
    {figure_title}
    annotate
        Label at most this many top hits below ``genome_wide`` (one per 500 kb region).
    {formats}

    Returns
    -------
    {figures}
    """
    chart = _manhattan_chart(results, annotate=annotate, thinning=PICTURE_THINNING, **options)
    return render_png(chart, path, formats=formats)


@shared_docs
def manhattan_html(results: pd.DataFrame, path: str | os.PathLike, **options: Any) -> Path:
    """Interactive Manhattan plot (plotly, WebGL): zoom, and hover a variant for its statistics.

    Hovering shows the variant's id, chrom:pos, REF/ALT/A1, effect (BETA or OR) and p.
    ``options``: ``genome_wide``, ``suggestive`` and ``title``, as :func:`manhattan` takes
    them.

    Returns
    -------
    {page}
    """
    # No labels on the page: hovering names every point.
    chart = _manhattan_chart(results, annotate=0, thinning=PAGE_THINNING, hover=True, **options)
    return render_html(chart, path)


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
    lower = -np.log10(beta_ppf(0.975, i, n - i + 1))
    upper = -np.log10(beta_ppf(0.025, i, n - i + 1))
    return lower, upper


def _qq_thin(expected: np.ndarray, observed: np.ndarray) -> np.ndarray:
    # The bulk near the origin holds most points but shows nothing: one per 0.005 cell.
    cells = np.round(expected / 0.005) * 1e7 + np.round(observed / 0.005)
    _, first = np.unique(cells, return_index=True)
    return np.sort(first)


def _prepare_p(results: pd.DataFrame) -> pd.DataFrame:
    try:
        return _prepare(results)
    except ValueError:
        # A bare table of p-values (no positions) still makes a QQ plot.
        results = _tested(results)
        p = pd.to_numeric(results[_column(results, "p")], errors="coerce").to_numpy(float)
        vid = _column(results, "id", required=False)
        ids = results[vid].astype(str).to_numpy() if vid else np.full(p.size, ".")
        table = pd.DataFrame({"p": p, "id": ids})
        table = table[np.isfinite(table["p"])]
        table["logp"] = -np.log10(np.clip(table["p"].to_numpy(), np.finfo(float).tiny, 1.0))
        return table


def _qq_hover(table: pd.DataFrame, order: np.ndarray, keep: np.ndarray, expected: np.ndarray):
    """Hover text of the drawn QQ points: id, p, expected -log10 p (and MAF when known)."""
    drawn = table.iloc[order[keep]]
    maf = drawn["maf"].to_numpy() if "maf" in drawn.columns else np.full(keep.size, np.nan)
    return np.array(
        [
            f"<b>{i}</b><br>p {q:.3g}<br>expected {e:.2f}"
            + ("" if np.isnan(f) else f"<br>MAF {f:.3g}")
            for i, q, e, f in zip(drawn["id"], drawn["p"], expected[keep], maf, strict=True)
        ],
        dtype=object,
    )


def maf_strata(maf: np.ndarray, n_strata: int = MAF_STRATA) -> list[np.ndarray]:
    """Row positions of each MAF stratum, lowest MAF first, as PheWeb cuts them: the rows
    with a MAF sorted by it and cut into ``n_strata`` slices of equal count (sizes differ by
    at most one; none is empty). The sort is stable, so tied MAFs keep table order: a tie
    broken by p-value would bias the strata at their borders."""
    rows = np.flatnonzero(np.isfinite(maf))
    rows = rows[np.argsort(maf[rows], kind="stable")]
    cuts = [rows.size * i // n_strata for i in range(n_strata + 1)]
    return [rows[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def _qq_axes(top: float, highest: float) -> dict[str, Axis]:
    return {
        "x": Axis(
            f"expected {LOG_P[0]}",
            tex=f"expected {LOG_P[1]}",
            limits=(0, top * 1.03 + 0.1),
            grid=True,
        ),
        "y": Axis(
            f"observed {LOG_P[0]}",
            tex=f"observed {LOG_P[1]}",
            limits=(0, highest * 1.05 + 0.1),
            grid=True,
        ),
    }


def _qq_chart(
    results: pd.DataFrame,
    *,
    lambda_gc: float | None = None,
    title: str | None = None,
    by_maf: str | None = None,
) -> Chart:
    """The QQ plot's description: 95% band, y = x, the thinned points, lambda and n; with
    ``by_maf``, one series per MAF stratum instead (:func:`_qq_maf_chart`)."""
    if by_maf is not None:
        return _qq_maf_chart(results, by_maf, title=title)
    table = _prepare_p(results)
    lam = genomic_control_lambda(table["p"]) if lambda_gc is None else float(lambda_gc)
    order, expected, observed, keep = _qq_points(table)
    lower, upper = _qq_band(len(table), keep)
    top = float(expected.max()) if expected.size else 1.0
    highest = max(top, float(observed.max()) if observed.size else 1.0)
    panel = Panel(
        [
            Band(expected[keep], lower, upper, label="95% band"),
            Line([0, top], [0, top], dash="dash", label="y = x"),
            Scatter(
                expected[keep],
                observed[keep],
                COLORS[0],
                label="variants",
                hover=_qq_hover(table, order, keep, expected),
            ),
        ],
        **_qq_axes(top, highest),
        legend="upper left",
    )
    return Chart(
        [panel],
        title=title or "QQ plot",
        subtitle=f"λGC = {lam:.3f}, n = {len(table):,}",
        size=(5.5, 5.5),
    )


def _qq_maf_chart(results: pd.DataFrame, column: str, *, title: str | None = None) -> Chart:
    """The QQ plot by MAF: the variants of each :func:`maf_strata` stratum against the
    quantiles of the stratum's own size, its MAF range, count and lambda in the legend; the
    95% band is that of the largest stratum (the strata differ by one variant at most).
    ``column`` holds an allele frequency of either allele (it is folded to the minor one)."""
    tested = _tested(results)
    if column not in tested.columns:
        raise ValueError(
            f"no {column} column to stratify by; the results have {list(tested.columns)}"
        )
    table = _prepare_p(results)
    # ``table``'s index is each row's position among the tested rows (see _prepare).
    freq = pd.to_numeric(tested[column], errors="coerce").to_numpy(dtype=np.float64)
    freq = freq[table.index.to_numpy()]
    table = table.assign(maf=np.minimum(freq, 1.0 - freq)).reset_index(drop=True)
    strata = maf_strata(table["maf"].to_numpy())
    series, band, top, highest = [], None, 1.0, 1.0
    for rows, colour in zip(strata, palette(len(strata)), strict=True):
        part = table.iloc[rows]
        order, expected, observed, keep = _qq_points(part)
        lam = genomic_control_lambda(part["p"])
        low, high = part["maf"].min(), part["maf"].max()
        label = f"MAF {low:.3g} - {high:.3g}: n = {len(part):,}, λGC = {lam:.3f}"
        hover = _qq_hover(part, order, keep, expected)
        series.append(Scatter(expected[keep], observed[keep], colour, label=label, hover=hover))
        if band is None or len(part) > band[0]:
            band = (len(part), expected[keep], *_qq_band(len(part), keep))
        top = max(top, float(expected.max()))
        highest = max(highest, top, float(observed.max()))
    layers: list = []
    if band is not None:
        layers.append(Band(band[1], band[2], band[3], label="95% band"))
    layers.append(Line([0, top], [0, top], dash="dash", label="y = x"))
    stratified = sum(len(rows) for rows in strata)
    subtitle = f"n = {stratified:,} in {len(strata)} strata"
    if stratified < len(table):
        subtitle += f" ({len(table) - stratified:,} without a MAF)"
    panel = Panel(
        layers + series,
        **_qq_axes(top, highest),
        legend="upper left",
        message=None if strata else "no variant has a MAF",
    )
    return Chart([panel], title=title or "QQ plot by MAF", subtitle=subtitle, size=(5.5, 5.5))


@shared_docs
def qq(
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    formats: Sequence[str] = FORMATS,
    **options: Any,
) -> list[Path]:
    """QQ plot: observed against expected -log10 p with a 95% band, lambda in the title.

    Parameters
    ----------
    results
        Association results (plink2 ``--glm`` columns) or any table with a ``P`` column.
    {figure_path}
    lambda_gc
        Genomic-control lambda to show; computed from the p-values when ``None``.
    title
        Figure title (lambda is added below it).
    by_maf
        A column of allele frequencies (plink2's ``A1_FREQ``, or a MAF): draw one series
        per MAF stratum (:func:`maf_strata`) with its own lambda instead of one for all.
    {formats}

    Returns
    -------
    {figures}
    """
    return render_png(_qq_chart(results, **options), path, formats=formats)


@shared_docs
def qq_html(results: pd.DataFrame, path: str | os.PathLike, **options: Any) -> Path:
    """Interactive QQ plot (plotly): hover a point for its variant id and p. ``options``:
    ``lambda_gc``, ``title`` and ``by_maf``, as :func:`qq` takes them.

    Returns
    -------
    {page}
    """
    return render_html(_qq_chart(results, **options), path)


def pc_scatter(
    eigenvectors: pd.DataFrame,
    path: str | os.PathLike,
    *,
    groups: Sequence[str] | None = None,
    title: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """PC1 against PC2, one point per sample, coloured by ``groups`` (e.g. populations)."""
    pc1, pc2 = eigenvectors["PC1"].to_numpy(), eigenvectors["PC2"].to_numpy()
    style = {"size": 8, "alpha": 0.7, "rasterized": False}
    if groups is None:
        layers = [Scatter(pc1, pc2, COLORS[0], **style)]
    else:
        labels = np.asarray(groups, dtype=str)
        names = sorted(set(labels))
        layers = [
            Scatter(pc1[labels == name], pc2[labels == name], colour, label=name, **style)
            for name, colour in zip(names, palette(len(names)), strict=True)
        ]
    panel = Panel(layers, x=Axis("PC1"), y=Axis("PC2"))
    chart = Chart([panel], title=title or "principal components", size=(5.5, 4.5))
    return render_png(chart, path, formats=formats)
