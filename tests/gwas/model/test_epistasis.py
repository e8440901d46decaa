"""Pair interaction contrasts against closed forms; their calibration by decoy pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from genoformer.engine.errors import InputError
from genoformer.gwas.model.epistasis import candidate_pairs, interaction_contrast, pair_scan


def cohort(n: int = 30, m: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    G = rng.integers(0, 3, (n, m)).astype(np.float32)
    missing = rng.random((n, m)) < 0.1
    return G, missing


def product_model(w: np.ndarray, i: int, j: int, c: float):
    """f = w . g + c * g_i * g_j (+ a covariate term), missing calls read as 1."""
    wt = torch.tensor(w, dtype=torch.float32)

    def f(g, missing, covariates):
        if missing is not None:
            g = torch.where(missing, torch.ones_like(g), g)
        out = g @ wt + c * g[:, i] * g[:, j]
        return out if covariates is None else out + covariates[:, 0]

    return f


@pytest.mark.parametrize(
    ("levels", "contrast"), [((0.0, 2.0), 4.0), ((0.0, 1.0), 1.0), ((1, 2), 1)]
)
def test_product_term_gives_its_coefficient_times_the_level_contrast(levels, contrast):
    G, missing = cohort()
    m = G.shape[1]
    w = np.random.default_rng(1).normal(size=m)
    f = product_model(w, 2, 5, c=0.7)
    pairs = list(itertools.combinations(range(m), 2))
    covariates = np.random.default_rng(2).normal(size=(len(G), 1))
    scores = interaction_contrast(
        f, G, missing, covariates, pairs=pairs, levels=levels, batch_size=17
    )
    expected = np.array([0.7 * contrast if p in ((2, 5),) else 0.0 for p in pairs])
    np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_contrast_equals_naive_forward_passes():
    G, missing = cohort(n=12, m=6, seed=3)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def f(g, miss, covariates):
        g = torch.where(miss, torch.full_like(g, 0.3), g) if miss is not None else g
        return net(g)[:, 0]

    pairs = [(0, 1), (4, 2), (5, 3)]
    scores = interaction_contrast(f, G, missing, None, pairs=pairs, batch_size=5)
    gt, mt = torch.tensor(G), torch.tensor(missing)
    with torch.no_grad():
        for (a, b), got in zip(pairs, scores, strict=True):
            total = torch.zeros(len(G))
            for la, lb, sign in ((2, 2, 1), (2, 0, -1), (0, 2, -1), (0, 0, 1)):
                g, mm = gt.clone(), mt.clone()
                g[:, a], g[:, b] = la, lb
                mm[:, a] = mm[:, b] = False
                total += sign * f(g, mm, None)
            assert got == pytest.approx(total.mean().item(), abs=1e-5)


def test_candidate_pairs_rank_by_importance():
    importance = np.array([5.0, 1.0, 4.0, 3.0, 0.5, 2.0, 0.1, 9.0])
    is_decoy = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    table = candidate_pairs(importance, is_decoy, top=3, null_pairs=5)
    tested = table[~table["null"]]
    assert sorted(map(tuple, tested[["a", "b"]].to_numpy())) == [(0, 2), (0, 3), (2, 3)]
    nulls = table[table["null"]]
    # Decoy 7 (the most important) with each top real variant, then decoy 5 ...
    assert list(map(tuple, nulls[["a", "b"]].to_numpy())) == [
        (0, 7),
        (2, 7),
        (3, 7),
        (0, 5),
        (2, 5),
    ]
    everything = candidate_pairs(importance, is_decoy, top=3, null_pairs=10_000)
    assert everything["null"].sum() == 3 * 4 + 6  # real x decoy + decoy x decoy


def test_pair_scan_calls_the_product_pair_and_no_null_pair():
    rng = np.random.default_rng(0)
    n, n_real, n_decoys = 60, 10, 40
    G = rng.integers(0, 3, (n, n_real)).astype(np.float32)
    X = np.concatenate([G, G[rng.permutation(n)][:, rng.integers(0, n_real, n_decoys)]], axis=1)
    w = np.zeros(X.shape[1])
    w[[1, 4, 6]] = [1.0, -0.5, 0.8]
    f = product_model(w, 4, 6, c=0.3)
    is_decoy = np.r_[np.zeros(n_real, bool), np.ones(n_decoys, bool)]
    importance = np.abs(w) + rng.uniform(0, 0.1, X.shape[1])
    table = pair_scan(
        f, X, None, None, importance=importance, is_decoy=is_decoy, top=4, null_pairs=300
    )
    assert table.attrs["tested_pairs"] == 6 and table.attrs["null_pairs"] == 300
    best = table.iloc[0]
    assert {best["a"], best["b"]} == {4, 6} and not best["null"]
    assert best["interaction"] == pytest.approx(1.2, abs=1e-5)
    assert best["p"] == pytest.approx(1 / 301) and best["called"]
    assert table.attrs["pairs_called"] == 1
    assert table.attrs["null_pairs_called"] == 0


def test_bad_pairs_and_levels():
    G, missing = cohort(m=4)
    f = product_model(np.ones(4), 0, 1, 1.0)
    with pytest.raises(InputError, match="out of range"):
        interaction_contrast(f, G, missing, None, pairs=[(0, 4)])
    with pytest.raises(InputError, match="same column twice"):
        interaction_contrast(f, G, missing, None, pairs=[(2, 2)])
    with pytest.raises(InputError, match="expected \\(P, 2\\)"):
        interaction_contrast(f, G, missing, None, pairs=[(0, 1, 2)])
    with pytest.raises(InputError, match="first must be below"):
        interaction_contrast(f, G, missing, None, pairs=[(0, 1)], levels=(2, 0))
    decoy = np.array([0, 0, 1, 1], bool)
    with pytest.raises(InputError, match="at least 2 variants"):
        candidate_pairs(np.ones(4), decoy, top=1)
    with pytest.raises(InputError, match="no decoy"):
        candidate_pairs(np.ones(4), np.zeros(4, bool), top=2)
    with pytest.raises(InputError, match="one entry per model column"):
        pair_scan(f, G, None, None, importance=np.ones(3), is_decoy=decoy)
