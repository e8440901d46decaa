"""LD r2: the squared correlation of dosages over the samples called at both variants."""

from __future__ import annotations

import numpy as np
import pytest

from genoformer.gwas.stats.ld import r2_with


def test_r2_is_the_squared_correlation_and_ignores_missing_calls():
    rng = np.random.default_rng(0)
    lead = rng.binomial(2, 0.3, 200).astype(float)
    others = np.column_stack(
        [lead, 2 - lead, np.where(rng.random(200) < 0.2, lead, rng.binomial(2, 0.3, 200)),
         rng.binomial(2, 0.4, 200)]
    ).astype(float)  # fmt: skip
    expected = [np.corrcoef(lead, others[:, j])[0, 1] ** 2 for j in range(4)]
    assert r2_with(lead, others) == pytest.approx(expected, abs=1e-12)
    # Missing calls (NaN) in either variant: each pair uses the samples called at both.
    lead_missing, others_missing = lead.copy(), others.copy()
    lead_missing[:10] = np.nan
    others_missing[10:30, 3] = np.nan
    both = np.isfinite(lead_missing) & np.isfinite(others_missing[:, 3])
    assert r2_with(lead_missing, others_missing)[3] == pytest.approx(
        np.corrcoef(lead[both], others[both, 3])[0, 1] ** 2, abs=1e-12
    )
    assert r2_with(lead_missing, others_missing)[:2] == pytest.approx([1.0, 1.0])


def test_no_variance_no_r2():
    lead = np.array([0.0, 1.0, 2.0, 1.0])
    others = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, np.nan], [1.0, 2.0]])
    r2 = r2_with(lead, others)
    assert np.isnan(r2[0]) and r2[1] == pytest.approx(np.corrcoef([0, 1, 1], [0, 1, 2])[0, 1] ** 2)
    with pytest.raises(ValueError, match="samples"):
        r2_with(lead, others[:3])
