"""Train, validation and test splits of a :class:`~genoformer.seq.data.SequenceData`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genoformer.engine.errors import InputError
from genoformer.engine.genome import chromosome_order_key
from genoformer.seq.data import SequenceData
from genoformer.seq.io._common import _listing

__all__ = ["split_by_chromosome", "split_random"]


def split_random(
    data: SequenceData, *, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[SequenceData, SequenceData, SequenceData]:
    """Train, validation and test sets drawn at random, in the given fractions.

    Sizes are rounded (validation and test; train takes the rest). Each set keeps the
    input order. The same seed gives the same split.
    """
    shares = np.asarray(fractions, dtype=np.float64)
    if shares.shape != (3,) or (shares < 0).any() or abs(shares.sum() - 1) > 1e-6:
        raise InputError(
            f"fractions {tuple(fractions)}",
            fix="give three non-negative fractions (train, validation, test) that sum to 1",
        )
    n = len(data)
    n_validation, n_test = round(shares[1] * n), round(shares[2] * n)
    sizes = (n - n_validation - n_test, n_validation, n_test)
    for name, share, size in zip(("train", "validation", "test"), shares, sizes, strict=True):
        if share > 0 and size < 1:
            raise InputError(
                f"{n} sequences are too few for a {name} set of {share:g} of them",
                file=data.source,
                fix="use more sequences or other fractions",
            )
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum(sizes)[:-1]
    train, validation, test = (data.subset(np.sort(p)) for p in np.split(order, bounds))
    return train, validation, test


def split_by_chromosome(
    data: SequenceData,
    *,
    validation: Sequence[str] | str | None = ("chr8",),
    test: Sequence[str] | str | None = ("chr9",),
) -> tuple[SequenceData, SequenceData, SequenceData]:
    """Train, validation and test sets by chromosome; train has every other chromosome.

    Raises
    ------
    InputError
        When the data has no chromosomes, the two lists overlap, or a set would be empty.
    """
    if data.chroms is None:
        raise InputError(
            "the sequences have no chromosomes to split by",
            file=data.source,
            fix="split at random, or give chromosomes: a 'chrom' column, a BED file, or "
            "FASTA ids such as chr1:100-300",
        )
    held = {
        name: [chroms] if isinstance(chroms, str) else list(chroms or [])
        for name, chroms in (("validation", validation), ("test", test))
    }
    both = set(held["validation"]) & set(held["test"])
    if both:
        raise InputError(
            f"{_listing(sorted(both, key=chromosome_order_key))} both in validation and test",
            fix="give the validation and test sets different chromosomes",
        )
    chroms = np.asarray(data.chroms, dtype=object)
    masks = {name: np.isin(chroms, held_out) for name, held_out in held.items()}
    masks = {"train": ~(masks["validation"] | masks["test"]), **masks}
    present = sorted(set(data.chroms), key=chromosome_order_key)
    for name, mask in masks.items():
        if not mask.any():
            chosen = f" on {_listing(held[name])}" if name != "train" else ""
            raise InputError(
                f"no sequences{chosen} for the {name} set",
                file=data.source,
                fix="choose validation and test chromosomes among those present, leaving some "
                f"for training: {_listing(present[:40])}",
            )
    return data.subset(masks["train"]), data.subset(masks["validation"]), data.subset(masks["test"])
