"""The few distribution functions the association path needs, from ``scipy.special``.

``scipy.stats`` takes a second or more to import (it loads scipy.optimize, scipy.spatial
...); ``scipy.special`` holds the same functions and loads in a fraction of that. Each
function here returns what its ``scipy.stats`` counterpart returns, bit for bit, on every
input (tests/gwas/stats/test_tails.py checks it, edge cases included): ``scipy.stats``
calls these very functions after checking the arguments as done here.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["beta_ppf", "chi2_isf", "chi2_sf", "t_sf"]


def t_sf(x, df) -> np.ndarray:
    """``scipy.stats.t.sf(x, df)``: upper tail of Student's t (NaN where ``df <= 0``)."""
    return special.stdtr(df, -np.asarray(x, dtype=np.float64))


def chi2_sf(x, df=1) -> np.ndarray:
    """``scipy.stats.chi2.sf(x, df)``: upper tail of chi-square; 1 at and below 0."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0, 1.0, special.chdtrc(df, x))


def chi2_isf(q, df=1) -> np.ndarray:
    """``scipy.stats.chi2.isf(q, df)``: the chi-square value with upper tail ``q``."""
    return special.chdtri(df, np.asarray(q, dtype=np.float64))


def beta_ppf(q, a, b) -> np.ndarray:
    """``scipy.stats.beta.ppf(q, a, b)``: quantile ``q`` of Beta(a, b)."""
    return special.betaincinv(a, b, q)
