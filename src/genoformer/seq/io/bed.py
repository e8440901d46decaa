"""BED intervals cut out of a genome FASTA (pyfaidx), minus strand reverse-complemented."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError
from genoformer.seq.data import SequenceData
from genoformer.seq.encoding import check_characters, reverse_complement
from genoformer.seq.io._common import PathLike, _open_text, _targets, reads_lengths

BED_SUFFIXES = (".bed",)
#: Names of BED columns 1 to 12 when the file has no header line.
BED_COLUMNS = (
    "chrom", "start", "end", "name", "score", "strand",
    "thickStart", "thickEnd", "itemRgb", "blockCount", "blockSizes", "blockStarts",
)  # fmt: skip


def _parse_bed(path: Path) -> tuple[list[list[str]], list[int], list[str] | None]:
    """Rows of fields, their line numbers, and the column names of a '#' header if any."""
    rows: list[list[str]] = []
    lines: list[int] = []
    header: list[str] | None = None
    with _open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            text = line.rstrip("\r\n")
            if not text.strip() or text.startswith(("track", "browser")):
                continue
            fields = text.split("\t") if "\t" in text else text.split()
            if text.startswith("#"):
                header = [f.strip() for f in text.lstrip("#").split("\t" if "\t" in text else None)]
                continue
            rows.append([f.strip() for f in fields])
            lines.append(number)
    if not rows:
        raise InputError(
            "no intervals (the file is empty)",
            file=path,
            fix="give BED lines: chrom, start, end (0-based, end exclusive)",
        )
    width = len(rows[0])
    for row, number in zip(rows, lines, strict=True):
        if len(row) < 3 or len(row) != width:
            raise InputError(
                f"{len(row)} columns, expected {max(width, 3)}"
                + (f" like line {lines[0]}" if width >= 3 else " (chrom, start, end)"),
                file=path,
                where=f"line {number}",
                fix="give every line the same tab-separated columns: chrom, start, end, ...",
            )
    return rows, lines, header if header is not None and len(header) == width else None


def _column_index(spec: int | str, names: list[str], path: Path) -> int:
    """0-based index of a BED column given by 1-based number or name."""
    if isinstance(spec, int | np.integer) and 1 <= spec <= len(names):
        return int(spec) - 1
    if isinstance(spec, str) and spec in names:
        return names.index(spec)
    if isinstance(spec, str) and spec.isdigit() and 1 <= int(spec) <= len(names):
        return int(spec) - 1
    numbered = ", ".join(f"{i + 1}={n}" for i, n in enumerate(names))
    raise InputError(
        f"no column {spec!r}; the columns are {numbered}",
        file=path,
        fix="give a column number (1-based) or a name from the header line",
    )


def _index_path(genome_fasta: Path) -> Path:
    """The genome's ``.fai``: the one beside it when there is one, else one in genoformer's
    cache (named by the file's path, size and time), so that reading a genome never writes
    into the user's genome folder."""
    beside = genome_fasta.with_name(genome_fasta.name + ".fai")
    if beside.is_file():
        return beside
    stat = genome_fasta.stat()
    key = f"{genome_fasta.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "genoformer" / "fai"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable cache: pyfaidx's own place, beside the genome
        return beside
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache / f"{genome_fasta.name}.{digest}.fai"


def _genome_lengths(genome_fasta: Path) -> tuple[Any, dict[str, int]]:
    from pyfaidx import Fasta

    if not genome_fasta.is_file():
        raise InputError("no such genome FASTA", file=genome_fasta, fix="check the path")
    try:
        genome = Fasta(
            str(genome_fasta),
            as_raw=True,
            sequence_always_upper=False,
            indexname=str(_index_path(genome_fasta)),
        )
    except Exception as error:  # pyfaidx raises several types for a file it cannot index
        raise InputError(
            f"cannot index the genome FASTA ({error})",
            file=genome_fasta,
            fix="give an uncompressed or bgzip-compressed FASTA with lines of equal width",
        ) from None
    return genome, {name: int(record.rlen) for name, record in genome.faidx.index.items()}


def _interval(
    row: list[str], number: int, chrom_lengths: dict[str, int], path: Path, genome: Path
) -> tuple[str, int, int]:
    chrom, start_text, end_text = row[:3]
    where = f"line {number}"
    try:
        start, end = int(start_text), int(end_text)
    except ValueError:
        raise InputError(
            f"start {start_text!r} and end {end_text!r} must be whole numbers",
            file=path,
            where=where,
            fix="give 0-based start and end coordinates in columns 2 and 3",
        ) from None
    if chrom not in chrom_lengths:
        examples = ", ".join(list(chrom_lengths)[:3])
        raise InputError(
            f"chromosome {chrom!r} is not in the genome {genome}",
            file=path,
            where=where,
            fix=f"use the genome's chromosome names (such as {examples}); check 'chr1' vs '1' "
            "naming and the genome build",
        )
    if not 0 <= start < end:
        raise InputError(
            f"interval {chrom}:{start}-{end} is empty or negative (need 0 <= start < end)",
            file=path,
            where=where,
            fix="give 0-based, end-exclusive coordinates with start below end",
        )
    if end > chrom_lengths[chrom]:
        raise InputError(
            f"interval {chrom}:{start}-{end} ends past the end of {chrom} "
            f"({chrom_lengths[chrom]:,} bp in {genome})",
            file=path,
            where=where,
            fix="check the genome build, or clip or drop the interval",
        )
    return chrom, start, end


@reads_lengths
def read_bed(
    bed_path: PathLike,
    genome_fasta: PathLike,
    *,
    target_columns: Sequence[int | str] | int | str | None = None,
    name_column: int | str | None = None,
    task: Literal["regression", "classification"] | None = None,
) -> SequenceData:
    """Cut the sequences of BED intervals out of a genome FASTA.

    Parameters
    ----------
    bed_path
        BED3 or more columns (tab-separated; 0-based start, exclusive end). ``track`` and
        ``browser`` lines are skipped; a ``#`` line with as many fields as the data names
        the columns, else they are named as in BED (chrom, start, end, name, score, strand,
        ...).
    genome_fasta
        The genome (read with pyfaidx; its ``.fai`` index is read from beside it, or written
        to genoformer's cache, never into the genome's folder).
    target_columns
        Columns 4 and on that hold targets, by 1-based number or name; default none
        (sequences without targets). Their values are read as in
        :func:`~genoformer.seq.io.table.read_table`.
    name_column
        Column of ids; default ids are ``chrom:start-end``.
    task
        As in :func:`~genoformer.seq.io.table.read_table`.
    {lengths}

    Returns
    -------
    SequenceData
        With ``chroms``. Intervals on the minus strand (a column named ``strand`` that holds
        only ``+``, ``-`` and ``.``) are reverse-complemented.
    """
    path, genome_path = Path(bed_path), Path(genome_fasta)
    rows, lines, header = _parse_bed(path)
    width = len(rows[0])
    names = header or [
        BED_COLUMNS[j] if j < len(BED_COLUMNS) else f"column{j + 1}" for j in range(width)
    ]
    if target_columns is None:
        target_columns = []
    elif isinstance(target_columns, int | str):
        target_columns = [target_columns]
    target_index = [_column_index(spec, names, path) for spec in target_columns]
    for spec, j in zip(target_columns, target_index, strict=True):
        if j < 3:
            raise InputError(
                f"column {spec!r} is chrom, start or end, not a target",
                file=path,
                fix="choose target columns from column 4 on",
            )
    name_index = None if name_column is None else _column_index(name_column, names, path)
    strands = [row[names.index("strand")] for row in rows] if "strand" in names else []
    minus = set(strands) <= {"+", "-", "."} and "-" in strands

    genome, chrom_lengths = _genome_lengths(genome_path)
    sequences, chroms, intervals = [], [], []
    try:
        for row, number in zip(rows, lines, strict=True):
            chrom, start, end = _interval(row, number, chrom_lengths, path, genome_path)
            sequences.append(genome[chrom][start:end])
            chroms.append(chrom)
            intervals.append(f"{chrom}:{start}-{end}")
    finally:
        genome.close()
    if minus:
        sequences = [
            reverse_complement(s) if strand == "-" else s
            for s, strand in zip(sequences, strands, strict=True)
        ]
    check_characters(
        sequences, file=genome_path, place=lambda i: f"{intervals[i]} (line {lines[i]} of {path})"
    )
    frame = pd.DataFrame({names[j]: [row[j] for row in rows] for j in target_index})
    targets, target_names, classes = _targets(frame, task, path, lines)
    ids = intervals if name_index is None else [row[name_index] for row in rows]
    return SequenceData(sequences, targets, target_names, classes, ids, chroms, str(path))
