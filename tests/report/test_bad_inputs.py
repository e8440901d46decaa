"""Bad inputs of ``genoformer report``: each answers with the line docs/bad-inputs.md shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bad_inputs import BadInput, check_case, check_catalogue


def _folder(root: Path, manifest: dict | None) -> Path:
    folder = root / "runs" / "assoc"
    folder.mkdir(parents=True)
    if manifest is not None:
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _complete(root: Path) -> Path:
    return _folder(root, {"command": "demo", "status": "complete"})


def _genes(root: Path, text: str) -> list:
    (root / "genes.bed").write_text(text)
    return ["report", _complete(root), "--genes", "genes.bed", "--out", "report.html"]


CASES = [
    BadInput(
        "a directory that holds no run",
        lambda d: ["report", _folder(d, None), "--out", "report.html"],
    ),
    BadInput(
        "a run that did not finish",
        lambda d: [
            "report",
            _folder(d, {"command": "gwas assoc", "status": "interrupted", "reason": "SIGINT"}),
            "--out",
            "report.html",
        ],
    ),
    BadInput(
        "--genes file that does not exist",
        lambda d: ["report", _complete(d), "--genes", "genes.bed", "--out", "report.html"],
    ),
    BadInput(
        "--genes BED line without a gene name",
        lambda d: _genes(d, "chr1\t100\t200\tA\nchr1\t300\t400\n"),
    ),
    BadInput(
        "--genes BED start that is not a number",
        lambda d: _genes(d, "chr1\tten\t200\tA\n"),
    ),
    BadInput("--genes file without genes", lambda d: _genes(d, "# no genes\n")),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, tmp_path, capsys):
    check_case(case, tmp_path, capsys, "report")
    assert not (tmp_path / "report.html").exists()


def test_catalogue():
    check_catalogue(CASES, "report", at_least=2)


def test_an_unfinished_run_below_a_given_one_is_left_out_with_a_note(tmp_path):
    from genoformer import report

    top = tmp_path / "demo"
    top.mkdir()
    (top / "manifest.json").write_text(json.dumps({"command": "demo", "status": "complete"}))
    inner = top / "seq"
    inner.mkdir()
    (inner / "manifest.json").write_text(json.dumps({"command": "seq train", "status": "failed"}))
    page = report(top, out=tmp_path / "report.html").read_text()
    assert "runs left out" in page and "not complete (status failed)" in page
    assert "demo: demo" in page
