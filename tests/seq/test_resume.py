"""`seq train` stopped at a random checkpoint (SIGTERM or SIGKILL): the run says it is not
complete, a rerun without --resume/--overwrite is refused, and --resume ends with the model,
metrics and loss curve of an uninterrupted run, bitwise."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from genoformer.engine.errors import InputError
from genoformer.seq import api
from genoformer.seq.tasks import teaching_task
from tests.killing import (
    assert_same_weights,
    check_refused,
    check_stopped,
    cli,
    kill_after_checkpoint,
    kill_point,
    options,
    resume,
)

# 600 sequences: 480 to train on in batches of 32, 15 steps an epoch, 45 in all, a
# checkpoint every 5 steps.
OPTIONS = dict(model="cnn", epochs=3, batch_size=32, eval_every=5, patience=0, seed=5, device="cpu")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    data = teaching_task(600, seed=2)
    path = tmp_path_factory.mktemp("teaching") / "teaching.tsv"
    pd.DataFrame({"sequence": data.sequences, "score": data.targets[:, 0]}).to_csv(
        path, sep="\t", index=False
    )
    return path


@pytest.fixture(scope="module")
def whole(table, tmp_path_factory):
    return api.train(table, out=tmp_path_factory.mktemp("whole") / "run", **OPTIONS)


@pytest.mark.parametrize(("how", "seed"), [("SIGTERM", 1), ("SIGKILL", 2)])
def test_stopped_training_resumes_to_the_same_model(table, whole, tmp_path, capsys, how, seed):
    out = tmp_path / "stopped"
    words = ["seq", "train", table, "--out", out, *options(OPTIONS)]
    step, delay = kill_point(seed, every=5, last=20)
    stderr = kill_after_checkpoint(cli(*words), out, step=step, delay=delay, how=how)
    check_stopped(out, how, stderr)
    # `seq predict` / `evaluate` load the model through load_model, which refuses the run.
    with pytest.raises(InputError, match="the training run is not complete"):
        api.load_model(out)
    assert "holds a run of `seq train`" in check_refused(words, capsys)

    resume(words, capsys)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert (
        manifest["results"]["test"]
        == json.loads((whole.run_dir / "manifest.json").read_text())["results"]["test"]
    )
    assert_same_weights(out / "model", whole.run_dir / "model")
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "loss_curve.tsv", sep="\t"),
        pd.read_csv(whole.run_dir / "loss_curve.tsv", sep="\t"),
        check_exact=True,
    )


def test_default_evaluation_is_once_per_epoch_with_a_training_loss_each_time(table, tmp_path):
    # 480 training sequences in batches of 32: 15 steps an epoch.
    result = api.train(table, out=tmp_path / "run", model="linear", epochs=3, batch_size=32,
                       patience=0, device="cpu")  # fmt: skip
    history = pd.read_csv(tmp_path / "run" / "loss_curve.tsv", sep="\t")
    evaluated = history.dropna(subset=["eval_loss"])
    assert evaluated["step"].tolist() == [15, 30, 45]
    assert history["train_loss"].notna().all()
    assert result.metrics["steps"] == 45
