"""FASTA files: one class per file, a label per header, or sequences alone."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genoformer.engine.errors import InputError, cli_option, option, setting
from genoformer.seq.data import SequenceData
from genoformer.seq.encoding import check_characters
from genoformer.seq.io._common import (
    PathLike,
    _as_paths,
    _open_text,
    _warn_repeated_ids,
    reads_lengths,
)

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")
#: Ids such as ``chr1:100-300`` (bedtools getfasta), optionally with a strand ``(+)``.
_INTERVAL_ID = re.compile(r"([^:\s]+):\d+-\d+(?:\([+\-.]\))?")


def _stem(path: Path) -> str:
    name = path.name
    for _ in range(2):  # a.fa.gz -> a
        if Path(name).suffix.lower() in (*FASTA_SUFFIXES, ".gz", ".bgz"):
            name = Path(name).stem
    return name


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


@reads_lengths
def read_fasta(
    paths: PathLike | Sequence[PathLike],
    *,
    labels: Sequence[str] | None = None,
    label_pattern: str | None = None,
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
    {lengths}

    Returns
    -------
    SequenceData
        Ids are the first word of each header. Classes are in the order of ``labels`` (file
        order), or sorted with ``label_pattern``. One file without labels gives sequences
        without targets (task ``"none"``). Chromosomes are set when every id looks like
        ``chr1:100-300``.
    """
    files = _as_paths(paths)
    labels, pattern = _file_labels(files, labels, label_pattern)
    sequences: list[str] = []
    ids: list[str] = []
    per_record: list[str] = []
    record_file: list[int] = []
    record_line: list[int] = []
    for index, path in enumerate(files):
        headers, seqs, lines = _parse_fasta(path)
        record_file += [index] * len(seqs)
        record_line += lines
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
    _warn_repeated_ids(
        ids,
        file=lambda i: files[record_file[i]],
        place=lambda i: f"record {ids[i]!r} (line {record_line[i]})",
    )
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
    return SequenceData(
        sequences=sequences,
        targets=targets,
        target_names=["label"] if classes is not None else [],
        classes=classes,
        ids=ids,
        chroms=_chroms_from_ids(ids),
        source=", ".join(str(p) for p in files),
    )


def _file_labels(
    files: list[Path], labels: Sequence[str] | None, label_pattern: str | None
) -> tuple[list[str] | None, re.Pattern | None]:
    """The class of each file (given, or the file stems of several files) or the pattern
    that finds it in each header; both, or labels that do not fit the files, are refused."""
    if labels is not None and label_pattern is not None:
        labels_name, pattern_name = setting("labels"), setting("label_pattern")
        raise InputError(
            f"both {labels_name} and {pattern_name} given",
            fix=f"use {labels_name} for one class per file, or {pattern_name} for a label per "
            "header",
        )
    pattern = _compile_label_pattern(label_pattern) if label_pattern is not None else None
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != len(files):
            raise InputError(
                f"{len(labels)} label{'s' if len(labels) != 1 else ''} for {len(files)} FASTA "
                "files",
                where=cli_option("labels"),
                fix="give one label per FASTA file, in the same order",
            )
    elif pattern is None and len(files) > 1:
        labels = [_stem(p) for p in files]
        for i, label in enumerate(labels):
            if label in labels[:i]:
                raise InputError(
                    f"two files named {label!r} would be one class",
                    file=files[i],
                    fix=f"name the class of each file with {option('labels')}",
                )
    return labels, pattern


def _fasta_place(names: Sequence[str], lines: Sequence[int], i: int) -> str:
    return f"record {names[i]!r} (line {lines[i]})"


def _compile_label_pattern(label_pattern: str) -> re.Pattern:
    try:
        pattern = re.compile(label_pattern)
    except re.error as error:
        raise InputError(
            f"{setting('label_pattern')} {label_pattern!r} is not a regular expression ({error})",
            fix=r"give a regular expression with one group, e.g. 'label=(\w+)'",
        ) from None
    if pattern.groups < 1:
        raise InputError(
            f"{setting('label_pattern')} {label_pattern!r} has no group to take the label from",
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
                f"{setting('label_pattern')} {pattern.pattern!r} finds no label in the header "
                f"{header!r}",
                file=path,
                where=_fasta_place(names, lines, i),
                fix=f"give every header a label, or change {setting('label_pattern')}",
            )
        found.append(match.group(1))
    return found
