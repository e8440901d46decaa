"""Sequence data sets: DNA sequences with their targets, and length harmonisation.

A :class:`SequenceData` holds one of three kinds of targets (its ``task``):

- ``"regression"``: ``targets`` float32 ``(N, T)``, one column per name in ``target_names``;
- ``"classification"``: ``targets`` int64 ``(N,)``, indices into ``classes``;
- ``"none"``: sequences only (for prediction): ``targets`` float32 ``(N, 0)``,
  ``target_names`` empty, ``classes`` None.

The readers of FASTA, tables and BED + genome are in :mod:`genoformer.seq.io`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from numpy.typing import DTypeLike

from genoformer.engine.errors import InputError, cli_option, command_line, option, setting
from genoformer.seq.encoding import UnknownMode, check_lengths, one_hot

Task = Literal["regression", "classification", "none"]
LengthMode = Literal["keep", "error", "pad", "crop", "fit"]


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


# ---------------------------------------------------------------------------- lengths


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
        raise InputError(
            f"unknown length mode {mode!r}",
            where=cli_option("length_mode"),
            fix="use 'error', 'pad', 'crop' or 'fit'",
        )
    if length is not None and length < 1:
        raise InputError(
            f"length {length} is below 1",
            where=cli_option("length"),
            fix="give a length of 1 or more",
        )
    if not len(data):
        return data
    if mode == "error":
        check_lengths(data.sequences, length=length, names=data.ids, file=data.source)
        return data
    lengths = np.fromiter(map(len, data.sequences), dtype=np.int64, count=len(data))
    if mode == "fit" and length is None:
        raise InputError("mode 'fit' needs a length", fix=f"give {option('length')} (bp)")
    target = (
        length if length is not None else int(lengths.max() if mode == "pad" else lengths.min())
    )
    wrong = lengths > target if mode == "pad" else lengths < target if mode == "crop" else None
    if wrong is not None and wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        other = "crop" if mode == "pad" else "pad"
        modes = (
            f"{setting('length_mode')} {other} or fit"
            if command_line()
            else f"mode '{other}' or 'fit'"
        )
        raise InputError(
            f"length {lengths[i]} cannot be {mode}{mode[-1]}ed to {target}",
            file=data.source,
            where=f"record {data.ids[i]!r}",
            fix=f"use {modes}, or a {setting('length')} that every sequence can reach",
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
