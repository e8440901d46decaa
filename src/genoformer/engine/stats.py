"""Multiple testing and empirical p-values, shared by every pillar.

One Benjamini-Hochberg (association ``--adjust``, decoy calibration of importances, motif
matches), and empirical p-values of scores against a null sample (decoy variants, null
pairs). A count can never go below ``1 / (1 + #null)``, too coarse for an FDR over many
tests when the null is a few dozen scores: so with ``fit_tail`` a score beyond every null
score gets ``P(null >= score)`` from a gamma fitted to the null, capped at the count's
``1 / (1 + #null)``. This follows Knijnenburg et al. 2009 ("Fewer permutations, more
accurate P-values"), who fit a Pareto tail where fewer than 10 permutations exceed a score;
a few dozen null scores are too few to fit a tail alone, and a gamma fitted to the whole
null can be too light in the tail of a skewed null, so it is used only beyond the last null
score, where no count can say more.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genoformer.engine.errors import InputError

__all__ = [
    "benjamini_hochberg",
    "empirical_pvalues",
    "leave_one_out_pvalues",
    "q_as_extra_test",
]

#: Fewest positive null scores a gamma is fitted to.
_MIN_FIT = 8


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values along the last axis, in the order given.

    NaN stays NaN and is not counted among the tests of its row.
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 0:
        return benjamini_hochberg(p[None])[0]
    finite = np.isfinite(p)
    n = finite.sum(axis=-1, keepdims=True)
    # NaN sorts last, so the tests of each row take ranks 1..n in front of it.
    ranked_p = np.where(finite, p, np.inf)
    order = np.argsort(ranked_p, axis=-1, kind="stable")
    ranked = np.take_along_axis(ranked_p, order, axis=-1)
    rank = np.arange(1, p.shape[-1] + 1)
    scaled = np.where(np.isfinite(ranked), ranked * n / rank, np.inf)
    scaled = np.minimum.accumulate(scaled[..., ::-1], axis=-1)[..., ::-1]
    q = np.empty_like(p)
    np.put_along_axis(q, order, np.minimum(scaled, 1.0), axis=-1)
    return np.where(finite, q, np.nan)


def _fitted_null(null: np.ndarray) -> Callable[[np.ndarray], np.ndarray] | None:
    """``P(null >= s)`` from a gamma fitted (maximum likelihood, origin at 0) to the positive
    null scores, scaled by their share of all null scores (the rest, with no effect at all,
    rank below every positive score); None when they are too few or all equal, or when some
    null scores are missing (-inf: a screen left them out, and a fit to the top of a
    sample alone would put the tail too far out)."""
    if not np.isfinite(null).all():
        return None
    positive = null[null > 0]
    if positive.size < _MIN_FIT or np.ptp(positive) <= 0:
        return None
    # Imported here: scipy.stats takes a second to load, and the association commands that
    # use this module's Benjamini-Hochberg never fit a tail.
    from scipy import stats

    shape, _, scale = stats.gamma.fit(positive, floc=0)
    share = positive.size / null.size
    return lambda s: share * stats.gamma.sf(s, shape, scale=scale)


def empirical_pvalues(
    scores: np.ndarray, null: np.ndarray, *, fit_tail: bool = False
) -> np.ndarray:
    """``(1 + #{null >= score}) / (1 + #null)`` for each score; NaN scores give NaN.

    With ``fit_tail``, a score beyond every null score gets ``P(null >= score)`` from a gamma
    fitted to the null, at most ``1 / (1 + #null)`` (see the module docstring), when the
    null has enough positive scores to fit one.
    """
    null = np.asarray(null, dtype=np.float64)
    null = np.sort(null[~np.isnan(null)])
    if null.size == 0:
        raise InputError(
            "no null scores (no decoy variants) to calibrate against",
            fix="train with decoy variants (they are flagged is_decoy in variants.tsv)",
        )
    scores = np.asarray(scores, dtype=np.float64)
    at_least = null.size - np.searchsorted(null, scores, side="left")
    p = (1.0 + at_least) / (1.0 + null.size)
    tail = (at_least == 0) & np.isfinite(scores) & (scores > 0)
    if fit_tail and tail.any():
        survival = _fitted_null(null)
        if survival is not None:
            p[tail] = np.minimum(survival(scores[tail]), p[tail])
    return np.where(np.isnan(scores), np.nan, p)


def leave_one_out_pvalues(null: np.ndarray, *, fit_tail: bool = False) -> np.ndarray:
    """Each null score's p-value against the other null scores (as
    :func:`empirical_pvalues`, ``fit_tail`` included)."""
    null = np.asarray(null, dtype=np.float64)
    if null.size < 2:
        raise InputError(
            f"{null.size} null score(s): a leave-one-out p-value needs at least 2",
            fix="train with more decoy variants",
        )
    ordered = np.sort(null)
    # #{others >= s} = #{all >= s} - 1, so p = #{all >= s} / n.
    at_least = null.size - np.searchsorted(ordered, null, side="left")
    p = at_least / null.size
    if fit_tail:
        # Only the top score is beyond all the others: refit without it.
        for i in np.flatnonzero(at_least == 1):
            p[i] = empirical_pvalues(null[i : i + 1], np.delete(null, i), fit_tail=True)[0]
    return p


def q_as_extra_test(p_real: np.ndarray, p_extra: np.ndarray) -> np.ndarray:
    """The BH q-value each of ``p_extra`` would get if it were tested beside ``p_real``.

    With the real p-values sorted, one more p-value x ranked after the r real ones <= x has
    q = min over ranks j >= r + 1 of p_(j) * (m + 1) / j (its own rank included).
    """
    base = np.sort(p_real[np.isfinite(p_real)])
    m = base.size + 1
    r = np.searchsorted(base, p_extra, side="right")
    # Suffix minimum of base_(j) * m / (j + 1) over the real p-values ranked after x.
    ranks = np.arange(2, m + 1)  # rank of base[i] when x is ranked before it
    after = base * m / ranks
    suffix = np.minimum.accumulate(after[::-1])[::-1] if after.size else after
    suffix = np.append(suffix, np.inf)
    own = p_extra * m / (r + 1)
    return np.minimum(np.minimum(own, suffix[r]), 1.0)
