"""The baselines of the genotype model: none tells the user less than the training mean."""

from __future__ import annotations

import numpy as np
import pytest

from genoformer.gwas.model import baselines
from genoformer.gwas.model.inputs import CohortInputs


def _cohort(n: int, m: int, *, signal: float, task: str, seed: int) -> CohortInputs:
    rng = np.random.default_rng(seed)
    genotypes = rng.binomial(2, 0.3, (n, m)).astype(np.float32)
    y = signal * (genotypes[:, 0] - genotypes[:, 0].mean()) + rng.normal(0, 1, n) + 90.0
    if task == "classification":
        y = (y > np.median(y)).astype(np.float64)
    return CohortInputs(genotypes, np.zeros((n, m), dtype=bool), None, y)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_an_mlp_worse_than_the_mean_on_validation_predicts_the_mean(task):
    # A pure-noise trait on 40 variants: the net learns only noise.
    cohort = _cohort(600, 40, signal=0.0, task=task, seed=1)
    train, validation, test = (
        cohort.subset(np.arange(a, b)) for a, b in ((0, 400), (400, 500), (500, 600))
    )
    predicted, at_mean = baselines.fit_predict(
        train, test, task=task, names=("mlp",), validation=validation
    )
    assert at_mean == ["mlp"]
    expected = train.y.mean() if task == "regression" else [1 - train.y.mean(), train.y.mean()]
    np.testing.assert_allclose(predicted["mlp"], np.broadcast_to(expected, predicted["mlp"].shape))


def test_an_mlp_that_learns_keeps_its_predictions():
    cohort = _cohort(1500, 10, signal=2.0, task="regression", seed=2)
    train, validation, test = (
        cohort.subset(np.arange(a, b)) for a, b in ((0, 1000), (1000, 1250), (1250, 1500))
    )
    predicted, at_mean = baselines.fit_predict(
        train, test, task="regression", names=("mlp", "ridge"), validation=validation
    )
    assert at_mean == []
    r2 = 1 - np.mean((predicted["mlp"] - test.y) ** 2) / np.var(test.y)
    assert r2 > 0.3
