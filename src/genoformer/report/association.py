"""Views of an association run (``gwas assoc``): Manhattan, QQ, QQ by MAF, top hits,
regional LD.

The Manhattan and QQ plots are the figures ``gwas assoc`` writes itself (one
:class:`~genoformer.engine.figures.Chart` each, thinned as PheWeb thins: every variant with
p <= 0.01 drawn, one per pixel-sized cell above). The QQ plot by MAF is PheWeb's: the
tested variants in four strata of equal count by minor allele frequency, each with its
lambda; the assoc table has no frequency, so it is counted here from the genotypes the
run's manifest names (all their samples). The top hits are the
:data:`N_HITS` smallest p-values; for each, LD r2 with every variant within
:data:`WINDOW` bp is computed here from the genotypes the run's manifest names, and the
page's script draws the regional view of the hit clicked.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from genoformer.engine.figures import to_plotly
from genoformer.gwas.plots.association import (
    PAGE_THINNING,
    _column,
    _hover,
    _manhattan_chart,
    _prepare,
    _qq_chart,
)
from genoformer.report.page import View, data_block, figure_html, table_html
from genoformer.report.runs import Run

__all__ = ["N_HITS", "WINDOW", "association_views", "minor_allele_frequencies", "regions"]

#: Rows of the top-hits table, each with its regional view.
N_HITS = 50
#: Half-width of a regional view (bp), and at most this many variants each side of the hit.
WINDOW = 250_000
MAX_NEAR = 500
#: LocusZoom's LD colours: r2 bins from the top, then variants without an r2.
LD_BINS = [
    {"from": 0.8, "label": "0.8 - 1", "color": "#d43f3a"},
    {"from": 0.6, "label": "0.6 - 0.8", "color": "#eea236"},
    {"from": 0.4, "label": "0.4 - 0.6", "color": "#5cb85c"},
    {"from": 0.2, "label": "0.2 - 0.4", "color": "#46b8da"},
    {"from": 0.0, "label": "< 0.2", "color": "#357ebd"},
    {"from": None, "label": "no r2", "color": "#b8b8b8"},
]
LEAD_COLOR = "#9632b8"


def _windows(table: pd.DataFrame, hits: pd.DataFrame) -> list[np.ndarray]:
    """Row positions (in ``table``) of the variants near each hit, the hit among them."""
    near = []
    for chrom, pos in zip(hits["chrom"], hits["pos"], strict=True):
        rows = np.flatnonzero((table["chrom"].to_numpy() == chrom)
                              & (np.abs(table["pos"].to_numpy() - pos) <= WINDOW))  # fmt: skip
        distance = np.abs(table["pos"].to_numpy()[rows] - pos)
        near.append(np.sort(rows[np.argsort(distance, kind="stable")[: 2 * MAX_NEAR + 1]]))
    return near


def _genotype_columns(
    genotypes: str, ids: np.ndarray, located: tuple | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Dosages (samples x variants) of the variants ``ids``, and which were found (matched
    as :func:`_source_rows` matches them)."""
    from genoformer.gwas.io.genotypes import open_genotypes

    with open_genotypes(genotypes) as source:
        index = _source_rows(source.variants, ids, located)
        found = np.isfinite(index)
        if not found.any():
            return None
        wanted = index[found].astype(np.int64)
        order = np.argsort(wanted, kind="stable")
        dosages = np.empty((source.n_samples, wanted.size), dtype=np.float32)
        # Chunks come back in file order; put each column back where ``ids`` has it.
        dosages[:, order] = source.read(variants=wanted[order])
        return dosages, found


def _variant_keys(chrom, pos, ids, alleles: list) -> pd.Index:
    """chrom:pos:id:alleles of each variant, the alleles (if given) sorted (either may be
    counted)."""
    pos = pd.to_numeric(pd.Series(pos), errors="coerce").astype("Int64").astype(str)
    parts = [np.asarray(chrom, dtype=str), pos.to_numpy(dtype=str), np.asarray(ids, dtype=str)]
    if alleles:
        pair = np.sort(np.column_stack([np.asarray(a, dtype=str) for a in alleles]), axis=1)
        parts += list(pair.T)
    return pd.Index(pd.Series(parts[0]).str.cat(parts[1:], sep=":"))


def _source_rows(variants: pd.DataFrame, ids, located: tuple | None = None) -> np.ndarray:
    """The row in a genotype file's ``variants`` of each variant (NaN where none or more than
    one matches): by chromosome, position, ID and its two alleles when ``located`` gives the
    first (chrom, pos, [ref, alt], the alleles left out where unknown), else by ID. A key held twice (variants without an ID,
    "."; a multi-allelic site split under one ID) matches nothing rather than the wrong one."""
    if located is None:
        known, wanted = pd.Index(variants["id"].astype(str)), pd.Index(np.asarray(ids, dtype=str))
    else:
        chrom, pos, alleles = located
        v = variants
        known = _variant_keys(v["chrom"], v["pos"], v["id"], [v["a1"], v["a2"]][: len(alleles)])
        wanted = _variant_keys(chrom, pos, ids, alleles)
    where = pd.Series(np.arange(len(known)), index=known)[~known.duplicated(keep=False)]
    return where.reindex(wanted).to_numpy(dtype=np.float64)


def _alleles(table: pd.DataFrame) -> list:
    """The REF and ALT columns of a results table (none where it has no alleles)."""
    columns = [table[c].astype(str) for c in ("REF", "ALT") if c in table.columns]
    return columns if len(columns) == 2 and (columns[0] != "").any() else []


def minor_allele_frequencies(genotypes: str, results: pd.DataFrame) -> np.ndarray:
    """MAF of each row of ``results`` (plink2 --glm columns) over all the samples of
    ``genotypes``, the variant matched on chromosome, position, ID and its two alleles
    (NaN where none or more than one matches). plink2's ``A1_FREQ`` counts the samples
    tested instead: the two differ where QC or a missing phenotype left samples out."""
    from genoformer.gwas.io.genotypes import open_genotypes
    from genoformer.gwas.stats.qc import allele_frequencies, genotype_counts

    with open_genotypes(genotypes) as source:
        located = (results[_column(results, "chrom")], results[_column(results, "pos")])
        index = _source_rows(
            source.variants, results[_column(results, "id")], (*located, _alleles(results))
        )
        _, maf = allele_frequencies(genotype_counts(source))
    found = np.isfinite(index)
    out = np.full(len(results), np.nan)
    out[found] = maf[index[found].astype(np.int64)]
    return out


def _qq_by_maf(results: pd.DataFrame, genotypes: str | None) -> str:
    """The QQ plot by MAF, or one line saying why it could not be drawn."""
    if genotypes is None:
        return ("<p class='note'>QQ plot by MAF not drawn: the run's genotype input could not "
                "be opened, and the assoc table holds no allele frequency.</p>")  # fmt: skip
    maf = minor_allele_frequencies(genotypes, results)
    if not np.isfinite(maf).any():
        return (f"<p class='note'>QQ plot by MAF not drawn: no tested variant was found in "
                f"{genotypes}.</p>")  # fmt: skip
    chart = _qq_chart(results.assign(MAF=maf), by_maf="MAF")
    return figure_html(to_plotly(chart), height=460)


def regions(
    table: pd.DataFrame,
    hits: pd.DataFrame,
    genotypes: str | None,
    genes: pd.DataFrame | None = None,
) -> dict:
    """What the page's script needs to draw the regional view of each hit (see page.js);
    ``genes`` (:func:`~genoformer.report.genes.read_genes`) gives each its gene track."""
    from genoformer.gwas.stats.ld import r2_with
    from genoformer.report.genes import genes_near

    near = _windows(table, hits)
    union = np.unique(np.concatenate(near)) if near else np.array([], dtype=np.int64)
    local = {row: i for i, row in enumerate(union)}
    points = table.iloc[union]
    columns = None
    if genotypes is not None and union.size:
        located = (points["chrom"], points["pos"], _alleles(points))
        columns = _genotype_columns(genotypes, points["id"].to_numpy(dtype=str), located)
    found_at = None
    if columns is not None:
        dosages, found = columns
        found_at = np.full(union.size, -1)
        found_at[found] = np.arange(found.sum())
    entries = []
    # ``table`` has a plain 0..n-1 index, so a hit's index is its row position.
    for row, rows in zip(hits.index, near, strict=True):
        r2 = np.full(rows.size, np.nan)
        if found_at is not None and found_at[local[row]] >= 0:
            at = found_at[[local[r] for r in rows]]
            lead = dosages[:, found_at[local[row]]]
            r2[at >= 0] = r2_with(lead, dosages[:, at[at >= 0]])
        others = rows != row
        entries.append(
            {
                "id": str(table.at[row, "id"]),
                "chrom": str(table.at[row, "chrom"]),
                "pos": float(table.at[row, "pos"]),
                "logp": float(table.at[row, "logp"]),
                "index": local[row],
                "near": [local[r] for r in rows[others]],
                "r2": [None if np.isnan(v) else round(float(v), 4) for v in r2[others]],
                "genes": genes_near(
                    genes,
                    str(table.at[row, "chrom"]),
                    table.at[row, "pos"] - WINDOW,
                    table.at[row, "pos"] + WINDOW,
                ),  # fmt: skip
            }
        )
    return {
        "points": {
            "pos": points["pos"].astype(float).tolist(),
            "logp": points["logp"].round(4).tolist(),
            "hover": _hover(points).tolist(),
        },
        "hits": entries,
        "bins": LD_BINS,
        "lead_color": LEAD_COLOR,
        "genotypes_found": columns is not None,
        "genes_given": genes is not None,
    }


def _genotype_input(run: Run) -> str | None:
    """The genotype input the run's manifest names, if it can still be opened."""
    value = run.arguments.get("genotypes")
    if not isinstance(value, str):
        return None
    path = Path(value)
    candidates = [path, path.with_name(path.name + ".bed")]
    return value if any(os.path.exists(c) for c in candidates) else None


def _hits_table(hits: pd.DataFrame) -> pd.DataFrame:
    columns = {"id": "ID", "chrom": "CHROM", "pos": "POS", "REF": "REF", "ALT": "ALT",
               "A1": "A1", "effect": hits["effect_name"].iloc[0] or "effect", "se": "SE",
               "p": "P"}  # fmt: skip
    table = hits[list(columns)].rename(columns=columns)
    table["POS"] = table["POS"].astype(np.int64)
    return table


def association_views(run: Run, anchor: str, *, genes: pd.DataFrame | None = None) -> list[View]:
    """Manhattan, QQ, QQ by MAF, the top-hits table and its regional views (with a gene
    track when ``genes`` are given)."""
    results = run.table("results_parquet", "results", "association")
    if results is None:
        return [View("association", "<p class='note'>no association table written</p>")]
    lam = (run.results.get("assoc") or {}).get("lambda_gc")
    manhattan = to_plotly(_manhattan_chart(results, annotate=0, thinning=PAGE_THINNING, hover=True))
    qq = to_plotly(_qq_chart(results, lambda_gc=lam))
    table = _prepare(results).reset_index(drop=True)
    hits = table.sort_values("p", kind="stable").head(N_HITS)
    genotypes = _genotype_input(run)
    data = regions(table, hits, genotypes, genes)
    ld_note = (
        f"LD r2 with the clicked hit from the genotypes in {genotypes}."
        if data["genotypes_found"]
        else "The run's genotype input could not be read: LD not computed (grey points)."
    )
    hits_html = table_html(
        _hits_table(hits),
        table_id=f"{anchor}-hits",
        searchable=True,
        row_data=[{"hit": str(k)} for k in range(len(hits))],
        attrs={
            "regions": f"{anchor}-regions",
            "target": f"{anchor}-regional",
            "manhattan": f"{anchor}-manhattan",
        },
        caption=f"The {len(hits)} smallest p-values. Click a row (or that variant in the "
        f"Manhattan plot) for its region, +/- {WINDOW // 1000} kb. {ld_note}",
    )
    regional = (
        f"{data_block(f'{anchor}-regions', {**data, 'template': _template()})}"
        f'<div class="regional" id="{anchor}-regional">'
        "<p class='note'>click a hit above</p></div>"
    )
    return [
        View(
            "Manhattan plot",
            f'<div id="{anchor}-manhattan">{figure_html(manhattan, height=440, webgl=True)}</div>',
            kind="manhattan",
        ),
        View("QQ plot", figure_html(qq, height=460), kind="qq"),
        View("QQ plot by MAF", _qq_by_maf(results, genotypes), kind="qq-maf"),
        View("top hits", hits_html, kind="hits"),
        View("regional view", regional, kind="regional"),
    ]


def _template() -> dict:
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()
