"""Run directories, devices and the error type."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from genoformer.engine.device import pick_device
from genoformer.engine.errors import InputError
from genoformer.engine.runs import RunDir, atomic_path, write_table


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "result.tsv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.tsv"]


def test_tables_in_each_format(tmp_path):
    table = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for name in ("t.tsv", "t.csv", "t.parquet"):
        write_table(tmp_path / name, table)
    assert pd.read_csv(tmp_path / "t.tsv", sep="\t").equals(table)
    assert pd.read_csv(tmp_path / "t.csv").equals(table)
    assert pd.read_parquet(tmp_path / "t.parquet").equals(table)


def test_manifest_records_steps_and_resume_keeps_them(tmp_path):
    run = RunDir(tmp_path, command="seq train", arguments={"path": tmp_path}, seed=7)
    with run.step("read"):
        pass
    with pytest.raises(ValueError), run.step("train"):
        raise ValueError("boom")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["arguments"]["path"] == str(tmp_path)
    assert manifest["steps"]["read"]["status"] == "done"
    assert manifest["steps"]["train"]["status"] == "failed"
    assert {"python", "torch", "transformers"} <= set(manifest["versions"])

    resumed = RunDir(tmp_path, command="seq train", resume=True)
    assert resumed.is_done("read") and not resumed.is_done("train")
    assert not RunDir(tmp_path, command="seq train").is_done("read")


def test_device_auto_and_bad_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto").type in ("cpu", "mps", "npu")
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        pick_device("tpu")
    with pytest.raises(InputError, match="not available"):
        pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"


def test_input_error_names_file_place_and_fix():
    error = InputError("5 columns, expected 6", file="data.fam", where="line 17", fix="add IID")
    assert str(error) == "data.fam line 17: 5 columns, expected 6 (fix: add IID)"
    assert str(InputError("no samples")) == "no samples"
