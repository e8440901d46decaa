"""Multiple-testing correction: plink2's ``--adjust`` table and genomic control.

Matches plink2 (``Multcomp`` in plink2_adjust.cc): tests are the variants with a p-value;
the chi-square of each test is the 1-df quantile of its p-value; lambda is the median of
those chi-squares divided by 0.456; the GC column divides every chi-square by
``max(lambda, 1)``. Rows are sorted by p-value, ties by file order. Adjusted p-values are
computed from the unadjusted ones (plink2's default; ``gc=True`` bases them on the
GC-corrected ones, as ``--adjust gc``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genoformer.engine.stats import benjamini_hochberg
from genoformer.gwas.stats.tails import chi2_isf, chi2_sf

ADJUST_COLUMNS = [
    "#CHROM", "ID", "A1", "UNADJ", "GC", "BONF", "HOLM",
    "SIDAK_SS", "SIDAK_SD", "FDR_BH", "FDR_BY",
]  # fmt: skip

#: Median of the 1-df chi-square distribution, as plink2 rounds it.
CHISQ_MEDIAN = 0.456


def p_to_chisq(p: np.ndarray) -> np.ndarray:
    """1-df chi-square statistic with upper-tail probability ``p``."""
    return chi2_isf(np.asarray(p, dtype=np.float64), 1)


def genomic_control_lambda(p: np.ndarray) -> float:
    """plink2's genomic inflation estimate: median 1-df chi-square / 0.456 (not floored).

    plink2 (v2.00a3.5) prints ``max(lambda, 1)`` in its log and uses that for the GC column.
    """
    p = np.asarray(p, dtype=np.float64)
    p = p[np.isfinite(p)]
    if p.size == 0:
        return float("nan")
    # The chi-square falls as p rises, so its median is that of the middle p-value(s): two
    # quantiles instead of one per variant (seconds for a million variants).
    n = p.size
    middle = np.partition(p, [(n - 1) // 2, n // 2])[[(n - 1) // 2, n // 2]]
    return float(np.median(p_to_chisq(middle if n % 2 == 0 else middle[:1])) / CHISQ_MEDIAN)


def adjust(results: pd.DataFrame, *, p_column: str = "P", gc: bool = False) -> pd.DataFrame:
    """The plink2 ``--adjust`` table for association results.

    Parameters
    ----------
    results
        Output of :func:`genoformer.gwas.stats.association.associate` (``#CHROM``/``CHR``,
        ``ID``/``SNP``, ``A1`` and ``P`` columns).
    p_column
        Column with the unadjusted p-values.
    gc
        Base BONF ... FDR_BY on the GC-corrected p-values (plink2 ``--adjust gc``).

    Returns
    -------
    pandas.DataFrame
        ``#CHROM ID A1 UNADJ GC BONF HOLM SIDAK_SS SIDAK_SD FDR_BH FDR_BY``, one row per
        test with a p-value, most significant first; ``attrs["lambda"]`` holds the
        unfloored lambda.
    """
    chrom = results["#CHROM"] if "#CHROM" in results else results["CHR"]
    ids = results["ID"] if "ID" in results else results["SNP"]
    p_all = results[p_column].to_numpy(dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(p_all))
    order = valid[np.argsort(p_all[valid], kind="stable")]
    p = p_all[order]
    n = p.size
    chisq = p_to_chisq(p)
    lam = float(np.median(chisq) / CHISQ_MEDIAN) if n else float("nan")
    lam_used = max(lam, 1.0) if n else 1.0
    p_gc = chi2_sf(chisq / lam_used, 1)
    base = p_gc if gc else p
    rank = np.arange(1, n + 1, dtype=np.float64)
    bonf = np.minimum(base * n, 1.0)
    holm = np.minimum(np.maximum.accumulate(np.minimum(base * (n - rank + 1), 1.0)), 1.0)
    # 1 - (1-p)^c without cancellation for small p, as plink2 does
    sidak_ss = -np.expm1(n * np.log1p(-base))
    sidak_sd = np.maximum.accumulate(-np.expm1((n - rank + 1) * np.log1p(-base)))
    harmonic = np.sum(1.0 / rank)
    by = np.minimum.accumulate(np.minimum(base * harmonic * n / rank, 1.0)[::-1])[::-1]
    table = pd.DataFrame(
        {
            "#CHROM": chrom.to_numpy()[order],
            "ID": ids.to_numpy()[order],
            "A1": results["A1"].to_numpy()[order],
            "UNADJ": p,
            "GC": p_gc,
            "BONF": bonf,
            "HOLM": holm,
            "SIDAK_SS": sidak_ss,
            "SIDAK_SD": sidak_sd,
            "FDR_BH": benjamini_hochberg(base),
            "FDR_BY": by,
        }
    )
    table.attrs["lambda"] = lam
    return table
