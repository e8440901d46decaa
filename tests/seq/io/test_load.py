"""load_sequences: the reader chosen by the file extension, and its errors."""

from __future__ import annotations

import pytest

from genoformer.engine.errors import InputError
from genoformer.seq.io.load import load_sequences
from tests.seq.test_data import assert_error, write


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
    assert_error(error, fasta, "targets does not apply")
    bed = write(tmp_path / "x.bed", "chr1\t0\t10\n")
    with pytest.raises(InputError) as error:
        load_sequences(bed)
    assert_error(error, bed, "needs a genome")
    with pytest.raises(InputError) as error:
        load_sequences([fasta, table])
    assert_error(error, table, "only as FASTA")
