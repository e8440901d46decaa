"""Firth rows against an independent float64 Firth implementation (firthmodels, PyPI).

genoformer's Firth fit follows plink2's steps and stopping rule (docs/gwas.md) in double
precision. Against the penalised-likelihood optimum that firthmodels reaches with
tolerances of 1e-8, common variants agree to 3e-7 and better; rare ones (minor allele count
below about 20) stop up to 2e-5 relative short of it in OR, where plink2's rule (changes
below 1e-4) ends the fit. Hence 5e-5 here: 1e-6 (issue 14 part 5) would need a fit that
goes on past plink2's rule, which moves those rows away from plink2's own. The standard
error is plink2's, from the information matrix X'WX at the optimum; firthmodels reports one
from the augmented matrix X'W(1+h)X of its Newton steps, so X'WX is formed here, from
firthmodels' estimate, independently of genoformer.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from genoformer.gwas.io.genotypes import ArrayGenotypes
from genoformer.gwas.stats.association import associate

firthmodels = pytest.importorskip("firthmodels")

N, M = 400, 40
TOLERANCE = 5e-5


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(3)
    freq = np.geomspace(0.004, 0.45, M)
    G = rng.binomial(2, freq, size=(N, M)).astype(np.float32)
    G[rng.random((N, M)) < 0.01] = np.nan
    C = np.column_stack([rng.normal(0, 1, N), rng.integers(0, 2, N)]).astype(float)
    eta = -1.0 + 0.2 * C[:, 0] + 0.3 * C[:, 1] + 0.8 * np.nan_to_num(G[:, -1])
    y = (rng.random(N) < 1 / (1 + np.exp(-eta))).astype(float)
    variants = pd.DataFrame({"chrom": "1", "id": [f"v{j}" for j in range(M)], "cm": 0.0,
                             "pos": np.arange(M) + 1, "a1": "A", "a2": "G"})  # fmt: skip
    samples = pd.DataFrame({"fid": [f"f{i}" for i in range(N)], "iid": [f"i{i}" for i in range(N)]})
    return ArrayGenotypes(G, variants, samples), G, C, y


def _reference(g: np.ndarray, C: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """OR and SE of log(OR) of the genotype: firthmodels' estimate, X'WX at it."""
    X = np.column_stack([C, g])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = firthmodels.FirthLogisticRegression(
            backend="numpy", gtol=1e-8, xtol=1e-8, max_iter=200
        ).fit(X, y)
    full = np.column_stack([np.ones(len(y)), X])
    p = 1 / (1 + np.exp(-(fit.intercept_ + X @ fit.coef_)))
    information = full.T @ (full * (p * (1 - p))[:, None])
    return float(np.exp(fit.coef_[-1])), float(np.sqrt(np.linalg.inv(information)[-1, -1]))


def test_firth_rows_equal_an_independent_float64_firth(cohort):
    source, G, C, y = cohort
    table = associate(source, y, covariates=C, test="logistic", firth="always", a1="alt")
    fitted = table[table["ERRCODE"] == "."]
    assert len(fitted) >= M - 5  # the rarest may be constant
    rows = []
    for j in fitted.index:
        called = np.isfinite(G[:, j])
        odds, se = _reference(G[called, j].astype(float), C[called], y[called])
        rows.append((j, abs(table.at[j, "OR"] / odds - 1), abs(table.at[j, "LOG(OR)_SE"] / se - 1)))
    worst = max(rows, key=lambda r: max(r[1], r[2]))
    assert max(worst[1], worst[2]) < TOLERANCE, (
        f"variant {worst[0]}: OR {worst[1]:.1e}, SE {worst[2]:.1e}"
    )
