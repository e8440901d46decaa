"""Sequence data sets: DNA sequences with their targets, read from FASTA, tables or BED.

A :class:`SequenceData` holds one of three kinds of targets (its ``task``):

- ``"regression"``: ``targets`` float32 ``(N, T)``, one column per name in ``target_names``;
- ``"classification"``: ``targets`` int64 ``(N,)``, indices into ``classes``;
- ``"none"``: sequences only (for prediction): ``targets`` float32 ``(N, 0)``,
  ``target_names`` empty, ``classes`` None.

Readers check their input as they go and raise :class:`InputError` with the file, the place
(line, record, position) and the fix. Sequences keep their case as read (soft-masked
repeats stay lower case; the encoders read both cases alike).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import pandas as pd
import torch
from numpy.typing import DTypeLike

from genoformer.engine.errors import InputError
from genoformer.seq.encoding import (
    UnknownMode,
    check_characters,
    check_lengths,
    one_hot,
    reverse_complement,
)

PathLike = str | os.PathLike
Task = Literal["regression", "classification", "none"]
LengthMode = Literal["keep", "error", "pad", "crop", "fit"]

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")
TABLE_SUFFIXES = (".tsv", ".csv", ".txt", ".tab")
BED_SUFFIXES = (".bed",)
#: Names of BED columns 1 to 12 when the file has no header line.
BED_COLUMNS = (
    "chrom", "start", "end", "name", "score", "strand",
    "thickStart", "thickEnd", "itemRgb", "blockCount", "blockSizes", "blockStarts",
)  # fmt: skip
#: Table cells that mean "no value".
MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "None"})
#: Ids such as ``chr1:100-300`` (bedtools getfasta), optionally with a strand ``(+)``.
_INTERVAL_ID = re.compile(r"([^:\s]+):\d+-\d+(?:\([+\-.]\))?")


@dataclass(repr=False, eq=False)
class SequenceData:
    """DNA sequences with their targets, ids and (when known) chromosomes.

    Attributes
    ----------
    sequences
        The sequences, as read.
    targets
        Regression: float32 ``(N, T)``; classification: int64 ``(N,)`` class indices;
        none: float32 ``(N, 0)``. Default: none. A 1-D float array becomes ``(N, 1)``.
    target_names
        One name per regression target; ``["label"]`` (or the label column) for
        classification; empty for none. Default: ``target``/``target0, target1, ...``.
    classes
        Class names (classification), or None.
    ids
        One id per sequence; default ``seq0, seq1, ...``.
    chroms
        Chromosome of each sequence, or None when unknown.
    source
        Where the data comes from (a file name), for error messages.
    """

    sequences: list[str]
    targets: np.ndarray | None = None
    target_names: list[str] = field(default_factory=list)
    classes: list[str] | None = None
    ids: list[str] = field(default_factory=list)
    chroms: list[str] | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        self.sequences = list(self.sequences)
        n = len(self.sequences)
        self.ids = [str(i) for i in self.ids] if len(self.ids) else [f"seq{i}" for i in range(n)]
        if len(self.ids) != n:
            raise ValueError(f"{len(self.ids)} ids for {n} sequences")
        if self.chroms is not None:
            self.chroms = [str(c) for c in self.chroms]
            if len(self.chroms) != n:
                raise ValueError(f"{len(self.chroms)} chroms for {n} sequences")
        if self.source is not None:
            self.source = str(self.source)
        self.target_names = [str(t) for t in self.target_names]
        if self.classes is None:
            self._check_regression(n)
        else:
            self._check_classification(n)

    def _check_regression(self, n: int) -> None:
        targets = np.zeros((n, 0), np.float32) if self.targets is None else self.targets
        targets = np.asarray(targets, dtype=np.float32)
        if targets.ndim == 1:
            targets = targets[:, None]
        if targets.ndim != 2 or targets.shape[0] != n:
            raise ValueError(f"targets of shape {targets.shape}, expected ({n}, T)")
        n_targets = targets.shape[1]
        if not self.target_names and n_targets:
            self.target_names = (
                ["target"] if n_targets == 1 else [f"target{j}" for j in range(n_targets)]
            )
        if len(self.target_names) != n_targets:
            raise ValueError(f"{len(self.target_names)} target names for {n_targets} targets")
        self.targets = targets

    def _check_classification(self, n: int) -> None:
        self.classes = [str(c) for c in self.classes]
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct and at least one: {self.classes}")
        targets = np.asarray(self.targets)
        if targets.shape != (n,) or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(
                f"classification targets of shape {targets.shape} and dtype {targets.dtype}, "
                f"expected integer class indices of shape ({n},)"
            )
        if n and (targets.min() < 0 or targets.max() >= len(self.classes)):
            raise ValueError(f"class indices outside 0..{len(self.classes) - 1}")
        self.target_names = self.target_names or ["label"]
        if len(self.target_names) != 1:
            raise ValueError(f"classification has one target name, got {self.target_names}")
        self.targets = targets.astype(np.int64, copy=False)

    @property
    def task(self) -> Task:
        """``"regression"``, ``"classification"`` or ``"none"`` (sequences only)."""
        if self.classes is not None:
            return "classification"
        return "regression" if self.targets.shape[1] else "none"

    @property
    def n_outputs(self) -> int:
        """Number of model outputs: targets (regression), classes, or 0 (none)."""
        if self.classes is not None:
            return len(self.classes)
        return int(self.targets.shape[1])

    @property
    def length(self) -> int | None:
        """The common length of the sequences, or None if they differ (or there are none)."""
        lengths = set(map(len, self.sequences))
        return lengths.pop() if len(lengths) == 1 else None

    def __len__(self) -> int:
        return len(self.sequences)

    def __repr__(self) -> str:
        length = self.length if self.length is not None else "unequal lengths"
        outputs = f", {self.n_outputs} outputs" if self.task != "none" else ""
        return (
            f"SequenceData({len(self)} sequences, length {length}, task {self.task}{outputs}, "
            f"source {self.source!r})"
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> SequenceData:
        """The sequences at ``indices`` (integers, or a boolean mask), in that order."""
        index = np.asarray(indices)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise ValueError(f"mask of shape {index.shape} for {len(self)} sequences")
            index = np.flatnonzero(index)
        elif index.size == 0:
            index = index.astype(np.int64)
        elif not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"indices must be integers or a boolean mask, not {index.dtype}")
        index = index.reshape(-1)
        pick = index.tolist()
        return SequenceData(
            sequences=[self.sequences[i] for i in pick],
            targets=self.targets[index],
            target_names=list(self.target_names),
            classes=None if self.classes is None else list(self.classes),
            ids=[self.ids[i] for i in pick],
            chroms=None if self.chroms is None else [self.chroms[i] for i in pick],
            source=self.source,
        )

    def one_hot(self, unknown: UnknownMode = "zero", dtype: DTypeLike = np.float32) -> np.ndarray:
        """One-hot encoding ``(N, 4, L)``; see :func:`genoformer.seq.encoding.one_hot`."""
        return one_hot(
            self.sequences, unknown=unknown, dtype=dtype, names=self.ids, file=self.source
        )


class OneHotDataset(torch.utils.data.Dataset):
    """Items ``{"x": float32 (4, L), "labels": ...}`` for training and prediction.

    The one-hot encoding is made once, stored as uint8 (a quarter of float32's memory) and
    made float32 per item. ``labels`` is float32 ``(T,)`` for regression, an int64 scalar
    for classification, and absent for data without targets.
    """

    def __init__(self, data: SequenceData, *, unknown: UnknownMode = "zero") -> None:
        self.x = torch.from_numpy(data.one_hot(unknown=unknown, dtype=np.uint8))
        self.labels = None if data.task == "none" else torch.tensor(data.targets)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {"x": self.x[index].float()}
        if self.labels is not None:
            item["labels"] = self.labels[index]
        return item


# ---------------------------------------------------------------------------- files


def _as_paths(path_or_paths: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(path_or_paths, str | os.PathLike):
        return [Path(path_or_paths)]
    paths = [Path(p) for p in path_or_paths]
    if not paths:
        raise InputError("no input files given", fix="give at least one file")
    return paths


def _suffix(path: Path) -> str:
    """The file type suffix, below a compression suffix: ``a.fa.gz`` -> ``.fa``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bgz"):
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _stem(path: Path) -> str:
    name = path.name
    for _ in range(2):  # a.fa.gz -> a
        if Path(name).suffix.lower() in (*FASTA_SUFFIXES, ".gz", ".bgz"):
            name = Path(name).stem
    return name


@contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    """Open a text file, gzip-compressed or not, turning OS errors into InputError."""
    try:
        with open(path, "rb") as probe:
            compressed = probe.read(2) == b"\x1f\x8b"
        # Closed by the `with handle` below, once the caller's block ends.
        opener = gzip.open if compressed else open
        handle = opener(path, "rt", encoding="utf-8")  # noqa: SIM115
    except FileNotFoundError:
        raise InputError("no such file", file=path, fix="check the path") from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", file=path, fix="give a file") from None
    except OSError as error:
        raise InputError(
            f"cannot read: {error.strerror}", file=path, fix="check the file"
        ) from None
    try:
        with handle:
            yield handle
    except UnicodeDecodeError as error:
        raise InputError(
            f"not a UTF-8 text file (byte {error.start} of a block cannot be decoded)",
            file=path,
            fix="give a plain-text or gzip-compressed file",
        ) from None
    except (EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"broken gzip file: {error}", file=path, fix="re-compress it") from None


# ---------------------------------------------------------------------------- FASTA


def _parse_fasta(path: Path) -> tuple[list[str], list[str], list[int]]:
    """Headers (without '>'), sequences and the line number of each header."""
    headers: list[str] = []
    lines: list[int] = []
    sequences: list[str] = []
    parts: list[str] | None = None
    with _open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            if line.startswith(">"):
                if parts is not None:
                    sequences.append("".join(parts))
                headers.append(line[1:].strip())
                lines.append(number)
                parts = []
                continue
            text = line.strip()
            if not text or text.startswith(";"):  # blank lines and old-style comments
                continue
            if parts is None:
                raise InputError(
                    "sequence before the first '>' header",
                    file=path,
                    where=f"line {number}",
                    fix="start each record with a '>' header line (is this a FASTA file?)",
                )
            parts.append(text)
    if parts is not None:
        sequences.append("".join(parts))
    if not headers:
        raise InputError(
            "no FASTA records (the file is empty)",
            file=path,
            fix="give a FASTA file with '>' header lines and sequences",
        )
    for header, line, seq in zip(headers, lines, sequences, strict=True):
        if not seq:
            raise InputError(
                "record has no sequence",
                file=path,
                where=f"record {header!r} (line {line})",
                fix="add the sequence below the header or remove the header",
            )
    return headers, sequences, lines


def _chroms_from_ids(ids: Sequence[str]) -> list[str] | None:
    """Chromosomes from ids like ``chr1:100-300`` when every id has that form."""
    matches = [_INTERVAL_ID.fullmatch(i) for i in ids]
    if not ids or any(m is None for m in matches):
        return None
    return [m.group(1) for m in matches]


def read_fasta(
    paths: PathLike | Sequence[PathLike],
    *,
    labels: Sequence[str] | None = None,
    label_pattern: str | None = None,
    lengths: LengthMode = "keep",
    length: int | None = None,
) -> SequenceData:
    """Read sequences from FASTA files, with a class per file or per header.

    Parameters
    ----------
    paths
        One FASTA file or several (plain or gzip). Multi-line records are joined.
    labels
        One class name per file, in order (files may share a class). Several files without
        ``labels`` or ``label_pattern``: each file is a class named after its file stem.
    label_pattern
        A regular expression whose first group, searched in each header, is the class,
        e.g. ``r"label=(\\w+)"``.
    lengths, length
        What to do about sequences of unequal length: ``"keep"`` them, or see
        :func:`harmonize_lengths` (``"error"``, ``"pad"``, ``"crop"``, ``"fit"``).

    Returns
    -------
    SequenceData
        Ids are the first word of each header. Classes are in the order of ``labels`` (file
        order), or sorted with ``label_pattern``. One file without labels gives sequences
        without targets (task ``"none"``). Chromosomes are set when every id looks like
        ``chr1:100-300``.
    """
    files = _as_paths(paths)
    if labels is not None and label_pattern is not None:
        raise InputError(
            "both labels and label_pattern given",
            fix="use labels for one class per file, or label_pattern for a label per header",
        )
    pattern = _compile_label_pattern(label_pattern) if label_pattern is not None else None
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != len(files):
            raise InputError(
                f"{len(labels)} labels for {len(files)} FASTA files",
                fix="give one label per FASTA file, in the same order",
            )
    elif pattern is None and len(files) > 1:
        labels = [_stem(p) for p in files]
        for i, label in enumerate(labels):
            if label in labels[:i]:
                raise InputError(
                    f"two files named {label!r} would be one class",
                    file=files[i],
                    fix="name the classes with labels=[...] (--labels)",
                )
    sequences: list[str] = []
    ids: list[str] = []
    per_record: list[str] = []
    for index, path in enumerate(files):
        headers, seqs, lines = _parse_fasta(path)
        names = [h.split()[0] if h.split() else f"record{i + 1}" for i, h in enumerate(headers)]
        check_characters(
            seqs, file=path, place=lambda i, names=names, lines=lines: _fasta_place(names, lines, i)
        )
        if pattern is not None:
            per_record += _labels_from_headers(pattern, headers, names, lines, path)
        elif labels is not None:
            per_record += [labels[index]] * len(seqs)
        sequences += seqs
        ids += names
    if pattern is not None:
        classes = sorted(set(per_record))
    elif labels is not None:
        classes = list(dict.fromkeys(labels))
    else:
        classes = None
    targets = None
    if classes is not None:
        index_of = {c: i for i, c in enumerate(classes)}
        targets = np.array([index_of[c] for c in per_record], dtype=np.int64)
    data = SequenceData(
        sequences=sequences,
        targets=targets,
        target_names=["label"] if classes is not None else [],
        classes=classes,
        ids=ids,
        chroms=_chroms_from_ids(ids),
        source=", ".join(str(p) for p in files),
    )
    return _apply_lengths(data, lengths, length)


def _fasta_place(names: Sequence[str], lines: Sequence[int], i: int) -> str:
    return f"record {names[i]!r} (line {lines[i]})"


def _compile_label_pattern(label_pattern: str) -> re.Pattern:
    try:
        pattern = re.compile(label_pattern)
    except re.error as error:
        raise InputError(
            f"label_pattern {label_pattern!r} is not a regular expression ({error})",
            fix=r"give a regular expression with one group, e.g. 'label=(\w+)'",
        ) from None
    if pattern.groups < 1:
        raise InputError(
            f"label_pattern {label_pattern!r} has no group to take the label from",
            fix=r"put the label in parentheses, e.g. 'label=(\w+)'",
        )
    return pattern


def _labels_from_headers(
    pattern: re.Pattern, headers: list[str], names: list[str], lines: list[int], path: Path
) -> list[str]:
    found = []
    for i, header in enumerate(headers):
        match = pattern.search(header)
        if match is None or not match.group(1):
            raise InputError(
                f"label_pattern {pattern.pattern!r} finds no label in the header {header!r}",
                file=path,
                where=_fasta_place(names, lines, i),
                fix="give every header a label, or change label_pattern",
            )
        found.append(match.group(1))
    return found


# ---------------------------------------------------------------------------- tables


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
        raise InputError(
            f"cannot be read as a table: {error}",
            file=path,
            fix=f"give every row as many {_delimiter_name(delimiter)}-separated fields as the "
            "header",
        ) from None


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon"}.get(delimiter, repr(delimiter))


def read_table(
    path: PathLike,
    *,
    sequence_column: str = "sequence",
    target_columns: Sequence[str] | str | None = None,
    task: Literal["regression", "classification"] | None = None,
    id_column: str = "id",
    chrom_column: str = "chrom",
    lengths: LengthMode = "keep",
    length: int | None = None,
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
    lengths, length
        As in :func:`read_fasta`.
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
    header_where = "line 1 (header)"
    if sequence_column not in columns:
        raise InputError(
            f"no column {sequence_column!r}; the columns are {_listing(columns)}",
            file=path,
            where=header_where,
            fix="name the sequence column with sequence_column=... (or check the delimiter)",
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
        if column not in columns:
            raise InputError(
                f"no target column {column!r}; the columns are {_listing(columns)}",
                file=path,
                where=header_where,
                fix="choose target columns from the header",
            )
    targets, names, classes = _targets(frame[list(target_columns)], task, path, lines)
    ids = (
        [s.strip() for s in frame[id_column]]
        if id_column in columns
        else [f"row{i + 1}" for i in range(len(frame))]
    )
    chroms = None
    if chrom_column in columns:
        chroms = [s.strip() for s in frame[chrom_column]]
        _require_values(chroms, "chromosome", path, lines)
    data = SequenceData(sequences, targets, names, classes, ids, chroms, str(path))
    return _apply_lengths(data, lengths, length)


def _listing(names: Sequence[Any]) -> str:
    return ", ".join(repr(n) for n in names) if names else "(none)"


def _require_values(values: Sequence[str], what: str, path: Path, lines: Sequence[int]) -> None:
    for i, value in enumerate(values):
        if value in MISSING:
            raise InputError(
                f"no {what}",
                file=path,
                where=f"line {lines[i]}",
                fix=f"fill in the {what} or remove the row",
            )


def _targets(
    frame: pd.DataFrame, task: str | None, path: Path, lines: Sequence[int]
) -> tuple[np.ndarray | None, list[str], list[str] | None]:
    """Targets, target names and classes from columns of str cells (see read_table)."""
    if task not in (None, "regression", "classification"):
        raise InputError(f"task={task!r}", fix="use 'regression' or 'classification'")
    names = [str(c) for c in frame.columns]
    if not names:
        if task is not None:
            raise InputError(
                f"task={task!r} but there is no target column", file=path, fix="add target columns"
            )
        return None, [], None
    cells = {name: [s.strip() for s in frame[name]] for name in names}
    for name, values in cells.items():
        _require_values(values, f"value in column {name!r}", path, lines)
    numbers = {
        name: pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float64)
        for name, values in cells.items()
    }
    only_text = len(names) == 1 and np.isnan(numbers[names[0]]).all()
    if task == "classification" or (task is None and only_text):
        if len(names) != 1:
            raise InputError(
                f"classification takes one label column, got {len(names)}: {_listing(names)}",
                file=path,
                fix="choose the label column with target_columns=[...] (--targets)",
            )
        return _classes(cells[names[0]], numbers[names[0]], names[0], path, lines)
    for name, values in numbers.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            hint = (
                " or pass task='classification' if the column holds class labels"
                if len(names) == 1
                else " or choose the numeric columns with target_columns=[...]"
            )
            raise InputError(
                f"target {cells[name][i]!r} in column {name!r} is not a finite number",
                file=path,
                where=f"line {lines[i]}",
                fix="correct the value" + hint,
            )
    targets = np.stack([numbers[n] for n in names], axis=1).astype(np.float32)
    return targets, names, None


def _classes(
    values: list[str], numbers: np.ndarray, name: str, path: Path, lines: Sequence[int]
) -> tuple[np.ndarray, list[str], list[str]]:
    if np.isfinite(numbers).all():  # integer labels: sort the classes as numbers
        fractional = np.flatnonzero(numbers != np.round(numbers))
        if fractional.size:
            i = int(fractional[0])
            raise InputError(
                f"class label {values[i]!r} in column {name!r} is not an integer",
                file=path,
                where=f"line {lines[i]}",
                fix="use task='regression' for measured values, or give integer labels",
            )
        labels = [str(int(v)) for v in numbers]
        classes = [str(v) for v in sorted({int(v) for v in numbers})]
    else:
        labels = values
        classes = sorted(set(values))
    index_of = {c: i for i, c in enumerate(classes)}
    targets = np.array([index_of[label] for label in labels], dtype=np.int64)
    return targets, [name], classes


# ---------------------------------------------------------------------------- BED


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


def _genome_lengths(genome_fasta: Path) -> tuple[Any, dict[str, int]]:
    from pyfaidx import Fasta

    if not genome_fasta.is_file():
        raise InputError("no such genome FASTA", file=genome_fasta, fix="check the path")
    try:
        genome = Fasta(str(genome_fasta), as_raw=True, sequence_always_upper=False)
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


def read_bed(
    bed_path: PathLike,
    genome_fasta: PathLike,
    *,
    target_columns: Sequence[int | str] | int | str | None = None,
    name_column: int | str | None = None,
    task: Literal["regression", "classification"] | None = None,
    lengths: LengthMode = "keep",
    length: int | None = None,
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
        The genome (read with pyfaidx, which writes a ``.fai`` index beside it if missing).
    target_columns
        Columns 4 and on that hold targets, by 1-based number or name; default none
        (sequences without targets). Their values are read as in :func:`read_table`.
    name_column
        Column of ids; default ids are ``chrom:start-end``.
    task
        As in :func:`read_table`.
    lengths, length
        As in :func:`read_fasta`.

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
    data = SequenceData(sequences, targets, target_names, classes, ids, chroms, str(path))
    return _apply_lengths(data, lengths, length)


# ---------------------------------------------------------------------------- any file


def _kind(path: Path) -> str:
    suffix = _suffix(path)
    for kind, suffixes in (
        ("fasta", FASTA_SUFFIXES),
        ("table", TABLE_SUFFIXES),
        ("bed", BED_SUFFIXES),
    ):
        if suffix in suffixes:
            return kind
    raise InputError(
        f"unknown file type {suffix or '(no extension)'!r}",
        file=path,
        fix="give FASTA (.fa, .fasta, .fna), a table (.tsv, .csv, .txt) or BED (.bed, with a "
        "genome FASTA); gzip (.gz) is fine",
    )


def load_sequences(
    path_or_paths: PathLike | Sequence[PathLike],
    *,
    genome: PathLike | None = None,
    targets: Sequence[int | str] | str | None = None,
    task: Literal["regression", "classification"] | None = None,
    labels: Sequence[str] | None = None,
    label_pattern: str | None = None,
    **options: Any,
) -> SequenceData:
    """Read sequences from FASTA, a table or BED + genome, chosen by the file extension.

    Parameters
    ----------
    path_or_paths
        One file, or several FASTA files (one class each).
    genome
        The genome FASTA that BED intervals are cut from.
    targets
        Target columns of a table or BED file (``target_columns`` of the readers).
    task
        For tables and BED files, as in :func:`read_table`.
    labels, label_pattern
        For FASTA, as in :func:`read_fasta`.
    **options
        Passed to the reader (``lengths``, ``length``, ``sequence_column``, ...).

    Options left at None are ignored; one that does not apply to the file type is an error.
    """
    paths = _as_paths(path_or_paths)
    kinds = [_kind(p) for p in paths]
    if len(paths) > 1 and set(kinds) != {"fasta"}:
        other = paths[next(i for i, k in enumerate(kinds) if k != "fasta")]
        raise InputError(
            "several files are read only as FASTA files, one class each",
            file=other,
            fix="give one table or one BED file, or only FASTA files",
        )
    kind = kinds[0]
    given = {
        "--genome": genome is not None,
        "--targets": targets is not None,
        "--task": task is not None,
        "--labels": labels is not None,
        "--label-pattern": label_pattern is not None,
    }
    allowed = {
        "fasta": ("--labels", "--label-pattern", "--task"),
        "table": ("--targets", "--task"),
        "bed": ("--genome", "--targets", "--task"),
    }[kind]
    for option, is_given in given.items():
        if is_given and option not in allowed:
            raise InputError(
                f"{option} does not apply to a {kind.upper() if kind != 'table' else kind} file",
                file=paths[0],
                fix=f"leave {option} out; for this file type use {', '.join(allowed)}",
            )
    if kind == "fasta":
        if task == "regression":
            raise InputError(
                "FASTA files give classes, not regression targets",
                file=paths[0],
                fix="use a table of sequences and values for regression",
            )
        return read_fasta(paths, labels=labels, label_pattern=label_pattern, **options)
    if kind == "table":
        return read_table(paths[0], target_columns=targets, task=task, **options)
    if genome is None:
        raise InputError(
            "a BED file needs a genome FASTA to cut the sequences from",
            file=paths[0],
            fix="pass genome=... (--genome on the command line)",
        )
    return read_bed(paths[0], genome, target_columns=targets, task=task, **options)


# ---------------------------------------------------------------------------- lengths, splits


def _fit(seq: str, length: int) -> str:
    """``seq`` centred in ``length``: padded with N, or cropped (odd extras go right)."""
    if len(seq) < length:
        left = (length - len(seq)) // 2
        return "N" * left + seq + "N" * (length - len(seq) - left)
    start = (len(seq) - length) // 2
    return seq[start : start + length]


def harmonize_lengths(
    data: SequenceData, *, mode: str = "error", length: int | None = None
) -> SequenceData:
    """Sequences of one length, for models with a fixed input length.

    Parameters
    ----------
    data
        The sequences.
    mode
        ``"error"``: :class:`InputError` when lengths differ (or differ from ``length``),
        naming the first record that differs. ``"pad"``: pad with N on both sides (centred)
        to ``length`` or the longest. ``"crop"``: keep the centre, ``length`` or the
        shortest. ``"fit"``: pad the shorter and crop the longer to ``length`` (required).
    length
        The length to reach.
    """
    if mode not in ("error", "pad", "crop", "fit"):
        raise InputError(f"unknown length mode {mode!r}", fix="use 'error', 'pad', 'crop' or 'fit'")
    if length is not None and length < 1:
        raise InputError(f"length={length}", fix="give a length of at least 1")
    if not len(data):
        return data
    if mode == "error":
        check_lengths(data.sequences, length=length, names=data.ids, file=data.source)
        return data
    lengths = np.fromiter(map(len, data.sequences), dtype=np.int64, count=len(data))
    if mode == "fit" and length is None:
        raise InputError("mode 'fit' needs a length", fix="give length=... (--length)")
    target = (
        length if length is not None else int(lengths.max() if mode == "pad" else lengths.min())
    )
    wrong = lengths > target if mode == "pad" else lengths < target if mode == "crop" else None
    if wrong is not None and wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        other = "crop" if mode == "pad" else "pad"
        raise InputError(
            f"length {lengths[i]} cannot be {mode}ped to {target}",
            file=data.source,
            where=f"record {data.ids[i]!r}",
            fix=f"use mode '{other}' or 'fit', or a length that every sequence can reach",
        )
    if (lengths == target).all():
        return data
    sequences = [s if len(s) == target else _fit(s, target) for s in data.sequences]
    return dataclasses.replace(data, sequences=sequences)


def _apply_lengths(data: SequenceData, lengths: str, length: int | None) -> SequenceData:
    if lengths == "keep":
        if length is not None:
            raise InputError(
                f"length={length} with lengths='keep'",
                fix="choose how to reach the length: lengths='error', 'pad', 'crop' or 'fit'",
            )
        return data
    return harmonize_lengths(data, mode=lengths, length=length)
