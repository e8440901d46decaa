"""What the readers share: paths, gzip-aware text files, and targets from table cells."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError

PathLike = str | os.PathLike
#: Table cells that mean "no value".
MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "None"})


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
