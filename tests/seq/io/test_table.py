"""The TSV / CSV table reader and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from genoformer.engine.errors import InputError
from genoformer.seq.io.table import read_table
from tests.seq.test_data import assert_error, write


def test_read_table_regression_and_metadata(tmp_path):
    path = write(
        tmp_path / "t.tsv",
        "id\tchrom\tsequence\ty1\ty2\nx\tchr1\tACGT\t1.5\t-2\n\ny\tchr2\tacgn\t3\t4e1\n",
    )
    data = read_table(path)
    assert data.task == "regression" and data.target_names == ["y1", "y2"]
    np.testing.assert_array_equal(data.targets, np.array([[1.5, -2], [3, 40]], np.float32))
    assert data.ids == ["x", "y"] and data.chroms == ["chr1", "chr2"]
    assert data.sequences == ["ACGT", "acgn"]
    assert read_table(path, target_columns="y2").target_names == ["y2"]


def test_read_table_classification(tmp_path):
    csv = write(tmp_path / "t.csv", "sequence,cell\nACGT,b\nACGA,a\nACGC,b\n")
    data = read_table(csv)
    assert data.classes == ["a", "b"] and data.targets.tolist() == [1, 0, 1]
    assert data.ids == ["row1", "row2", "row3"]
    numbers = write(tmp_path / "n.txt", "sequence;label\nACGT;10\nACGA;2\nACGC;2\n")
    as_labels = read_table(numbers, task="classification")
    assert as_labels.classes == ["2", "10"] and as_labels.targets.tolist() == [1, 0, 0]
    assert read_table(numbers).task == "regression"


def test_table_empty_file(tmp_path):
    path = write(tmp_path / "t.tsv", "")
    with pytest.raises(InputError) as error:
        read_table(path)
    assert_error(error, path, "empty")
    header_only = write(tmp_path / "h.tsv", "sequence\ty\n")
    with pytest.raises(InputError) as error:
        read_table(header_only)
    assert_error(error, header_only, "no data rows")


def test_table_missing_sequence_column_lists_columns(tmp_path):
    path = write(tmp_path / "t.tsv", "seq\ty\nACGT\t1\n")
    with pytest.raises(InputError) as error:
        read_table(path)
    assert_error(error, path, "line 1", "no column 'sequence'", "'seq', 'y'")


def test_table_missing_target_column_lists_columns(tmp_path):
    path = write(tmp_path / "t.tsv", "sequence\ty\nACGT\t1\n")
    with pytest.raises(InputError) as error:
        read_table(path, target_columns=["z"])
    assert_error(error, path, "no target column 'z'", "'sequence', 'y'")


def test_table_non_numeric_target(tmp_path):
    path = write(tmp_path / "t.tsv", "sequence\ty\nACGT\t1\nACGA\t2\nACGC\t3x\n")
    with pytest.raises(InputError) as error:
        read_table(path)
    assert_error(error, path, "line 4", "'3x'", "column 'y'")
    two = write(tmp_path / "two.tsv", "sequence\ta\tb\nACGT\tx\t1\n")
    with pytest.raises(InputError) as error:
        read_table(two)
    assert_error(error, two, "line 2", "'x'")
    with pytest.raises(InputError) as error:
        read_table(two, task="classification")
    assert_error(error, two, "one label column")


def test_table_missing_value_and_sequence(tmp_path):
    path = write(tmp_path / "t.tsv", "sequence\ty\nACGT\t1\nACGA\t\n")
    with pytest.raises(InputError) as error:
        read_table(path)
    assert_error(error, path, "line 3", "no value")
    path = write(tmp_path / "s.tsv", "sequence\ty\nACGT\t1\n\t2\n")
    with pytest.raises(InputError) as error:
        read_table(path)
    assert_error(error, path, "line 3", "no sequence")


def test_table_bad_character(tmp_path):
    path = write(tmp_path / "t.tsv", "sequence\ty\nACGT\t1\nAC GT\t2\n")
    with pytest.raises(InputError) as error:
        read_table(path)
    assert_error(error, path, "line 3, position 3", "' '")
