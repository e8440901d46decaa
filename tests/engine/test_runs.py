"""Run directories, devices and the error type."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from genoformer.engine.device import pick_device
from genoformer.engine.errors import InputError
from genoformer.engine.runs import (
    RunDir,
    Terminated,
    _plain_text,
    atomic_path,
    read_manifest,
    runs_opened,
    stop_open_runs,
    write_table,
)


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


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_text_tables_with_a_float_format_are_what_pandas_writes(tmp_path, suffix):
    rng = np.random.default_rng(0)
    n = 50
    plain = pd.DataFrame(
        {
            "#CHROM": rng.choice(["1", "X"], n),
            "POS": rng.integers(1, 10**8, n),
            "flag": rng.random(n) > 0.5,
            "P": np.where(rng.random(n) > 0.8, np.nan, 10.0 ** -rng.uniform(0, 300, n)),
            "BETA": rng.normal(size=n).astype(np.float32),
            "ratio": np.where(rng.random(n) > 0.9, np.inf, rng.normal(size=n) * 1e6),
        }
    )
    awkward = {  # cells that pandas quotes or fills: written by pandas itself
        "quoted": plain.assign(ID=['a"b'] * n),
        "separator": plain.assign(ID=["a,b\tc"] * n),
        "missing text": plain.assign(ID=[None] + ["x"] * (n - 1)),
        "nullable": plain.assign(POS=pd.array([None, *range(10**7, 10**7 + n - 1)], dtype="Int64")),
    }
    sep = "," if suffix == ".csv" else "\t"
    for name, table in {"plain": plain, **awkward}.items():
        path = write_table(tmp_path / f"{name}{suffix}", table, float_format="%.6g", na_rep="NA")
        expected = table.to_csv(sep=sep, index=False, float_format="%.6g", na_rep="NA")
        assert path.read_text() == expected, name
        # the plain table is formatted by hand, the others fall back to pandas
        assert (_plain_text(table, sep, "%.6g", "NA") is None) == (name in awkward), name


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
    assert not RunDir(tmp_path, command="seq train", overwrite=True).is_done("read")


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


# -- one run per directory ------------------------------------------------------------------


def _finished_run(path, command="gwas assoc"):
    run = RunDir(path, command=command)
    run.file("old/table.tsv").write_text("old")
    run.finish()


def test_a_directory_that_holds_a_run_is_refused_without_overwrite(tmp_path):
    _finished_run(tmp_path / "run")
    with pytest.raises(InputError, match=r"holds a run of `gwas assoc` \(complete\)") as error:
        RunDir(tmp_path / "run", command="gwas assoc")
    assert error.value.file == str(tmp_path / "run")
    assert "overwrite=True" in error.value.fix and "resume=True" in error.value.fix
    # --overwrite clears the old run first: none of its files stay beside the new ones.
    RunDir(tmp_path / "run", command="gwas qc", overwrite=True).finish()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["manifest.json"]
    # --resume keeps what is there.
    _finished_run(tmp_path / "again")
    RunDir(tmp_path / "again", command="gwas assoc", resume=True)
    assert (tmp_path / "again" / "old" / "table.tsv").exists()


def test_a_file_in_the_place_of_the_run_directory_is_refused(tmp_path):
    (tmp_path / "run").write_text("not a directory")
    with pytest.raises(InputError, match="exists and is not a directory"):
        RunDir(tmp_path / "run", command="seq train")


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (ValueError("bad value"), "failed", "ValueError: bad value"),
        (KeyboardInterrupt(), "interrupted", "SIGINT"),
        (Terminated("SIGTERM"), "interrupted", "SIGTERM"),
    ],
)
def test_a_run_stopped_in_a_step_says_so(tmp_path, error, status, reason):
    run = RunDir(tmp_path / "run", command="seq train")
    with pytest.raises(type(error)), run.step("train"):
        raise error
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == status and manifest["reason"] == reason
    assert manifest["steps"]["train"]["status"] == "failed"
    with pytest.raises(InputError, match=f"not complete \\(status {status}: {reason}"):
        read_manifest(tmp_path / "run")


def test_runs_stopped_outside_a_step_are_marked_by_the_command_line(tmp_path):
    first = runs_opened()
    run = RunDir(tmp_path / "run", command="gwas qc")
    assert stop_open_runs(RuntimeError("disk full"), since=first) == [run]
    assert run.manifest["status"] == "failed"
    # Only the runs of this command: not a finished one, not one opened before it.
    finished = RunDir(tmp_path / "done", command="gwas qc")
    finished.finish()
    assert stop_open_runs(RuntimeError("later"), since=run.serial + 1) == []
    assert read_manifest(tmp_path / "done")["status"] == "complete"


def _incomplete_run(path, status="interrupted"):
    (path / "model").mkdir(parents=True)
    (path / "model" / "config.json").write_text("{}")
    manifest = {"command": "train", "status": status, "reason": "SIGTERM"}
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_readers_refuse_the_model_of_an_incomplete_run(tmp_path):
    from genoformer.gwas.model.training import load_trained
    from genoformer.sc.embeddings import _encoder
    from genoformer.seq.api import load_model

    _incomplete_run(tmp_path / "run")
    readers = (
        lambda: load_trained(tmp_path / "run"),
        lambda: load_model(tmp_path / "run"),
        lambda: load_model(tmp_path / "run" / "model"),
        lambda: _encoder(tmp_path / "run" / "model", None),
    )
    for read in readers:
        with pytest.raises(InputError, match="not complete \\(status interrupted: SIGTERM\\)") as e:
            read()
        assert e.value.file == str(tmp_path / "run" / "manifest.json")
