"""The BED + genome reader and its errors."""

from __future__ import annotations

import pytest

from genoformer.engine.errors import InputError
from genoformer.seq.encoding import reverse_complement
from genoformer.seq.io.bed import read_bed
from genoformer.seq.io.load import load_sequences
from tests.seq.test_data import assert_error, write


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


def test_reading_a_genome_writes_nothing_beside_it(tmp_path, genome, monkeypatch):
    genome_path, chroms = genome
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bed = write(tmp_path / "peaks.bed", "chr1\t10\t20\tp1\t0\t+\n")
    data = read_bed(bed, genome_path)
    assert data.sequences == [chroms["chr1"][10:20]]
    assert sorted(p.name for p in genome_path.parent.glob("genome.fa*")) == ["genome.fa"]
    assert len(list((tmp_path / "cache" / "genoformer" / "fai").glob("genome.fa.*.fai"))) == 1
    # An index the user made beside the genome is used as it is.
    read_bed(bed, genome_path)  # from the cache, again
    (genome_path.parent / "genome.fa.fai").write_text(
        (next((tmp_path / "cache").rglob("*.fai"))).read_text()
    )
    assert read_bed(bed, genome_path).sequences == data.sequences
