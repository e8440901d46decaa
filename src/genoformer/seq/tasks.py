"""Tasks that ship with the package: the 8-mer teaching task and planted JASPAR motifs.

Both are generated from a seed, so they need no download and are the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError
from genoformer.seq.data import SequenceData
from genoformer.seq.motifs import DEFAULT_RELEASE, Motif, jaspar_motif

__all__ = [
    "BACKGROUND",
    "PLANTED_MOTIFS",
    "TEACHING_VALUES",
    "PlantedMotifs",
    "motif_planting_task",
    "plant_motifs",
    "teaching_score",
    "teaching_task",
]

_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_LOOKUP = np.full(256, -1, dtype=np.int64)
_LOOKUP[_BASES] = np.arange(4)
_LOOKUP[np.frombuffer(b"acgt", dtype=np.uint8)] = np.arange(4)

#: Per-base values of the teaching task, in A, C, G, T order.
TEACHING_VALUES = np.array([20.0, 17.0, 14.0, 11.0])
TEACHING_LENGTH = 8
_TAT = np.array([3, 0, 3])
_GCG = np.array([2, 1, 2])

#: Default planted motifs: JASPAR base ids (each resolves to its latest version in the
#: release) of factors from five structural families: CTCF (C2H2 zinc finger), GATA2
#: (GATA), SPI1/PU.1 (Ets), POU5F1/Oct4 (POU homeodomain), MAFK (Maf bZIP). GATA2 rather
#: than GATA1: GATA1's current matrix (MA0035.5, CTAATCT) is not the canonical AGATAA.
PLANTED_MOTIFS = ("MA0139", "MA0036", "MA0080", "MA1115", "MA0496")
#: Class name of sequences without a planted motif.
BACKGROUND = "background"


def _contains(idx: np.ndarray, word: np.ndarray) -> np.ndarray:
    """Whether each row of base indices contains ``word`` (vectorised over rows)."""
    k = len(word)
    windows = np.lib.stride_tricks.sliding_window_view(idx, k, axis=1)
    return (windows == word).all(axis=2).any(axis=1)


def _teaching_values(idx: np.ndarray) -> np.ndarray:
    score = TEACHING_VALUES[idx].mean(axis=1)
    return score + 10.0 * _contains(idx, _TAT) - 10.0 * _contains(idx, _GCG)


def _to_strings(idx: np.ndarray) -> list[str]:
    raw = np.ascontiguousarray(_BASES[idx])
    return [s.decode("ascii") for s in raw.view(f"S{idx.shape[1]}").ravel()]


def teaching_score(sequences: Sequence[str]) -> np.ndarray:
    """The teaching task's score of each 8-mer (see :func:`teaching_task`), float64 ``(N,)``."""
    seqs = list(sequences)
    if any(len(s) != TEACHING_LENGTH for s in seqs):
        bad = next(i for i, s in enumerate(seqs) if len(s) != TEACHING_LENGTH)
        raise InputError(
            f"sequence {bad} has length {len(seqs[bad])}; the teaching task scores 8-mers"
        )
    if not seqs:
        return np.zeros(0)
    codes = np.frombuffer("".join(seqs).encode("ascii", "replace"), dtype=np.uint8)
    idx = _LOOKUP[codes].reshape(len(seqs), TEACHING_LENGTH)
    if (idx < 0).any():
        row = int(np.flatnonzero((idx < 0).any(axis=1))[0])
        raise InputError(f"sequence {row} ({seqs[row]!r}) has a base other than A, C, G, T")
    return _teaching_values(idx)


def teaching_task(n: int = 50_000, *, seed: int = 0) -> SequenceData:
    """Random 8-mers with a score that a linear model cannot learn fully.

    Each base is drawn uniformly. The score (target ``"score"``) is the mean of per-base
    values A=20, C=17, G=14, T=11, plus 10 if the 8-mer contains ``TAT``, minus 10 if it
    contains ``GCG`` (both can apply). The per-base part is additive; the two motif terms
    are not, so a linear model falls short of a small CNN (test R2 about 0.95).

    Parameters
    ----------
    n
        Number of sequences.
    seed
        Seed of the random generator; the same seed gives the same sequences.

    Returns
    -------
    SequenceData
        Regression data: ``targets`` float32 ``(n, 1)``, ids ``"seq0"``, ``"seq1"``, ...

    Examples
    --------
    ``AAAAAAAA`` scores 20; ``TATGCGAA`` scores (11+20+11+14+17+14+20+20)/8 + 10 - 10 = 15.875.
    """
    if n < 1:
        raise InputError(f"n={n}: the teaching task needs at least one sequence")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 4, size=(n, TEACHING_LENGTH))
    return SequenceData(
        sequences=_to_strings(idx),
        targets=_teaching_values(idx).astype(np.float32)[:, None],
        target_names=["score"],
        classes=None,
        ids=[f"seq{i}" for i in range(n)],
        source="teaching task",
    )


@dataclass
class PlantedMotifs:
    """The motif-planting task with the planted sites.

    Attributes
    ----------
    data
        The sequences and their classes.
    sites
        One row per sequence: ``id``, ``class``, ``matrix_id``, ``motif`` (empty for
        background), ``start`` (0-based position of the motif's first base on the forward
        strand, -1 for background), ``strand`` (``"+"``, ``"-"``, or ``""``) and
        ``instance`` (the planted bases as they read on the forward strand).
    motifs
        The planted motifs, in class order.
    """

    data: SequenceData
    sites: pd.DataFrame
    motifs: list[Motif]


def _resolve(motifs: Sequence[str | Motif], release: str) -> list[Motif]:
    resolved = [m if isinstance(m, Motif) else jaspar_motif(m, release=release) for m in motifs]
    if not resolved:
        raise InputError("no motifs to plant", fix="give at least one JASPAR id or name")
    return resolved


def _class_names(motifs: list[Motif]) -> list[str]:
    names = [m.name for m in motifs]
    # Two matrices of one factor would share a class name; the matrix id tells them apart.
    return [f"{m.name} ({m.matrix_id})" if names.count(m.name) > 1 else m.name for m in motifs] + [
        BACKGROUND
    ]


def _plant(
    rng: np.random.Generator, seqs: np.ndarray, labels: np.ndarray, chosen: list[Motif]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write one instance of motif ``c`` into each row of ``seqs`` (n, length) of class
    ``c``; returns each row's start (-1: none), whether it is on the minus strand, and the
    instance as it reads on the forward strand."""
    n, length = seqs.shape
    starts = np.full(n, -1, dtype=np.int64)
    minus = np.zeros(n, dtype=bool)
    instances = np.full(n, "", dtype=object)
    # One vectorised draw per motif: instance bases by inverse CDF of each PPM column.
    for c, motif in enumerate(chosen):
        rows = np.flatnonzero(labels == c)
        if rows.size == 0:
            continue
        w = motif.width
        cdf = np.cumsum(motif.ppm, axis=0)
        u = rng.random((rows.size, w))
        inst = np.minimum((u[:, None, :] > cdf[None]).sum(axis=1), 3)
        flip = rng.random(rows.size) < 0.5
        inst[flip] = 3 - inst[flip, ::-1]
        pos = rng.integers(0, length - w + 1, size=rows.size)
        seqs[rows[:, None], pos[:, None] + np.arange(w)] = inst
        starts[rows], minus[rows] = pos, flip
        instances[rows] = _to_strings(inst)
    return starts, minus, instances


def plant_motifs(
    n: int = 10_000,
    *,
    length: int = 200,
    motifs: Sequence[str | Motif] = PLANTED_MOTIFS,
    background_fraction: float | None = None,
    gc: float = 0.5,
    seed: int = 0,
    release: str = DEFAULT_RELEASE,
) -> PlantedMotifs:
    """Random sequences with one sampled JASPAR motif instance each, and where it is.

    Each sequence is ``length`` random bases (C and G each with probability ``gc / 2``,
    A and T each ``(1 - gc) / 2``). Its class is drawn at random: one of the ``motifs``
    with equal probability, or ``"background"`` with probability ``background_fraction``
    (default: every class equally likely). A sequence of a motif class gets one instance
    of it, each base drawn from the motif's position frequency matrix, on a random strand
    (the reverse complement with probability 1/2), at a uniformly random position where it
    fits; background sequences get none. Random background can contain chance matches, as
    genomic background does.

    Parameters
    ----------
    n
        Number of sequences.
    length
        Sequence length; at least the widest motif.
    motifs
        JASPAR matrix ids or factor names (resolved in ``release`` by
        :func:`~genoformer.seq.motifs.jaspar_motif`) or :class:`Motif` objects. The
        default plants CTCF (MA0139), GATA2 (MA0036), SPI1/PU.1 (MA0080), POU5F1/Oct4
        (MA1115) and MAFK (MA0496).
    background_fraction
        Share of sequences without a motif; default ``1 / (len(motifs) + 1)``.
    gc
        GC content of the background.
    seed
        Seed of the random generator.
    release
        JASPAR release that ids and names are looked up in.

    Returns
    -------
    PlantedMotifs
        The sequences (classification data: ``classes`` are the motif names then
        ``"background"``, ``targets`` int64 class indices), the planted sites and motifs.
    """
    if n < 1:
        raise InputError(f"n={n}: the task needs at least one sequence")
    if not 0.0 <= gc <= 1.0:
        raise InputError(f"gc={gc} must be a fraction between 0 and 1")
    chosen = _resolve(motifs, release)
    widest = max(m.width for m in chosen)
    if length < widest:
        raise InputError(
            f"length={length} is shorter than the widest motif ({widest} bases)",
            fix=f"use length >= {widest}",
        )
    k = len(chosen)
    bg = 1.0 / (k + 1) if background_fraction is None else float(background_fraction)
    if not 0.0 <= bg <= 1.0:
        raise InputError(f"background_fraction={background_fraction} must be between 0 and 1")
    class_p = np.append(np.full(k, (1.0 - bg) / k), bg)

    rng = np.random.default_rng(seed)
    labels = rng.choice(k + 1, size=n, p=class_p)
    base_p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
    seqs = rng.choice(4, size=(n, length), p=base_p)
    starts, minus, instances = _plant(rng, seqs, labels, chosen)

    classes = _class_names(chosen)
    ids = [f"seq{i}" for i in range(n)]
    planted = labels < k
    sites = pd.DataFrame(
        {
            "id": ids,
            "class": [classes[c] for c in labels],
            "matrix_id": [chosen[c].matrix_id if c < k else "" for c in labels],
            "motif": [chosen[c].name if c < k else "" for c in labels],
            "start": starts,
            "strand": np.where(planted, np.where(minus, "-", "+"), ""),
            "instance": instances,
        }
    )
    data = SequenceData(
        sequences=_to_strings(seqs),
        targets=labels.astype(np.int64),
        target_names=["motif"],
        classes=classes,
        ids=ids,
        source=f"motif planting task ({release})",
    )
    return PlantedMotifs(data=data, sites=sites, motifs=chosen)


def motif_planting_task(n: int = 10_000, **options: Any) -> SequenceData:
    """Classify which JASPAR motif was planted in a random sequence.

    The sequences of :func:`plant_motifs`, which takes the same parameters and also
    returns where each motif was planted.

    Returns
    -------
    SequenceData
        Classification data: ``classes`` are the motif names then ``"background"``,
        ``targets`` int64 class indices.
    """
    return plant_motifs(n, **options).data
