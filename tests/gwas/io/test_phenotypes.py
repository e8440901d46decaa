"""PLINK-style phenotype and covariate tables: parsing, coding, matching, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genoformer.engine.errors import InputError
from genoformer.gwas.io.phenotypes import (
    covariate_matrix,
    match_samples,
    phenotype_vector,
    read_table,
)

SAMPLES = pd.DataFrame({"fid": ["f1", "f2", "f3", "f4"], "iid": ["a", "b", "c", "d"]})


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("first", ["#FID", "FID"])
def test_header_and_missing_values(tmp_path, first):
    path = _write(
        tmp_path,
        "p.txt",
        f"{first} IID height status\nf1 a 1.5 2\nf2 b -9 1\nf3  c\tNA 0\nf4 d 2.25 -9\n",
    )
    table = read_table(path)
    assert list(table.columns) == ["FID", "IID", "height", "status"]
    assert table.index.tolist() == [2, 3, 4, 5]  # line numbers
    np.testing.assert_array_equal(table["height"].to_numpy(), [1.5, np.nan, np.nan, 2.25])
    y, kind = phenotype_vector(table, "status")
    assert kind == "binary"  # 1/2 coding, 0 and -9 missing
    np.testing.assert_array_equal(y, [1.0, 0.0, np.nan, np.nan])
    y, kind = phenotype_vector(table, "height")
    assert kind == "quantitative"
    assert read_table(path, columns=["status"]).columns.tolist() == ["FID", "IID", "status"]


def test_no_header_names_columns_like_plink(tmp_path):
    path = _write(tmp_path, "p.txt", "f1 a 1 0.5\nf2 b 0 0.25\nf3 c 1 NA\n")
    table = read_table(path)
    assert list(table.columns) == ["FID", "IID", "PHENO1", "PHENO2"]
    assert read_table(path, prefix="COVAR").columns[2:].tolist() == ["COVAR1", "COVAR2"]
    y, kind = phenotype_vector(table, "PHENO1")
    assert kind == "binary"  # exactly {0, 1}: 0/1 coding
    np.testing.assert_array_equal(y, [1.0, 0.0, 1.0])


def test_coding_rules():
    def kind_of(values):
        table = read_table(pd.DataFrame({"IID": list("abcdef")[: len(values)], "y": values}))
        return phenotype_vector(table, "y")

    assert kind_of([1, 2, 2, 1])[1] == "binary"
    assert kind_of([1, 2, 0, -9])[1] == "binary"
    assert kind_of([0, 1, 1, 0])[1] == "binary"
    y, kind = kind_of([0, 1, 2, 1])  # {0, 1, 2}: 1/2 coding with 0 missing, as plink2 reads it
    assert kind == "binary" and np.array_equal(y, [np.nan, 0.0, 1.0, 0.0], equal_nan=True)
    assert kind_of([1, 2, 3])[1] == "quantitative"
    assert kind_of([0.5, 1.0])[1] == "quantitative"
    y, kind = phenotype_vector(
        read_table(pd.DataFrame({"IID": ["a", "b"], "y": [1, 2]})), "y", kind="quantitative"
    )
    assert kind == "quantitative" and y.tolist() == [1.0, 2.0]


def test_categorical_covariates(tmp_path):
    path = _write(
        tmp_path,
        "c.txt",
        "FID IID age batch\nf1 a 30 B\nf2 b 40 A\nf3 c NA C\nf4 d 50 NA\n",
    )
    table = read_table(path)
    X, names = covariate_matrix(table)
    assert names == ["age", "batch=B", "batch=C"]  # first level A is the reference
    expected = [[30, 1, 0], [40, 0, 0], [np.nan, 0, 1], [50, np.nan, np.nan]]
    np.testing.assert_array_equal(X, np.array(expected, dtype=float))
    X, names = covariate_matrix(table, ["batch"])
    assert X.shape == (4, 2) and names == ["batch=B", "batch=C"]


def test_match_samples_on_fid_iid(tmp_path):
    path = _write(tmp_path, "p.txt", "FID IID y\nf3 c 3\nx9 z 9\nf1 a 1\nf2 WRONG 2\n")
    table = read_table(path)
    index, aligned, dropped = match_samples(SAMPLES, table)
    assert index.tolist() == [0, 2]  # genotype order
    assert aligned["IID"].tolist() == ["a", "c"] and aligned["y"].tolist() == [1.0, 3.0]
    assert aligned.index.tolist() == [4, 2]  # still the line numbers
    assert dropped == 2 and aligned.attrs["n_unmatched_rows"] == 2


def test_iid_only_and_in_memory_inputs(tmp_path):
    path = _write(tmp_path, "p.txt", "#IID y\nd 4\nb 2\n")
    index, aligned, dropped = match_samples(SAMPLES, read_table(path))
    assert index.tolist() == [1, 3] and aligned["y"].tolist() == [2.0, 4.0] and dropped == 2
    frame = pd.DataFrame({"FID": ["f2", "f1"], "IID": ["b", "a"], "y": [0.5, -9]})
    index, aligned, _ = match_samples(SAMPLES, read_table(frame))
    assert index.tolist() == [0, 1] and np.isnan(aligned["y"].iloc[0])
    array = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, -9.0]])
    table = read_table(array, prefix="COVAR")
    index, aligned, dropped = match_samples(SAMPLES, table)
    assert table.columns.tolist() == ["COVAR1", "COVAR2"] and index.tolist() == [0, 1, 2, 3]
    X, names = covariate_matrix(aligned)
    assert names == ["COVAR1", "COVAR2"] and np.isnan(X[3, 1]) and dropped == 0
    with pytest.raises(InputError, match="3 rows without sample ids"):
        match_samples(SAMPLES, read_table(array[:3]))


# --- errors -----------------------------------------------------------------------------------


def test_wrong_column_count(tmp_path):
    path = _write(tmp_path, "p.txt", "FID IID y\nf1 a 1\nf2 b\n")
    with pytest.raises(InputError) as excinfo:
        read_table(path)
    assert "p.txt line 3: 2 columns, expected 3" in str(excinfo.value)
    path = _write(tmp_path, "q.txt", "f1 a 1 2\nf2 b 1 2 3\n")
    with pytest.raises(InputError, match="q.txt line 2: 5 columns, expected 4"):
        read_table(path)


def test_non_numeric_phenotype(tmp_path):
    path = _write(tmp_path, "p.txt", "FID IID y\nf1 a 1.5\nf2 b tall\n")
    table = read_table(path)
    with pytest.raises(InputError) as excinfo:
        phenotype_vector(table, "y")
    assert "p.txt line 3" in str(excinfo.value) and "'tall'" in str(excinfo.value)
    with pytest.raises(InputError, match="no phenotype column 'z'"):
        phenotype_vector(table, "z")


def test_duplicate_ids(tmp_path):
    path = _write(tmp_path, "p.txt", "FID IID y\nf1 a 1\nf2 b 2\nf1 a 3\n")
    with pytest.raises(InputError) as excinfo:
        read_table(path)
    assert "duplicate sample id FID=f1 IID=a (lines 2 and 4)" in str(excinfo.value)
    assert "p.txt line 4" in str(excinfo.value)


def test_no_sample_left(tmp_path):
    path = _write(tmp_path, "p.txt", "FID IID y\nx a 1\ny b 2\n")
    with pytest.raises(InputError) as excinfo:
        match_samples(SAMPLES, read_table(path))
    assert "no sample left after matching" in str(excinfo.value)
    assert "p.txt" in str(excinfo.value)


def test_missing_column_and_file(tmp_path):
    path = _write(tmp_path, "p.txt", "FID IID y\nf1 a 1\n")
    with pytest.raises(InputError, match="no column w"):
        read_table(path, columns=["w"])
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "absent.txt")


def test_errors_after_matching_name_the_file_line(tmp_path):
    """Values are checked on the rows matched to the genotype samples, and an error still
    names the file's own line (the rows are in another order than the samples)."""
    from genoformer.gwas.io.phenotypes import sample_covariates, sample_phenotype

    path = _write(tmp_path, "p.txt", "FID IID y\nf4 d 1.0\nf3 c 2.5\nf2 b tall\nf1 a 0.5\n")
    with pytest.raises(InputError, match="'y' is not numeric: 'tall'") as error:
        sample_phenotype(SAMPLES, path, "y")
    assert (error.value.file, error.value.where) == (str(path), "line 4")
    path.write_text("FID IID y\nf4 d 1.0\nf3 c 2.5\nf2 b 1.5\nf1 a 0.5\n")
    y, kind, column, dropped = sample_phenotype(SAMPLES, path, None)
    assert y.tolist() == [0.5, 1.5, 2.5, 1.0] and (kind, column, dropped) == (
        "quantitative",
        "y",
        0,
    )
    path.write_text("FID IID y\nf1 a NA\nf2 b -9\nf9 z 1.0\n")
    with pytest.raises(InputError, match="'y' is all missing.*2 rows matched") as error:
        sample_phenotype(SAMPLES, path, "y")
    assert error.value.where == "column y"
    covar = _write(tmp_path, "c.txt", "FID IID age\nf1 a 30\nf2 b 41\nf3 c 4O\nf4 d 50\n")
    with pytest.raises(InputError, match="'age' is numeric, but has the text value '4O'") as error:
        sample_covariates(SAMPLES, covar, None)
    assert (error.value.file, error.value.where) == (str(covar), "line 4")


def test_one_class_case_control_is_refused():
    def table(values):
        return read_table(pd.DataFrame({"IID": list("abcd")[: len(values)], "y": values}))

    with pytest.raises(InputError, match="has 3 cases and no controls") as error:
        phenotype_vector(table([2, 2, 0, 2]), "y")  # 1/2 coding as plink2 reads it: 0 missing
    assert error.value.where == "column y" and "code controls as 1" in error.value.fix
    with pytest.raises(InputError, match="has 2 controls and no cases"):
        phenotype_vector(table([1, 1]), "y")
