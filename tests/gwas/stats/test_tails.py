"""The scipy.special tails of the association path equal scipy.stats bit for bit."""

import numpy as np
from scipy import stats

from genoformer.gwas.stats.tails import beta_ppf, chi2_isf, chi2_sf, t_sf

rng = np.random.default_rng(0)
EDGES = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, 40.0, 1e3, -2.0])


def _same(a, b):
    assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


def test_t_sf_is_scipy_stats():
    x = np.concatenate([rng.standard_normal(5000) * 5, EDGES])
    df = np.concatenate([rng.integers(1, 3000, 5000).astype(float), np.full(EDGES.size, 7.0)])
    _same(t_sf(x, df), stats.t.sf(x, df))
    _same(t_sf(np.abs(x), df), stats.t.sf(np.abs(x), df))
    _same(t_sf(1.0, np.array([0.0, -1.0, np.nan])), stats.t.sf(1.0, np.array([0.0, -1.0, np.nan])))


def test_chi2_is_scipy_stats():
    x = np.concatenate([rng.chisquare(1, 5000) * 3, EDGES])
    _same(chi2_sf(x, 1), stats.chi2.sf(x, 1))
    q = np.concatenate([rng.random(5000), [0.0, 1.0, np.nan, 1e-300, -0.1, 1.1]])
    _same(chi2_isf(q, 1), stats.chi2.isf(q, 1))


def test_beta_ppf_is_scipy_stats():
    n = 5000
    i = np.arange(1, n + 1.0)
    for q in (0.025, 0.975):
        _same(beta_ppf(q, i, n - i + 1), stats.beta.ppf(q, i, n - i + 1))
