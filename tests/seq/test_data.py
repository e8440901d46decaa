"""Sequence data: the SequenceData container, its one-hot dataset, and lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genoformer.engine.errors import InputError
from genoformer.seq.data import OneHotDataset, SequenceData, harmonize_lengths


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def assert_error(error: pytest.ExceptionInfo, file: Path | str | None, *places: str) -> str:
    """The message names the file and each place, and the error carries a fix."""
    message = str(error.value)
    if file is not None:
        assert str(file) in message
    for place in places:
        assert place in message, message
    assert error.value.fix, message
    return message


# ---------------------------------------------------------------- SequenceData


def test_sequence_data_tasks_and_shapes():
    regression = SequenceData(["ACG", "TTT"], np.array([1.0, 2.0]))
    assert regression.task == "regression" and regression.n_outputs == 1
    assert regression.targets.shape == (2, 1) and regression.targets.dtype == np.float32
    assert regression.target_names == ["target"] and regression.ids == ["seq0", "seq1"]
    assert regression.length == 3 and len(regression) == 2
    labels = SequenceData(["ACG", "TT"], np.array([1, 0]), classes=["a", "b"])
    assert labels.task == "classification" and labels.n_outputs == 2
    assert labels.targets.dtype == np.int64 and labels.length is None
    bare = SequenceData(["ACG"])
    assert bare.task == "none" and bare.n_outputs == 0 and bare.targets.shape == (1, 0)
    with pytest.raises(ValueError, match="ids"):
        SequenceData(["A", "C"], ids=["x"])
    with pytest.raises(ValueError, match="class indices"):
        SequenceData(["A"], np.array([2]), classes=["a", "b"])
    with pytest.raises(ValueError, match="target names"):
        SequenceData(["A"], np.zeros((1, 2)), target_names=["y"])


def test_subset_keeps_everything_aligned():
    data = SequenceData(
        ["AA", "CC", "GG"], np.array([0, 1, 0]), classes=["x", "y"], chroms=["c1", "c2", "c3"]
    )
    part = data.subset([2, 0])
    assert part.sequences == ["GG", "AA"] and part.ids == ["seq2", "seq0"]
    assert part.targets.tolist() == [0, 0] and part.chroms == ["c3", "c1"]
    assert data.subset(np.array([False, True, False])).sequences == ["CC"]
    assert len(data.subset([])) == 0


def test_one_hot_and_dataset():
    data = SequenceData(["ACGT", "NNAA"], np.array([[1.0, 2.0], [3.0, 4.0]]), source="t.tsv")
    assert data.one_hot().shape == (2, 4, 4)
    dataset = OneHotDataset(data)
    item = dataset[1]
    assert item["x"].dtype == torch.float32 and item["x"].shape == (4, 4)
    assert item["x"][:, :2].sum() == 0 and item["labels"].tolist() == [3.0, 4.0]
    assert "labels" not in OneHotDataset(SequenceData(["ACGT"]))[0]
    with pytest.raises(InputError) as error:
        SequenceData(["ACGT", "ACG"], ids=["a", "b"], source="t.tsv").one_hot()
    assert_error(error, "t.tsv", "record 'b'")


# ---------------------------------------------------------------- lengths


def test_harmonize_lengths_modes():
    data = SequenceData(["ACGTAC", "ACG", "ACGTA"], ids=["a", "b", "c"], source="s.fa")
    assert harmonize_lengths(data, mode="pad").sequences == ["ACGTAC", "NACGNN", "ACGTAN"]
    assert harmonize_lengths(data, mode="crop").sequences == ["CGT", "ACG", "CGT"]
    assert harmonize_lengths(data, mode="fit", length=4).sequences == ["CGTA", "ACGN", "ACGT"]
    with pytest.raises(InputError) as error:
        harmonize_lengths(data)
    assert_error(error, "s.fa", "record 'b'", "length 3", "length 6")
    with pytest.raises(InputError) as error:
        harmonize_lengths(data, mode="pad", length=5)
    assert_error(error, "s.fa", "record 'a'", "length 6")
    with pytest.raises(InputError, match="needs a length"):
        harmonize_lengths(data, mode="fit")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text("ACGT", min_size=1, max_size=12), min_size=1, max_size=8), st.integers(1, 12)
)
def test_fit_keeps_the_centre(sequences, length):
    fitted = harmonize_lengths(SequenceData(sequences), mode="fit", length=length).sequences
    for before, after in zip(sequences, fitted, strict=True):
        assert len(after) == length
        if len(before) >= length:  # cropped to the centre; an odd extra base goes right
            start = (len(before) - length) // 2
            assert after == before[start : start + length]
        else:  # padded with Ns on both sides; an odd extra N goes right
            left = len(after) - len(after.lstrip("N"))
            assert after[left : left + len(before)] == before
            assert left == (length - len(before)) // 2
