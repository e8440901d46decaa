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


class _Source:
    """Genotypes in memory, read in chunks as a genotype file is."""

    def __init__(self, G: np.ndarray) -> None:
        self.G = G

    def chunks(self, size, *, samples):
        for start in range(0, self.G.shape[1], size):
            yield (
                np.arange(start, min(start + size, self.G.shape[1])),
                self.G[samples, start : start + size],
            )


def test_gblup_over_all_variants_is_ridge_on_standardised_genotypes(monkeypatch):
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(3)
    n, m = 120, 300
    G = rng.binomial(2, rng.uniform(0.1, 0.5, m), (n, m)).astype(np.float32)
    G[:, 7] = 1.0  # monomorphic: left out
    y = G[:, :20] @ rng.normal(0, 0.3, 20) + rng.normal(0, 1, n)
    split = np.where(np.arange(n) < 90, "train", "test")
    monkeypatch.setattr(baselines, "GBLUP_GRID", np.array([2.5]))
    ours = baselines.gblup_all_variants(
        _Source(G), np.arange(n), split, y, None, task="regression", chunk_size=64
    )
    train, G = split == "train", G.astype(np.float64)
    keep = G[train].std(axis=0) > 0
    Z = (G[:, keep] - G[train][:, keep].mean(axis=0)) / G[train][:, keep].std(axis=0)
    Z /= np.sqrt(keep.sum())
    reference = Ridge(alpha=2.5).fit(Z[train], y[train]).predict(Z[~train])
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)


def test_gblup_picks_the_penalty_with_the_least_leave_one_out_error(monkeypatch):
    rng = np.random.default_rng(4)
    n, m = 40, 60
    K = rng.normal(size=(n, m))
    K = K @ K.T / m
    r = rng.normal(size=n)
    grid = np.array([0.05, 1.0, 20.0])
    monkeypatch.setattr(baselines, "GBLUP_GRID", grid)

    def loo_error(penalty):  # refit without each sample in turn
        errors = []
        for i in range(n):
            rest = np.delete(np.arange(n), i)
            alpha = np.linalg.solve(K[np.ix_(rest, rest)] + penalty * np.eye(n - 1), r[rest])
            errors.append(r[i] - K[i, rest] @ alpha)
        return np.mean(np.square(errors))

    best = grid[np.argmin([loo_error(p) for p in grid])]
    expected = np.linalg.solve(K + best * np.eye(n), r)
    np.testing.assert_allclose(baselines._loo_kernel_ridge(K, r), expected, rtol=1e-8)
