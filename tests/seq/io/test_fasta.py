"""The FASTA reader and its errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from genoformer.engine.errors import InputError
from genoformer.seq.io.fasta import read_fasta
from tests.conftest import shared_data
from tests.seq.test_data import assert_error, write


@pytest.mark.realdata
def test_read_real_fasta_one_class_per_file():
    files = [shared_data("seq/oct4_mafk/sample.fa"), shared_data("seq/oct4_mafk/sample2.fa")]
    counts = [f.read_text().count(">") for f in files]
    assert counts == [3897, 3900]
    data = read_fasta(files, labels=["oct4", "mafk"])
    assert len(data) == 3897 + 3900 and data.length == 200
    assert data.classes == ["oct4", "mafk"] and data.task == "classification"
    assert np.bincount(data.targets).tolist() == counts
    assert data.ids[0] == "chr1:15710957-15711157" and data.chroms[0] == "chr1"
    assert data.one_hot().shape == (7797, 4, 200)


def test_read_fasta_multiline_gzip_and_default_labels(tmp_path):
    a = write(tmp_path / "pos.fa", ">r1 some words\nACGT\nacgt\n\n>r2\nNNNNACGT\n")
    with gzip.open(tmp_path / "neg.fa.gz", "wt") as handle:
        handle.write(">r3\nTTTTGGGG\n")
    data = read_fasta([a, tmp_path / "neg.fa.gz"])
    assert data.sequences == ["ACGTacgt", "NNNNACGT", "TTTTGGGG"]
    assert data.ids == ["r1", "r2", "r3"] and data.chroms is None
    assert data.classes == ["pos", "neg"] and data.targets.tolist() == [0, 0, 1]
    single = read_fasta(a)
    assert single.task == "none" and single.targets.shape == (2, 0)


def test_read_fasta_label_pattern(tmp_path):
    path = write(tmp_path / "x.fa", ">a label=up\nACGT\n>b label=down\nACGA\n>c label=up\nTTTT\n")
    data = read_fasta(path, label_pattern=r"label=(\w+)")
    assert data.classes == ["down", "up"] and data.targets.tolist() == [1, 0, 1]


def test_read_fasta_lengths_option(tmp_path):
    path = write(tmp_path / "x.fa", ">a\nACGT\n>b\nAC\n")
    assert read_fasta(path, lengths="pad").sequences == ["ACGT", "NACN"]
    with pytest.raises(InputError) as error:
        read_fasta(path, lengths="error")
    assert_error(error, path, "record 'b'", "length 2")


def test_fasta_empty_file(tmp_path):
    path = write(tmp_path / "empty.fa", "")
    with pytest.raises(InputError) as error:
        read_fasta(path)
    assert_error(error, path, "no FASTA records")


def test_fasta_sequence_before_header(tmp_path):
    path = write(tmp_path / "x.fa", "ACGT\n>a\nACGT\n")
    with pytest.raises(InputError) as error:
        read_fasta(path)
    assert_error(error, path, "line 1")


def test_fasta_record_without_sequence(tmp_path):
    path = write(tmp_path / "x.fa", ">a\nACGT\n>b\n>c\nACGT\n")
    with pytest.raises(InputError) as error:
        read_fasta(path)
    assert_error(error, path, "record 'b' (line 3)", "no sequence")


def test_fasta_bad_character(tmp_path):
    path = write(tmp_path / "x.fa", ">a\nACGT\n>b desc\nACGT\nACXT\n")
    with pytest.raises(InputError) as error:
        read_fasta(path)
    assert_error(error, path, "record 'b' (line 3), position 7", "'X'")


def test_fasta_label_errors(tmp_path):
    a = write(tmp_path / "a.fa", ">r1\nACGT\n")
    b = write(tmp_path / "b.fa", ">r2 label=x\nACGT\n>r3\nACGT\n")
    with pytest.raises(InputError) as error:
        read_fasta([a, b], labels=["only one"])
    assert_error(error, None, "1 label for 2 FASTA files")
    with pytest.raises(InputError) as error:
        read_fasta(b, label_pattern=r"label=(\w+)")
    assert_error(error, b, "record 'r3' (line 3)", "finds no label")
    with pytest.raises(InputError, match="no group"):
        read_fasta(b, label_pattern="label")
    (tmp_path / "other").mkdir()
    twin = write(tmp_path / "other" / "a.fa", ">r9\nACGT\n")
    with pytest.raises(InputError) as error:
        read_fasta([a, twin])
    assert_error(error, twin, "'a'")


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as error:
        read_fasta(tmp_path / "nope.fa")
    assert_error(error, tmp_path / "nope.fa", "no such file")
