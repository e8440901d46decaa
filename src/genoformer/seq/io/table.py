"""TSV / CSV tables: a sequence column, target columns, optional ids and chromosomes."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError, option
from genoformer.seq.data import SequenceData
from genoformer.seq.encoding import check_characters
from genoformer.seq.io._common import (
    PathLike,
    _listing,
    _open_text,
    _require_values,
    _suffix,
    _targets,
    _warn_repeated_ids,
    reads_lengths,
)

TABLE_SUFFIXES = (".tsv", ".csv", ".txt", ".tab")


def _delimiter(path: Path) -> str:
    suffix = _suffix(path)
    if suffix == ".tsv":
        return "\t"
    if suffix == ".csv":
        return ","
    with _open_text(path) as handle:
        sample = handle.read(1 << 16)
    try:
        return csv.Sniffer().sniff(sample, delimiters="\t,;").delimiter
    except csv.Error:  # one column, or too little text to tell: tab is the usual choice
        return "\t"


def _read_frame(path: Path, delimiter: str) -> pd.DataFrame:
    """Every cell as a str, blank lines kept as empty rows so that row i is line i + 2."""
    try:
        with _open_text(path) as handle:
            return pd.read_csv(
                handle, sep=delimiter, dtype=str, keep_default_na=False, skip_blank_lines=False
            )
    except pd.errors.EmptyDataError:
        raise InputError(
            "the file is empty", file=path, fix="give a table with a header line"
        ) from None
    except pd.errors.ParserError as error:
        # pandas: "Error tokenizing data. C error: Expected 2 fields in line 3, saw 3"
        fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        raise InputError(
            f"{fields[3]} fields, the header has {fields[1]}"
            if fields
            else f"cannot be read as a table: {error}",
            file=path,
            where=f"line {fields[2]}" if fields else None,
            fix=f"give every row as many {_delimiter_name(delimiter)}-separated fields as the "
            "header",
        ) from None


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon"}.get(delimiter, repr(delimiter))


@reads_lengths
def read_table(
    path: PathLike,
    *,
    sequence_column: str = "sequence",
    target_columns: Sequence[str] | str | None = None,
    task: Literal["regression", "classification"] | None = None,
    id_column: str = "id",
    chrom_column: str = "chrom",
) -> SequenceData:
    """Read sequences and targets from a TSV/CSV table with a header line.

    Parameters
    ----------
    path
        The table (plain or gzip). The delimiter is a tab for ``.tsv``, a comma for
        ``.csv``, and sniffed (tab, comma, semicolon) otherwise.
    sequence_column
        The column of sequences.
    target_columns
        The target columns; default: every column but the sequence, id and chrom ones
        (none left: sequences without targets).
    task
        Default: numeric targets are regression; one non-numeric column is classification
        with the sorted distinct values as classes. ``"classification"`` also takes one
        column of integer labels (classes are their sorted values).
    id_column, chrom_column
        Optional columns of ids (default ids: ``row1, row2, ...``) and chromosomes.
    {lengths}
    """
    path = Path(path)
    frame = _read_frame(path, _delimiter(path))
    columns = [str(c) for c in frame.columns]
    blank = frame.apply(lambda column: column.str.strip() == "").all(axis=1).to_numpy()
    lines = [int(i) + 2 for i in np.flatnonzero(~blank)]
    frame = frame.loc[~blank]
    if frame.empty:
        raise InputError(
            "no data rows below the header", file=path, fix="add rows of sequences and targets"
        )
    _require_column(
        sequence_column,
        columns,
        path,
        noun="column",
        fix=_sequence_column_fix(),
    )
    sequences = [s.strip() for s in frame[sequence_column]]
    for i, seq in enumerate(sequences):
        if not seq:
            raise InputError(
                "row has no sequence",
                file=path,
                where=f"line {lines[i]}",
                fix="fill in the sequence or remove the row",
            )
    check_characters(sequences, file=path, place=lambda i: f"line {lines[i]}")
    metadata = (sequence_column, id_column, chrom_column)
    if target_columns is None:
        target_columns = [c for c in columns if c not in metadata]
    elif isinstance(target_columns, str):
        target_columns = [target_columns]
    for column in target_columns:
        _require_column(
            column, columns, path, noun="target column", fix="choose target columns from the header"
        )
    targets, names, classes = _targets(frame[list(target_columns)], task, path, lines)
    ids = (
        [s.strip() for s in frame[id_column]]
        if id_column in columns
        else [f"row{i + 1}" for i in range(len(frame))]
    )
    if id_column in columns:
        _warn_repeated_ids(ids, file=lambda i: path, place=lambda i: f"line {lines[i]}")
    chroms = None
    if chrom_column in columns:
        chroms = [s.strip() for s in frame[chrom_column]]
        _require_values(chroms, "chromosome", path, lines)
    return SequenceData(sequences, targets, names, classes, ids, chroms, str(path))


def _sequence_column_fix() -> str:
    name = option("sequence_column")
    if name is None:  # the command line reads the column named 'sequence'
        return "name the column of sequences 'sequence' in the header (or check the delimiter)"
    return f"name the column of sequences with {name} (or check the delimiter)"


def _require_column(column: str, columns: list[str], path: Path, *, noun: str, fix: str) -> None:
    """An InputError at the header line, listing the columns, unless ``column`` is one."""
    if column not in columns:
        raise InputError(
            f"no {noun} {column!r}; the columns are {_listing(columns)}",
            file=path,
            where="line 1 (header)",
            fix=fix,
        )
