"""Sequence data: readers, their errors, lengths and splits."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genoformer.engine.errors import InputError
from genoformer.seq.data import (
    OneHotDataset,
    SequenceData,
    harmonize_lengths,
    load_sequences,
    read_bed,
    read_fasta,
    read_table,
)
from genoformer.seq.encoding import reverse_complement
from tests.conftest import shared_data


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


@pytest.fixture
def genome(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    rng = np.random.default_rng(0)
    chroms = {name: "".join(rng.choice(list("ACGT"), 120)) for name in ("chr1", "chr2")}
    chroms["chr2"] = chroms["chr2"][:60] + chroms["chr2"][60:].lower()
    text = "".join(
        f">{name}\n{seq[:50]}\n{seq[50:100]}\n{seq[100:]}\n" for name, seq in chroms.items()
    )
    return write(tmp_path / "genome.fa", text), chroms


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


# ---------------------------------------------------------------- FASTA


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
    assert_error(error, None, "1 labels for 2 FASTA files")
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


# ---------------------------------------------------------------- tables


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


# ---------------------------------------------------------------- BED


def test_read_bed_cuts_intervals(tmp_path, genome):
    genome_path, chroms = genome
    bed = write(
        tmp_path / "x.bed",
        "track name=x\n#chrom\tstart\tend\tpeak\tsignal\tstrand\n"
        "chr1\t0\t10\tp1\t1.5\t+\nchr1\t45\t55\tp2\t2\t.\nchr2\t55\t65\tp3\t-3\t-\n",
    )
    data = read_bed(bed, genome_path, target_columns=["signal"], name_column="peak")
    assert data.sequences[0] == chroms["chr1"][0:10]
    assert data.sequences[1] == chroms["chr1"][45:55]  # across a line break
    assert data.sequences[2] == reverse_complement(chroms["chr2"][55:65])  # minus strand
    assert data.ids == ["p1", "p2", "p3"] and data.chroms == ["chr1", "chr1", "chr2"]
    assert data.targets[:, 0].tolist() == [1.5, 2.0, -3.0] and data.target_names == ["signal"]
    by_number = read_bed(bed, genome_path, target_columns=[5])
    assert by_number.target_names == ["signal"] and by_number.ids[0] == "chr1:0-10"
    plain = load_sequences(bed, genome=genome_path)
    assert plain.task == "none" and len(plain) == 3


def test_bed_unknown_chromosome(tmp_path, genome):
    bed = write(tmp_path / "x.bed", "chr1\t0\t10\n1\t0\t10\n")
    with pytest.raises(InputError) as error:
        read_bed(bed, genome[0])
    assert_error(error, bed, "line 2", "chromosome '1' is not in the genome")


def test_bed_interval_outside_chromosome(tmp_path, genome):
    bed = write(tmp_path / "x.bed", "chr1\t100\t121\n")
    with pytest.raises(InputError) as error:
        read_bed(bed, genome[0])
    assert_error(error, bed, "line 1", "chr1:100-121 ends past the end of chr1")
    for text, what in (("chr1\t10\t10\n", "need 0 <= start < end"), ("chr1\t1.5\t9\n", "whole")):
        bed = write(tmp_path / "y.bed", text)
        with pytest.raises(InputError) as error:
            read_bed(bed, genome[0])
        assert_error(error, bed, "line 1", what)


def test_bed_bad_character_in_genome(tmp_path):
    genome_path = write(tmp_path / "g.fa", ">chr1\nACGTACGTAC\nACXTACGTAC\n")
    bed = write(tmp_path / "x.bed", "chr1\t0\t5\nchr1\t8\t15\n")
    with pytest.raises(InputError) as error:
        read_bed(bed, genome_path)
    assert_error(error, genome_path, f"chr1:8-15 (line 2 of {bed}), position 5", "'X'")


def test_bed_columns_and_empty(tmp_path, genome):
    bed = write(tmp_path / "x.bed", "chr1\t0\t10\tx\nchr1\t0\t10\n")
    with pytest.raises(InputError) as error:
        read_bed(bed, genome[0])
    assert_error(error, bed, "line 2", "3 columns, expected 4")
    with pytest.raises(InputError) as error:
        read_bed(write(tmp_path / "y.bed", "chr1\t0\t10\n"), genome[0], target_columns=["score"])
    assert_error(error, tmp_path / "y.bed", "no column 'score'", "1=chrom")
    empty = write(tmp_path / "e.bed", "track name=x\n")
    with pytest.raises(InputError) as error:
        read_bed(empty, genome[0])
    assert_error(error, empty, "no intervals")


# ---------------------------------------------------------------- any file


def test_load_sequences_dispatch_and_errors(tmp_path, genome):
    fasta = write(tmp_path / "a.fasta", ">a\nACGT\n")
    assert load_sequences([fasta], labels=None, targets=None, genome=None).task == "none"
    table = write(tmp_path / "t.csv", "sequence,y\nACGT,1\n")
    assert load_sequences(table, targets=["y"]).task == "regression"
    with pytest.raises(InputError) as error:
        load_sequences(tmp_path / "x.bam")
    assert_error(error, tmp_path / "x.bam", "unknown file type '.bam'")
    with pytest.raises(InputError) as error:
        load_sequences(fasta, targets=["y"])
    assert_error(error, fasta, "--targets does not apply")
    bed = write(tmp_path / "x.bed", "chr1\t0\t10\n")
    with pytest.raises(InputError) as error:
        load_sequences(bed)
    assert_error(error, bed, "needs a genome")
    with pytest.raises(InputError) as error:
        load_sequences([fasta, table])
    assert_error(error, table, "only as FASTA")


# ---------------------------------------------------------------- lengths and splits


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
