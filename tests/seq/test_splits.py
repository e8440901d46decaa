"""Random and by-chromosome splits."""

from __future__ import annotations

import numpy as np
import pytest

from genoformer.engine.errors import InputError
from genoformer.seq.data import SequenceData
from genoformer.seq.splits import split_by_chromosome, split_random
from tests.seq.test_data import assert_error


def test_split_random_is_seeded_and_complete():
    data = SequenceData([f"A{'C' * (i % 5)}" for i in range(100)], np.arange(100.0))
    train, validation, test = split_random(data, seed=3)
    assert (len(train), len(validation), len(test)) == (80, 10, 10)
    ids = train.ids + validation.ids + test.ids
    assert sorted(ids) == sorted(data.ids)
    assert split_random(data, seed=3)[2].ids == test.ids
    assert split_random(data, seed=4)[2].ids != test.ids
    with pytest.raises(InputError, match="sum to 1"):
        split_random(data, fractions=(0.5, 0.1, 0.1))
    with pytest.raises(InputError, match="too few"):
        split_random(data.subset([0, 1]), fractions=(0.8, 0.1, 0.1))


def test_split_by_chromosome():
    chroms = ["chr1", "chr8", "chr9", "chr2", "chr8"]
    data = SequenceData(["AC"] * 5, np.arange(5.0), chroms=chroms, source="x.bed")
    train, validation, test = split_by_chromosome(data)
    assert train.chroms == ["chr1", "chr2"] and validation.chroms == ["chr8", "chr8"]
    assert test.chroms == ["chr9"]
    with pytest.raises(InputError) as error:
        split_by_chromosome(data, test=["chrX"])
    assert_error(error, "x.bed", "no sequences on 'chrX' for the test set")
    assert "'chr1', 'chr2', 'chr8', 'chr9'" in error.value.fix
    with pytest.raises(InputError, match="both in validation and test"):
        split_by_chromosome(data, validation=["chr8"], test="chr8")
    with pytest.raises(InputError) as error:
        split_by_chromosome(SequenceData(["AC"], source="x.fa"))
    assert_error(error, "x.fa", "no chromosomes")
