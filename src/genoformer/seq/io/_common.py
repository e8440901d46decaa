"""What the readers share: paths, gzip-aware text files, targets from table cells, and the
length options."""

from __future__ import annotations

import functools
import gzip
import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError, cli_option, command_line, option, warn_input
from genoformer.seq.data import LengthMode, SequenceData, _apply_lengths

PathLike = str | os.PathLike
#: Table cells that mean "no value".
MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "None"})


#: The keywords :func:`reads_lengths` gives every reader, after the reader's own.
_LENGTH_PARAMETERS = (
    inspect.Parameter(
        "lengths", inspect.Parameter.KEYWORD_ONLY, default="keep", annotation="LengthMode"
    ),
    inspect.Parameter(
        "length", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="int | None"
    ),
)


def reads_lengths(reader: Callable[..., SequenceData]) -> Callable[..., SequenceData]:
    """Give ``reader`` the keywords ``lengths`` and ``length``, applied to the sequences it
    reads (:func:`~genoformer.seq.data.harmonize_lengths`), and their description in the
    place of a ``{lengths}`` line of its docstring; they are declared once, here, for every
    reader."""

    @functools.wraps(reader)
    def with_lengths(
        *args: Any, lengths: LengthMode = "keep", length: int | None = None, **options: Any
    ) -> SequenceData:
        return _apply_lengths(reader(*args, **options), lengths, length)

    signature = inspect.signature(reader)
    parameters = [*signature.parameters.values(), *_LENGTH_PARAMETERS]
    with_lengths.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return shared_docs(with_lengths)


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


def _warn_repeated_ids(
    ids: Sequence[str], file: Callable[[int], PathLike], place: Callable[[int], str]
) -> None:
    """Warn at the first id that repeats an earlier one (``file(i)`` and ``place(i)`` say
    where record ``i`` is): ids name the sequences in the splits and predictions tables."""
    first: dict[str, int] = {}
    for i, name in enumerate(ids):
        if name in first:
            j = first[name]
            earlier = place(j) if file(j) == file(i) else f"{file(j)} {place(j)}"
            repeated = len(ids) - len(set(ids))
            warn_input(
                f"id {name!r} is also the id of {earlier} ({repeated} repeated ids); both "
                "records are kept, but tables of splits and predictions cannot tell them apart",
                file=file(i),
                where=place(i),
                fix="give each record its own id",
            )
            return
        first[name] = i


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
        raise InputError(
            f"unknown task {task!r}",
            where=cli_option("task"),
            fix="use 'regression' or 'classification'",
        )
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
    text = [name for name in names if np.isnan(numbers[name]).all()]
    # Labels: asked for, or every column is text (a mix: a text value among numbers).
    if task == "classification" or (task is None and len(text) == len(names)):
        if len(names) != 1:
            held = f"; {_listing(text)} hold{'s' if len(text) == 1 else ''} text" if text else ""
            raise InputError(
                f"classification takes one label column, got {len(names)}: {_listing(names)}"
                + held,
                file=path,
                where="line 1 (header)",
                fix=_choose_columns(text[:1] or names[:1], "as the label column")
                + (", or only numeric columns for regression" if task is None else ""),
            )
        return _classes(cells[names[0]], numbers[names[0]], names[0], path, lines)
    for name, values in numbers.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            classify = option("task", "classification")
            if len(names) > 1:
                hint = ", or " + _choose_columns(
                    [n for n in names if n != name], "as the targets", any_of=True
                )
            else:
                hint = f", or pass {classify} if the column holds class labels" if classify else ""
            raise InputError(
                f"target {cells[name][i]!r} in column {name!r} is not a finite number",
                file=path,
                where=f"line {lines[i]}",
                fix="correct the value" + hint,
            )
    targets = np.stack([numbers[n] for n in names], axis=1).astype(np.float32)
    return targets, names, None


def _choose_columns(columns: Sequence[str], role: str, *, any_of: bool = False) -> str:
    """The fix that chooses target ``columns``, as the caller gives them (a command without
    a choice of columns: leave the others out of the file)."""
    chosen = ", ".join(columns)
    if not command_line():
        return f"choose {chosen!r} {role} with target_columns={list(columns)!r} (targets= of load_sequences and the seq verbs)"
    flag = option("targets", ",".join(columns))
    if flag is None:
        return f"leave only {chosen} {role} in the file"
    return f"choose {'some of ' if any_of and len(columns) > 1 else ''}{chosen} {role} with {flag}"


def _classes(
    values: list[str], numbers: np.ndarray, name: str, path: Path, lines: Sequence[int]
) -> tuple[np.ndarray, list[str], list[str]]:
    if np.isfinite(numbers).all():  # integer labels: sort the classes as numbers
        fractional = np.flatnonzero(numbers != np.round(numbers))
        regress = option("task", "regression")
        if fractional.size:
            i = int(fractional[0])
            raise InputError(
                f"class label {values[i]!r} in column {name!r} is not an integer",
                file=path,
                where=f"line {lines[i]}",
                fix="give integer labels"
                + (f", or use {regress} for measured values" if regress else ""),
            )
        labels = [str(int(v)) for v in numbers]
        classes = [str(v) for v in sorted({int(v) for v in numbers})]
    else:
        labels = values
        classes = sorted(set(values))
    index_of = {c: i for i, c in enumerate(classes)}
    targets = np.array([index_of[label] for label in labels], dtype=np.int64)
    return targets, [name], classes
