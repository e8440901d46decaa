"""Genomic-control lambda from the middle p-values equals the median of every chi-square."""

import numpy as np
import pytest
from scipy import stats

from genoformer.gwas.stats.adjust import CHISQ_MEDIAN, genomic_control_lambda


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 1001])
@pytest.mark.parametrize("ties", [False, True])
def test_lambda_is_the_median_chisq_over_0456(n, ties):
    rng = np.random.default_rng(n)
    p = rng.uniform(size=n) ** 1.3
    if ties:
        p = np.round(p, 2)
    p[1::7] = np.nan  # missing p-values are left out
    finite = p[np.isfinite(p)]
    expected = np.median(stats.chi2.isf(finite, 1)) / CHISQ_MEDIAN
    assert genomic_control_lambda(p) == expected


def test_lambda_of_nothing_is_nan():
    assert np.isnan(genomic_control_lambda(np.array([np.nan])))
