"""load_sequences: FASTA, a table or BED + genome, chosen by the file extension."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from genoformer.engine.errors import InputError, option, setting
from genoformer.seq.data import SequenceData
from genoformer.seq.io._common import PathLike, _as_paths, _suffix
from genoformer.seq.io.bed import BED_SUFFIXES, read_bed
from genoformer.seq.io.fasta import FASTA_SUFFIXES, read_fasta
from genoformer.seq.io.table import TABLE_SUFFIXES, read_table


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
        Target columns of a table or BED file (``target_columns`` of the readers); an empty
        list reads no targets from any file (what predictions need).
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
        "genome": genome is not None,
        "targets": bool(targets),  # an empty list: no targets, for any file type
        "task": task is not None,
        "labels": labels is not None,
        "label_pattern": label_pattern is not None,
    }
    allowed = {
        "fasta": ("labels", "label_pattern", "task"),
        "table": ("targets", "task"),
        "bed": ("genome", "targets", "task"),
    }[kind]
    for name, is_given in given.items():
        if is_given and name not in allowed:
            kind_name = kind.upper() if kind != "table" else kind
            raise InputError(
                f"{setting(name)} does not apply to a {kind_name} file",
                file=paths[0],
                fix=f"leave {setting(name)} out; for this file type use "
                + ", ".join(setting(n) for n in allowed if option(n)),
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
            fix=f"pass the genome with {option('genome')}",
        )
    return read_bed(paths[0], genome, target_columns=targets, task=task, **options)
