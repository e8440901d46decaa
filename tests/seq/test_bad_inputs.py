"""Bad inputs of ``genoformer seq ...``: each answers with the line docs/bad-inputs.md shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs import BadInput, check_case, check_catalogue


def _fasta(folder: Path, text: str, name: str = "reads.fa") -> Path:
    (folder / name).write_text(text)
    return folder / name


CASES = [
    BadInput(
        "FASTA record with no sequence",
        lambda d: ["seq", "train", _fasta(d, ">a\n>b\nACGT\n"), "--out", "run"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, tmp_path, capsys):
    check_case(case, tmp_path, capsys, "seq")


def test_catalogue():
    check_catalogue(CASES, "seq", at_least=1)
