"""`gwas train` stopped at a random checkpoint (SIGTERM or SIGKILL): the run says it is not
complete, `gwas predict` refuses it, a rerun without --resume/--overwrite is refused in one
line, and resuming ends with the model and test metrics of an uninterrupted run, bitwise."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from genoformer.engine.errors import InputError
from genoformer.gwas.io.simulate import simulate
from genoformer.gwas.model.training import load_trained, train
from tests.killing import (
    assert_same_weights,
    check_refused,
    check_stopped,
    cli,
    kill_after_checkpoint,
    kill_point,
    options,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# 300 samples, 210 to train on in batches of 32: 7 steps an epoch (an evaluation and a
# checkpoint each), 56 in all.
OPTIONS = dict(
    window=4, decoys=20, epochs=8, batch_size=32, learning_rate=3e-3, d_model=16, seed=1,
    device="cpu",
)  # fmt: skip
#: Only ridge beside the transformer in this process (the baselines do not resume).
BASELINES = ("ridge",)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("cohort") / "toy"
    simulate(prefix, n_samples=300, n_variants=200, n_chromosomes=2, heritability=0.8,
             n_causal=3, maf_min=0.1, seed=4)  # fmt: skip
    return prefix


def _train(cohort, out, **extra):
    return train(cohort, f"{cohort}.pheno", out=out, trait="quant", n_heads=2,
                 baselines_to_fit=BASELINES, **OPTIONS, **extra)  # fmt: skip


@pytest.fixture(scope="module")
def whole(cohort, tmp_path_factory):
    return _train(cohort, tmp_path_factory.mktemp("whole") / "run")


@pytest.mark.parametrize(("how", "seed"), [("SIGTERM", 3), ("SIGKILL", 4)])
def test_stopped_training_resumes_to_the_same_model(cohort, whole, tmp_path, capsys, how, seed):
    out = tmp_path / "stopped"
    words = ["gwas", "train", cohort, "--out", out, "--pheno", f"{cohort}.pheno",
             "--trait", "quant", "--heads", "2", *options(OPTIONS)]  # fmt: skip
    step, delay = kill_point(seed, every=7, last=28)
    # One torch thread, as in this process (one_thread): the same floats either side.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    stderr = kill_after_checkpoint(cli(*words), out, step=step, delay=delay, how=how, env=env)
    check_stopped(out, how, stderr)
    with pytest.raises(InputError, match="the training run is not complete"):
        load_trained(out)
    assert "holds a run of `gwas train`" in check_refused(words, capsys)

    resumed = _train(cohort, out, resume=True)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    assert resumed.metrics["steps"] == whole.metrics["steps"] == 56
    assert resumed.metrics["test"] == whole.metrics["test"]
    assert resumed.metrics["best_validation_loss"] == whole.metrics["best_validation_loss"]
    assert_same_weights(out / "model", whole.run_dir / "model")
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "loss_curve.tsv", sep="\t"),
        pd.read_csv(whole.run_dir / "loss_curve.tsv", sep="\t"),
        check_exact=True,
    )
