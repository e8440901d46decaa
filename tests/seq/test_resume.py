"""A training run killed with SIGKILL resumes from its last checkpoint and ends with the
model an uninterrupted run ends with."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import torch
from safetensors.torch import load_file

from genoformer.seq import api
from genoformer.seq.tasks import teaching_task

TRAIN_OPTIONS = dict(
    model="cnn", epochs=4, batch_size=128, eval_every=10, patience=0, seed=5, device="cpu"
)


def test_killed_training_resumes_to_the_same_model(tmp_path):
    data = teaching_task(2_000, seed=2)
    table = tmp_path / "teaching.tsv"
    pd.DataFrame({"sequence": data.sequences, "score": data.targets[:, 0]}).to_csv(
        table, sep="\t", index=False
    )
    whole = api.train(table, out=tmp_path / "whole", **TRAIN_OPTIONS)

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "genoformer.cli", "seq", "train", str(table)]
    command += ["--out", str(killed), "--model", "cnn", "--epochs", "4", "--batch-size", "128"]
    command += ["--eval-every", "10", "--patience", "0", "--seed", "5", "--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = killed / "checkpoints" / "checkpoint-20" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()
    process.wait()
    assert marker.exists(), "the run ended before its second checkpoint"
    assert not (killed / "model").exists(), "the run finished before it was killed"

    resumed = api.train(table, out=killed, resume=True, **TRAIN_OPTIONS)
    assert resumed.metrics["steps"] == whole.metrics["steps"]
    ours = load_file(killed / "model" / "model.safetensors")
    theirs = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-5, atol=1e-6, msg=name)
    assert abs(resumed.metrics["r2"] - whole.metrics["r2"]) < 1e-5
