"""Linkage disequilibrium: r2 between a lead variant and the variants around it.

r2 is the squared Pearson correlation of allele dosages over the samples called at both
variants (pairwise-complete, as plink 1.9 ``--r2`` does with missing calls); a variant with
no variance among those samples has no r2 (NaN).
"""

from __future__ import annotations

import numpy as np

__all__ = ["r2_with"]


def r2_with(lead: np.ndarray, others: np.ndarray) -> np.ndarray:
    """r2 of ``lead`` (samples) with each column of ``others`` (samples x variants).

    Missing calls are NaN; each pair uses the samples called at both variants.
    """
    lead = np.asarray(lead, dtype=np.float64)
    others = np.asarray(others, dtype=np.float64)
    if others.ndim != 2 or others.shape[0] != lead.shape[0]:
        raise ValueError(f"lead has {lead.shape[0]} samples, others has shape {others.shape}")
    both = np.isfinite(others) & np.isfinite(lead)[:, None]
    n = both.sum(axis=0).astype(np.float64)
    a = np.where(both, lead[:, None], 0.0)
    b = np.where(both, others, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_a, mean_b = a.sum(axis=0) / n, b.sum(axis=0) / n
        cov = (a * b).sum(axis=0) / n - mean_a * mean_b
        var_a = (a * a).sum(axis=0) / n - mean_a**2
        var_b = (b * b).sum(axis=0) / n - mean_b**2
        r2 = cov**2 / (var_a * var_b)
    # Rounding leaves a near-zero variance slightly off zero: no variance, no r2.
    r2[(n < 2) | (var_a <= 1e-12) | (var_b <= 1e-12)] = np.nan
    return np.clip(r2, 0.0, 1.0)
