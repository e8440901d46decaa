"""Genes for the gene track of regional views: a BED file (chrom, start, end, name[, score,
strand]) or a GTF file (its ``gene`` lines, named by ``gene_name``, else ``gene_id``), read
locally: LocusZoom's default gene track asks a remote service, which this page never does.

Chromosome names are compared without a leading ``chr`` (``chr1`` in the genes is ``1`` in
PLINK's results). Positions are kept as 1-based closed intervals, as the variants are.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import pandas as pd

from genoformer.engine.errors import InputError

__all__ = ["chrom_key", "genes_near", "read_genes"]

_GTF_NAME = re.compile(r'gene_name "([^"]*)"')
_GTF_ID = re.compile(r'gene_id "([^"]*)"')


def chrom_key(name: object) -> str:
    """A chromosome name as both PLINK and UCSC-style files can be matched on."""
    text = str(name)
    return text[3:] if text.lower().startswith("chr") else text


def _lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        yield from enumerate(handle, start=1)


def _bed_row(fields: list[str], path: Path, number: int) -> tuple | None:
    if len(fields) < 4:
        raise InputError(f"{len(fields)} columns, a gene needs 4 (chrom, start, end, name)",
                         file=path, where=f"line {number}",
                         fix="give BED lines: chrom, start, end, name (strand in column 6)")  # fmt: skip
    try:
        start, end = int(fields[1]) + 1, int(fields[2])  # BED is 0-based, end exclusive
    except ValueError:
        raise InputError(f"start {fields[1]!r} and end {fields[2]!r} must be whole numbers",
                         file=path, where=f"line {number}",
                         fix="give 0-based start and end coordinates in columns 2 and 3") from None  # fmt: skip
    strand = fields[5] if len(fields) > 5 and fields[5] in "+-" else "."
    return chrom_key(fields[0]), start, end, fields[3], strand


def _gtf_row(fields: list[str], path: Path, number: int) -> tuple | None:
    if len(fields) < 9:
        raise InputError(f"{len(fields)} tab-separated columns, a GTF line has 9", file=path,
                         where=f"line {number}", fix="give a GTF (or BED) file of genes")  # fmt: skip
    if fields[2] != "gene":
        return None
    name = _GTF_NAME.search(fields[8]) or _GTF_ID.search(fields[8])
    try:
        start, end = int(fields[3]), int(fields[4])
    except ValueError:
        raise InputError(f"start {fields[3]!r} and end {fields[4]!r} must be whole numbers",
                         file=path, where=f"line {number}",
                         fix="give 1-based start and end coordinates in columns 4 and 5") from None  # fmt: skip
    return chrom_key(fields[0]), start, end, name.group(1) if name else "?", fields[6]


def read_genes(path: str | os.PathLike) -> pd.DataFrame:
    """``chrom`` (no ``chr``), ``start``, ``end`` (1-based, closed), ``name``, ``strand``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such genes file", file=path, fix="check the path (BED or GTF)")
    gtf = ".gtf" in path.suffixes or ".gff" in path.suffixes
    rows = []
    for number, line in _lines(path):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.rstrip("\n").split("\t")
        row = (_gtf_row if gtf else _bed_row)(fields, path, number)
        if row is not None:
            rows.append(row)
    if not rows:
        raise InputError("no genes in the file", file=path,
                         fix="give BED lines (chrom, start, end, name) or GTF 'gene' lines")  # fmt: skip
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "name", "strand"])


def genes_near(genes: pd.DataFrame | None, chrom: str, low: float, high: float) -> list[dict]:
    """The genes overlapping ``chrom:low-high``, in order of their start."""
    if genes is None:
        return []
    chosen = genes[(genes["chrom"] == chrom_key(chrom)) & (genes["end"] >= low)
                   & (genes["start"] <= high)].sort_values("start", kind="stable")  # fmt: skip
    return (
        [
            {"start": int(s), "end": int(e), "name": str(n), "strand": str(d)}
            for s, e, n, d in zip(
                chosen["start"], chosen["end"], chosen["name"], chosen["strand"], strict=True
            )  # fmt: skip
        ]
        if len(chosen)
        else []
    )
