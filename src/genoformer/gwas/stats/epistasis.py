"""Exhaustive pair scan for interacting variants, as plink1.9 ``--epistasis`` and
``--fast-epistasis``.

Three tests of a pair of variants ``a``, ``b`` (allele counts 0/1/2 of each variant's A1):

- ``linear`` (quantitative trait): ``y ~ 1 + a + b + a*b`` by least squares; the statistic
  is the Wald chi-square of the product term, ``BETA_INT**2 / Var(BETA_INT)`` with the residual
  variance on ``n - 4`` degrees of freedom, and ``P = 2 * Phi(-sqrt(STAT))`` (plink1.9's normal
  scale, not Student's t).
- ``logistic`` (case/control): the same model by maximum likelihood; ``OR_INT = exp(beta)``.
- ``fast`` (case/control): plink1.9's default ``--fast-epistasis`` test, the PLINK 1.07
  allele-based test with Ueki and Cordell's variance and empty-cell corrections: from the
  3x3 genotype table of the pair in cases and in controls, allele-pair counts
  ``c11 = 4 n00 + 2 (n01 + n10) + n11`` (and the three others), each group's log odds ratio
  ``log(c11 c22 / (c12 c21))`` and its variance; the statistic is the squared difference of
  the two log odds ratios over the sum of the variances (+4.5 on every c, +0.5 on every count
  in the variance, in a group with an empty cell).

As plink1.9 does it: A1 is each variant's minor allele (frequencies over all samples of the
file); samples without a phenotype are dropped, and each pair is fitted on the samples called
at both variants; monomorphic variants (among those samples) and variants on X, Y and MT are
left out; a pair is not tested (``N_TOT`` does not count it) under plink1.9's rules: fewer
than 5 samples, a predictor with no variance, two predictors correlated above 0.999 or a VIF
above 50 (linear), an empty 2x2 square of the genotype table (logistic), a fit that fails
its checks of the covariance matrix. Only pairs with ``P`` below the threshold (``--epi1``)
are kept; the summary table counts, per variant, the pairs with ``P`` below the summary
threshold (``--epi2``) and names the best partner.

How it is fast: every statistic needs only a few sums over the samples of a pair. The 3x3
genotype table comes from bit-packed genotypes (``popcount`` of the AND of the "1" and "2"
bit planes of both variants, per case/control group); the samples missing at one variant are
few, so the per-variant sums are corrected from their lists; the one weighted sum of the
linear test, ``sum(a * b * y)``, comes for a block of pairs from one matrix product (BLAS,
single precision; every pair within a margin of the threshold is recomputed in double
precision before it is written, so the reported values do not depend on it). The per-pair
algebra (a 4x4 solve, or Newton steps on the 9 cells of the genotype table for the logistic
test) runs in numba on Python threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd
from llvmlite import ir
from numba import types
from numba.extending import intrinsic
from scipy import special

from genoformer.engine.errors import InputError

TESTS = ("linear", "logistic", "fast")
QT_COLUMNS = ["CHR1", "SNP1", "CHR2", "SNP2", "BETA_INT", "STAT", "P"]
CC_COLUMNS = ["CHR1", "SNP1", "CHR2", "SNP2", "OR_INT", "STAT", "P"]
FAST_COLUMNS = ["CHR1", "SNP1", "CHR2", "SNP2", "STAT", "P"]
SUMMARY_COLUMNS = ["CHR", "SNP", "N_SIG", "N_TOT", "PROP", "BEST_CHISQ", "BEST_CHR", "BEST_SNP"]
#: plink1.9's --vif default for the linear test.
MAX_VIF = 50.0
#: Chromosomes plink1.9 leaves out of the scan (haploid in human data).
NON_AUTOSOMAL = {"X", "Y", "MT", "M", "23", "24", "26", "CHRX", "CHRY", "CHRM", "CHRMT"}
#: Variants per block of the scan (rows x columns of pairs handled by one kernel call).
_TILE = 512
#: Pairs whose single-precision statistic is within this factor of the threshold are
#: recomputed in double precision (single-precision sums are good to about 1e-6 here).
_MARGIN = 0.99
_LOGISTIC_MAX_ITER = 25
_LOGISTIC_TOL = 1e-6
# Compiled loops may reorder sums; nothing is assumed about NaN or infinities.
_FASTMATH = {"reassoc", "contract"}


@dataclass
class ScanSettings:
    """What :func:`scan_pairs` tests and reports.

    ``threshold`` is plink1.9's ``--epi1`` (pairs with P below it are written),
    ``summary_threshold`` its ``--epi2`` (pairs counted in N_SIG); ``against``, variant
    indices (of the genotype file) tested against every variant (plink1.9's ``set-by-all``),
    or None for all pairs.
    """

    test: str = "auto"
    threshold: float = 1e-4
    summary_threshold: float = 0.01
    against: Sequence[int] | None = None
    threads: int | None = None
    vif: float = MAX_VIF


@dataclass
class ScanResult:
    """Pairs below the threshold (plink1.9's columns plus ``I1``/``I2``, the variants' file
    indices, and ``N``, the samples of the pair), the per-variant summary, and counts."""

    test: str
    pairs: pd.DataFrame
    summary: pd.DataFrame
    counts: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------ kernels


@intrinsic
def _popcount(typingctx, x):  # pragma: no cover - compiled
    """LLVM's ctpop: one ``popcnt`` instruction (numba has no popcount of its own)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


#: Features of one variant over the samples missing at the other (see _pair_features):
#: counts of its codes 0/1/2 per group (slots 3 g + k), then sum y, sum y^2, sum code * y
#: over those samples where it is called.
_F = 9


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _pair_features(a, b, codes, mptr, midx, grp, y, fa, fb):  # pragma: no cover - compiled
    """Features of ``a`` over the samples missing at ``b`` (``fa``) and of ``b`` over those
    missing at ``a`` (``fb``), from the variants' lists of missing samples."""
    fa[:] = 0.0
    fb[:] = 0.0
    for f, x, other in ((fa, a, b), (fb, b, a)):
        for p in range(mptr[other], mptr[other + 1]):
            s = midx[p]
            k = codes[x, s]
            if k < 3:
                v = y[s]
                f[3 * grp[s] + k] += 1.0
                f[6] += v
                f[7] += v * v
                f[8] += k * v


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _block_features(CS, rows, cols, mptr, midx, grp, y, sums, out):  # pragma: no cover
    """:func:`_pair_features` of every ``rows`` variant over the samples missing at each
    ``cols`` variant, ``out[f, j, i]``, from ``CS`` (sample-major codes): the loop over the
    rows runs over contiguous memory. The phenotype sums only if ``sums``."""
    out[:] = 0.0
    m = rows.shape[0]
    line = np.empty(m, np.int8)
    for j in range(cols.shape[0]):
        b = cols[j]
        for p in range(mptr[b], mptr[b + 1]):
            s = midx[p]
            g = 3 * grp[s]
            v = np.float32(y[s])
            for i in range(m):
                line[i] = CS[s, rows[i]]
            for i in range(m):
                k = line[i]
                out[g, j, i] += np.float32(1.0) if k == 0 else np.float32(0.0)
                out[g + 1, j, i] += np.float32(1.0) if k == 1 else np.float32(0.0)
                out[g + 2, j, i] += np.float32(1.0) if k == 2 else np.float32(0.0)
            if sums:
                for i in range(m):
                    k = line[i]
                    w = v if k < 3 else np.float32(0.0)
                    out[6, j, i] += w
                    out[7, j, i] += w * v
                    out[8, j, i] += w * k


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _cells(a, b, H, T, wb, tot, fa, fb, cnt):  # pragma: no cover - compiled
    """The pair's 3x3 genotype table per group, ``cnt[g, ka, kb]``, over the samples called
    at both variants: the 1/2 cells by popcount, the rest from the variants' totals less the
    samples missing at the other variant."""
    for g in range(wb.shape[0] - 1):
        n11 = 0
        n12 = 0
        n21 = 0
        n22 = 0
        for w in range(wb[g], wb[g + 1]):
            ha = H[a, w]
            ta = T[a, w]
            hb = H[b, w]
            tb = T[b, w]
            n11 += _popcount(ha & hb)
            n12 += _popcount(ha & tb)
            n21 += _popcount(ta & hb)
            n22 += _popcount(ta & tb)
        r0 = tot[a, g, 0] - fa[3 * g]
        r1 = tot[a, g, 1] - fa[3 * g + 1]
        r2 = tot[a, g, 2] - fa[3 * g + 2]
        c1 = tot[b, g, 1] - fb[3 * g + 1]
        c2 = tot[b, g, 2] - fb[3 * g + 2]
        cnt[g, 1, 1] = n11
        cnt[g, 1, 2] = n12
        cnt[g, 2, 1] = n21
        cnt[g, 2, 2] = n22
        cnt[g, 1, 0] = r1 - n11 - n12
        cnt[g, 2, 0] = r2 - n21 - n22
        cnt[g, 0, 1] = c1 - n11 - n21
        cnt[g, 0, 2] = c2 - n12 - n22
        cnt[g, 0, 0] = r0 - cnt[g, 0, 1] - cnt[g, 0, 2]


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _linear_sums(a, b, cnt, fa, fb, vstats, total, out):  # pragma: no cover - compiled
    """Sums over the samples called at both variants, in ``out``: n, sum a, a^2, b, b^2, ab,
    a^2 b, a b^2, a^2 b^2, y, y^2, a y, b y (sum a b y is added by the caller)."""
    m1 = fa[1]
    m2 = fa[2]
    l1 = fb[1]
    l2 = fb[2]
    n11 = float(cnt[0, 1, 1])
    n12 = float(cnt[0, 1, 2])
    n21 = float(cnt[0, 2, 1])
    n22 = float(cnt[0, 2, 2])
    out[0] = total[0] - vstats[a, 3] - (fa[0] + m1 + m2)
    out[1] = vstats[a, 0] - (m1 + 2.0 * m2)
    out[2] = vstats[a, 1] - (m1 + 4.0 * m2)
    out[3] = vstats[b, 0] - (l1 + 2.0 * l2)
    out[4] = vstats[b, 1] - (l1 + 4.0 * l2)
    out[5] = n11 + 2.0 * (n12 + n21) + 4.0 * n22
    out[6] = n11 + 2.0 * n12 + 4.0 * n21 + 8.0 * n22
    out[7] = n11 + 4.0 * n12 + 2.0 * n21 + 8.0 * n22
    out[8] = n11 + 4.0 * (n12 + n21) + 16.0 * n22
    out[9] = total[1] - vstats[a, 4] - fa[6]
    out[10] = total[2] - vstats[a, 5] - fa[7]
    out[11] = vstats[a, 2] - fa[8]
    out[12] = vstats[b, 2] - fb[8]


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _invert4(A, inv, M):  # pragma: no cover - compiled
    """Inverse of a symmetric 4x4 matrix by Gauss-Jordan with partial pivoting; False when
    singular."""
    for i in range(4):
        for j in range(4):
            M[i, j] = A[i, j]
            M[i, j + 4] = 1.0 if i == j else 0.0
    for c in range(4):
        p = c
        for r in range(c + 1, 4):
            if abs(M[r, c]) > abs(M[p, c]):
                p = r
        if abs(M[p, c]) < 1e-300:
            return False
        if p != c:
            for j in range(8):
                t = M[c, j]
                M[c, j] = M[p, j]
                M[p, j] = t
        d = 1.0 / M[c, c]
        for j in range(8):
            M[c, j] *= d
        for r in range(4):
            if r != c:
                f = M[r, c]
                if f != 0.0:
                    for j in range(8):
                        M[r, j] -= f * M[c, j]
    for i in range(4):
        for j in range(4):
            inv[i, j] = M[i, j + 4]
    return True


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _covariance_ok(inv):  # pragma: no cover - compiled
    """plink1.9's check of the fitted covariance: no parameter correlated above 0.99999 with
    an earlier one."""
    for i in range(1, 4):
        limit = 0.99999 * np.sqrt(inv[i, i])
        for j in range(i):
            if inv[i, j] > limit * np.sqrt(inv[j, j]):
                return False
    return True


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _linear_stat(s, vif, coef, ws):  # pragma: no cover - compiled
    """Wald chi-square of the product term from the sums ``s`` (see :func:`_linear_sums`, with
    ``s[13]`` = sum a b y), plink1.9's checks first; -1 when the pair is not tested."""
    n = s[0]
    if n <= 4.0:
        return -1.0
    va = s[2] - s[1] * s[1] / n
    vb = s[4] - s[3] * s[3] / n
    vab = s[8] - s[5] * s[5] / n
    if va <= 0.0 or vb <= 0.0 or vab <= 0.0:
        return -1.0
    r12 = (s[5] - s[1] * s[3] / n) / np.sqrt(va * vb)
    r13 = (s[6] - s[1] * s[5] / n) / np.sqrt(va * vab)
    r23 = (s[7] - s[3] * s[5] / n) / np.sqrt(vb * vab)
    if r12 > 0.999 or r13 > 0.999 or r23 > 0.999:
        return -1.0
    det = 1.0 + 2.0 * r12 * r13 * r23 - r12 * r12 - r13 * r13 - r23 * r23
    if abs(det) < 2.0**-30:
        return -1.0
    if (1.0 - r23 * r23) / det > vif or (1.0 - r13 * r13) / det > vif:
        return -1.0
    if (1.0 - r12 * r12) / det > vif:
        return -1.0
    M, A, inv, H, xy, beta, x = ws
    A[0, 0] = n
    A[0, 1] = A[1, 0] = s[1]
    A[0, 2] = A[2, 0] = s[3]
    A[0, 3] = A[3, 0] = s[5]
    A[1, 1] = s[2]
    A[1, 2] = A[2, 1] = s[5]
    A[1, 3] = A[3, 1] = s[6]
    A[2, 2] = s[4]
    A[2, 3] = A[3, 2] = s[7]
    A[3, 3] = s[8]
    if not _invert4(A, inv, M) or not _covariance_ok(inv):
        return -1.0
    xy[0] = s[9]
    xy[1] = s[11]
    xy[2] = s[12]
    xy[3] = s[13]
    for i in range(4):
        beta[i] = inv[i, 0] * xy[0] + inv[i, 1] * xy[1] + inv[i, 2] * xy[2] + inv[i, 3] * xy[3]
    rss = s[10] - (beta[0] * xy[0] + beta[1] * xy[1] + beta[2] * xy[2] + beta[3] * xy[3])
    sigma = rss / (n - 4.0)
    if sigma < 1e-20 / max(inv[1, 1], inv[2, 2], inv[3, 3]):
        return -1.0
    coef[0] = beta[3]
    return beta[3] * beta[3] / (inv[3, 3] * sigma)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _logistic_stat(cnt, coef, ws):  # pragma: no cover - compiled
    """Wald chi-square of the product term of a logistic fit on the 9 cells of the pair's
    genotype table (``cnt[0]`` controls, ``cnt[1]`` cases); -1 when the pair is not tested."""
    n = 0.0
    for k in range(3):
        for m in range(3):
            n += cnt[0, k, m] + cnt[1, k, m]
    if n <= 4.0:
        return -1.0
    if cnt[0, 1, 1] + cnt[1, 1, 1] == 0:
        # plink1.9: the design is not of full rank if a 2x2 square of the table is empty
        for k0 in range(2):
            for m0 in range(2):
                empty = True
                for k in range(k0, k0 + 2):
                    for m in range(m0, m0 + 2):
                        if cnt[0, k, m] + cnt[1, k, m] > 0:
                            empty = False
                if empty:
                    return -1.0
    M, A, inv, H, grad, beta, x = ws
    beta[:] = 0.0
    converged = False
    for _ in range(_LOGISTIC_MAX_ITER):
        H[:] = 0.0
        grad[:] = 0.0
        for k in range(3):
            for m in range(3):
                total = cnt[0, k, m] + cnt[1, k, m]
                if total == 0:
                    continue
                x[0] = 1.0
                x[1] = k
                x[2] = m
                x[3] = k * m
                eta = beta[0] + beta[1] * x[1] + beta[2] * x[2] + beta[3] * x[3]
                p = 1.0 / (1.0 + np.exp(-eta))
                r = cnt[1, k, m] - total * p
                w = total * p * (1.0 - p)
                for i in range(4):
                    grad[i] += r * x[i]
                    for j in range(4):
                        H[i, j] += w * x[i] * x[j]
        if not _invert4(H, inv, M):
            return -1.0
        largest = 0.0
        for i in range(4):
            step = inv[i, 0] * grad[0] + inv[i, 1] * grad[1] + inv[i, 2] * grad[2]
            step += inv[i, 3] * grad[3]
            x[i] = step
            largest = max(largest, abs(step))
        for i in range(4):
            beta[i] += x[i]
        if not np.isfinite(largest):
            return -1.0
        if largest < _LOGISTIC_TOL:
            converged = True
            break
    if not converged:
        return -1.0
    for i in range(1, 4):
        if inv[i, i] < 1e-20 or not np.isfinite(inv[i, i]):
            return -1.0
    if not _covariance_ok(inv):
        return -1.0
    coef[0] = beta[3]
    return beta[3] * beta[3] / inv[3, 3]


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _fast_group(c):  # pragma: no cover - compiled
    """Log odds ratio of the allele-pair table of one group and its variance, with Ueki and
    Cordell's corrections (plink1.9's ``fepi_counts_to_stats``, after Howey's CASSI)."""
    c11 = 4.0 * c[0, 0] + 2.0 * (c[0, 1] + c[1, 0]) + c[1, 1]
    c12 = 4.0 * c[0, 2] + 2.0 * (c[0, 1] + c[1, 2]) + c[1, 1]
    c21 = 4.0 * c[2, 0] + 2.0 * (c[1, 0] + c[2, 1]) + c[1, 1]
    c22 = 4.0 * c[2, 2] + 2.0 * (c[1, 2] + c[2, 1]) + c[1, 1]
    full = True
    for k in range(3):
        for m in range(3):
            if c[k, m] == 0:
                full = False
    add = 0.0
    if not full:
        c11 += 4.5
        c12 += 4.5
        c21 += 4.5
        c22 += 4.5
        add = 0.5
    r11 = 1.0 / c11
    r12 = 1.0 / c12
    r21 = 1.0 / c21
    r22 = 1.0 / c22
    lor = np.log(c11 * c22 * r12 * r21)
    b2 = (r11 - r12) ** 2
    b3 = (r11 - r21) ** 2
    b5 = (r11 - r12 - r21 + r22) ** 2
    b6 = (r22 - r12) ** 2
    b8 = (r22 - r21) ** 2
    corner = r11 * r11 * (c[0, 0] + add) + r12 * r12 * (c[0, 2] + add)
    corner += r21 * r21 * (c[2, 0] + add) + r22 * r22 * (c[2, 2] + add)
    edge = b2 * (c[0, 1] + add) + b3 * (c[1, 0] + add) + b6 * (c[1, 2] + add)
    edge += b8 * (c[2, 1] + add)
    return lor, 4.0 * (4.0 * corner + edge) + b5 * (c[1, 1] + add)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _fast_stat(cnt):  # pragma: no cover - compiled
    lor1, v1 = _fast_group(cnt[1])
    lor0, v0 = _fast_group(cnt[0])
    z = (lor1 - lor0) ** 2 / (v1 + v0)
    return z if np.isfinite(z) else -1.0


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
def _pair_stat(test, a, b, d, vif, zab, fa, fb, cnt, s, coef, ws):  # pragma: no cover
    H, T, wb, tot, codes, mptr, midx, grp, y, vstats, total = d
    _cells(a, b, H, T, wb, tot, fa, fb, cnt)
    if test == 0:
        _linear_sums(a, b, cnt, fa, fb, vstats, total, s)
        s[13] = zab
        return _linear_stat(s, vif, coef, ws)
    if test == 1:
        return _logistic_stat(cnt, coef, ws)
    return _fast_stat(cnt)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _workspace():  # pragma: no cover - compiled
    """Buffers of the per-pair fits, made once per kernel call."""
    return (np.empty((4, 8)), np.empty((4, 4)), np.empty((4, 4)), np.empty((4, 4)),
            np.empty(4), np.empty(4), np.empty(4))  # fmt: skip


@numba.njit(cache=True, nogil=True)
def _buffers():  # pragma: no cover - compiled
    """Per-call buffers of the pair loops: table, sums, coefficient, features, fit space."""
    cnt = np.zeros((2, 3, 3), np.int64)
    return cnt, np.zeros(14), np.zeros(1), np.zeros(_F), np.zeros(_F), _workspace()


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _tile_kernel(
    test, rows, cols, d, Z, FA, FB, inset, vif, alpha2, stat, coef, rsum, csum
):  # pragma: no cover
    """Every pair of ``rows`` x ``cols`` (variant indices): ``b > a`` when ``inset`` is empty
    (all pairs), else ``b != a`` and not ``b < a`` with ``b`` in the set too. ``FA``/``FB``:
    the block's missing-sample features (:func:`_block_features`, rows over columns and
    columns over rows, both ``[f, i, j]``). Statistic (-1 untested) and product-term
    coefficient into ``stat``/``coef``, and per row and per column: valid tests, tests with chi-square >=
    ``alpha2``, best chi-square and partner."""
    cnt, s, c, fa, fb, ws = _buffers()
    for i in range(rows.shape[0]):
        a = rows[i]
        for j in range(cols.shape[0]):
            b = cols[j]
            stat[i, j] = -2.0
            if inset.shape[0] == 0:
                if b <= a:
                    continue
            elif b == a or (inset[b] and b < a):
                continue
            for f in range(_F):
                fa[f] = FA[f, i, j]
                fb[f] = FB[f, i, j]
            zab = Z[i, j] if test == 0 else 0.0
            z = _pair_stat(test, a, b, d, vif, zab, fa, fb, cnt, s, c, ws)
            stat[i, j] = z
            coef[i, j] = c[0]
            if z < 0.0:
                continue
            rsum[i, 0] += 1.0
            csum[j, 0] += 1.0
            if z >= alpha2:
                rsum[i, 1] += 1.0
                csum[j, 1] += 1.0
            if z > rsum[i, 2]:
                rsum[i, 2] = z
                rsum[i, 3] = b
            if z > csum[j, 2]:
                csum[j, 2] = z
                csum[j, 3] = a


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _exact_kernel(test, pa, pb, d, vif, stat, coef):  # pragma: no cover - compiled
    """The listed pairs again, one at a time from the lists of missing samples, with
    ``sum a b y`` in double precision (linear test)."""
    codes = d[4]
    y = d[8]
    cnt, s, c, fa, fb, ws = _buffers()
    for p in range(pa.shape[0]):
        a = pa[p]
        b = pb[p]
        zab = 0.0
        if test == 0:
            for t in range(codes.shape[1]):
                ka = codes[a, t]
                kb = codes[b, t]
                if ka < 3 and kb < 3:
                    zab += ka * kb * y[t]
        _pair_features(a, b, codes, d[5], d[6], d[7], y, fa, fb)
        stat[p] = _pair_stat(test, a, b, d, vif, zab, fa, fb, cnt, s, c, ws)
        coef[p] = c[0]


# ------------------------------------------------------------------------------ driver


@dataclass
class _Genotypes:
    """The scan's inputs, over the kept samples and variants (internal order: controls first,
    then cases, each group padded to whole 64-bit words in the bit planes)."""

    index: np.ndarray  # file index of each kept variant
    data: tuple  # H, T, word bounds, totals, codes, missing lists, groups, y, sums, totals
    G: np.ndarray | None  # float32 (variants, samples) allele counts, 0 where missing
    GY: np.ndarray | None  # the same times the centred phenotype
    CS: np.ndarray  # (samples, variants) codes, sample-major
    n_samples: int
    dropped: dict


def check_settings(settings: ScanSettings) -> None:
    """Refuse thresholds outside (0, 1], an unknown test and a thread count below 1."""
    for value, option in (
        (settings.threshold, "--threshold"),
        (settings.summary_threshold, "--summary-threshold"),
    ):
        if not (np.isfinite(value) and 0.0 < value <= 1.0):
            raise InputError(
                f"{value} is not a P-value threshold: it must be in (0, 1]",
                where=option,
                fix="use for example 1e-4 (plink1.9's --epi1) or 0.01 (its --epi2)",
            )
    if settings.test not in ("auto", *TESTS):
        raise InputError(
            f"unknown test {settings.test!r}",
            where="--test",
            fix="use auto, linear, logistic or fast",
        )
    if settings.threads is not None and settings.threads < 1:
        raise InputError(f"--threads is {settings.threads}", where="--threads", fix="use 1 or more")


def _choose_test(y: np.ndarray, kind: str, test: str) -> str:
    """The test for this phenotype (``y``: its non-missing values); refuse a mismatch."""
    binary = kind == "binary"
    if test == "auto":
        test = "logistic" if binary else "linear"
    if test in ("logistic", "fast") and not binary:
        raise InputError(
            f"test {test!r} needs a case/control phenotype, this one is quantitative",
            where="--test",
            fix="use --test linear, or a phenotype coded 1/2 (control/case) or 0/1",
        )
    if test == "linear" and binary:
        raise InputError(
            "test 'linear' on a case/control phenotype",
            where="--test",
            fix="use --test logistic or fast (plink1.9 runs logistic regression here)",
        )
    if binary:
        cases, controls = int((y == 1).sum()), int((y == 0).sum())
        if cases < 2 or controls < 2:
            raise InputError(
                f"{cases} cases and {controls} controls",
                fix="the case/control tests need at least two cases and two controls",
            )
    elif y.size == 0 or np.max(y) == np.min(y):
        raise InputError("the phenotype is constant or missing", fix="give a phenotype that varies")
    return test


def _read_codes(source, keep: np.ndarray) -> np.ndarray:
    """Counts of each variant's A1 as int8 codes (3: missing), (variants, kept samples); A1 is
    the minor allele by frequency over all samples of the file, as plink1.9 sets it."""
    codes = np.empty((source.n_variants, keep.size), dtype=np.int8)
    for index, block in source.chunks(max(1, 4_000_000 // max(1, source.n_samples))):
        called = ~np.isnan(block)
        flip = np.where(called, block, 0.0).sum(axis=0, dtype=np.float64) > called.sum(axis=0)
        part = block[keep]
        part = np.where(flip, 2.0 - part, part)
        codes[index] = np.where(np.isnan(part), 3, np.rint(part)).astype(np.int8).T
    return codes


def _eligible(variants: pd.DataFrame, codes: np.ndarray) -> tuple[np.ndarray, dict]:
    """Variants scanned: autosomal and not monomorphic among the kept samples."""
    chrom = variants["chrom"].astype(str).str.upper().to_numpy()
    autosomal = ~np.isin(chrom, list(NON_AUTOSOMAL))
    seen = np.stack([(codes == k).any(axis=1) for k in range(3)], axis=1)
    polymorphic = seen.sum(axis=1) >= 2
    keep = autosomal & polymorphic
    dropped = {"non_autosomal": int((~autosomal).sum())}
    dropped["monomorphic"] = int((autosomal & ~polymorphic).sum())
    return keep, dropped


def _planes(codes: np.ndarray, sizes: np.ndarray) -> tuple:
    """Bit planes of the 1 and 2 codes, each group on whole words, and the word bounds."""
    Hs, Ts, bounds = [], [], [0]
    for g in range(sizes.size - 1):
        part = codes[:, sizes[g] : sizes[g + 1]]
        pad = (-part.shape[1]) % 64
        for k, out in ((1, Hs), (2, Ts)):
            bits = np.packbits(part == k, axis=1, bitorder="little")
            bits = np.pad(bits, ((0, 0), (0, pad // 8)))
            out.append(np.ascontiguousarray(bits).view(np.uint64))
        bounds.append(bounds[-1] + Hs[-1].shape[1])
    H = np.ascontiguousarray(np.concatenate(Hs, axis=1))
    T = np.ascontiguousarray(np.concatenate(Ts, axis=1))
    return H, T, np.asarray(bounds, dtype=np.int64)


def _prepare(source, y: np.ndarray, test: str) -> _Genotypes:
    """Codes, bit planes, per-variant totals and sums, missing lists of the scan."""
    keep = np.flatnonzero(np.isfinite(y))
    codes = _read_codes(source, keep)
    eligible, dropped = _eligible(source.variants, codes)
    index = np.flatnonzero(eligible)
    yk = y[keep]
    groups = [np.arange(keep.size)] if test == "linear" else [
        np.flatnonzero(yk == 0), np.flatnonzero(yk == 1)
    ]  # fmt: skip
    order = np.concatenate(groups)
    codes = np.ascontiguousarray(codes[index][:, order])
    yk = yk[order]
    grp = np.concatenate([np.full(g.size, i, dtype=np.int8) for i, g in enumerate(groups)])
    sizes = np.cumsum([0] + [g.size for g in groups])
    H, T, wb = _planes(codes, sizes)
    tot = np.zeros((index.size, 2, 3), dtype=np.int64)
    for g in range(len(groups)):
        for k in range(3):
            tot[:, g, k] = (codes[:, sizes[g] : sizes[g + 1]] == k).sum(axis=1)
    missing = codes == 3
    mptr = np.concatenate([[0], np.cumsum(missing.sum(axis=1))]).astype(np.int64)
    midx = np.nonzero(missing)[1].astype(np.int64)
    if test == "linear":
        yk = yk - yk.mean()  # the product term does not depend on it; the sums are smaller
    counted = np.where(missing, 0, codes).astype(np.float32)
    vstats = np.stack(
        [counted.sum(1, dtype=np.float64), (counted * counted).sum(1, dtype=np.float64),
         counted.astype(np.float64) @ yk, missing.sum(1), missing @ yk, missing @ (yk * yk)], 1,
    )  # fmt: skip
    total = np.array([yk.size, yk.sum(), (yk * yk).sum()])
    G = GY = None
    if test == "linear":
        G = counted
        GY = counted * yk.astype(np.float32)
    data = (H, T, wb, tot, codes, mptr, midx, grp, yk, vstats, total)
    CS = np.ascontiguousarray(codes.T)
    return _Genotypes(index, data, G, GY, CS, int(keep.size), dropped)


def _alpha(p: float) -> float:
    """The chi-square (1 df, plink1.9's normal scale) at which ``P = p``."""
    return float(special.ndtri(p / 2.0) ** 2)


def _tiles(rows: np.ndarray, n: int, triangular: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Blocks of (row variants, column variants) covering the pairs to test."""
    out = []
    for r0 in range(0, rows.size, _TILE):
        r = rows[r0 : r0 + _TILE]
        start = int(r[0]) + 1 if triangular else 0
        start -= start % _TILE if triangular else 0
        for c0 in range(start, n, _TILE):
            out.append((r, np.arange(c0, min(n, c0 + _TILE), dtype=np.int64)))
    return out


@dataclass
class _Job:
    """One scan's fixed arguments for the tiles."""

    code: int
    geno: _Genotypes
    inset: np.ndarray
    vif: float
    alpha1: float
    alpha2: float

    def tile(self, tile: tuple[np.ndarray, np.ndarray]) -> tuple:
        """Candidates (chi-square within the margin of ``alpha1``) and summary sums of one
        block of pairs."""
        r, c = tile
        geno = self.geno
        mptr, midx, grp, yk = geno.data[5:9]
        Z = np.zeros((1, 1), np.float32)
        if self.code == 0:
            Z = _block(geno.GY, r) @ _block(geno.G, c).T
        # single precision: counts are exact, the phenotype sums are recomputed for reported pairs
        FA = np.empty((_F, c.size, r.size), np.float32)
        FB = np.empty((_F, r.size, c.size), np.float32)
        _block_features(geno.CS, r, c, mptr, midx, grp, yk, self.code == 0, FA)
        _block_features(geno.CS, c, r, mptr, midx, grp, yk, self.code == 0, FB)
        FA = np.ascontiguousarray(FA.transpose(0, 2, 1))  # the kernel reads along columns
        stat = np.empty((r.size, c.size))
        coef = np.zeros((r.size, c.size))
        rsum = np.zeros((r.size, 4))
        csum = np.zeros((c.size, 4))
        _tile_kernel(
            self.code, r, c, geno.data, Z, FA, FB, self.inset, self.vif, self.alpha2,
            stat, coef, rsum, csum,
        )  # fmt: skip
        hit = np.nonzero(stat >= self.alpha1 * _MARGIN)
        return r, c, r[hit[0]], c[hit[1]], stat[hit], coef[hit], rsum, csum


def _block(X: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of ``X``: a view when they are consecutive (no copy for BLAS)."""
    if idx.size and idx[-1] - idx[0] == idx.size - 1:
        return X[idx[0] : idx[-1] + 1]
    return X[idx]


def _run_tiles(job: _Job, rows: np.ndarray, threads: int) -> tuple[list, np.ndarray, int]:
    """Every tile on ``threads`` threads: candidate pairs and per-variant summary sums."""
    n = job.geno.index.size
    summary = np.zeros((n, 4))
    found: list[list] = [[], [], [], []]
    tested = 0.0
    with ThreadPoolExecutor(threads, thread_name_prefix="genoformer-epi") as pool:
        for r, c, *hits, rsum, csum in pool.map(job.tile, _tiles(rows, n, job.inset.size == 0)):
            for part, value in zip(found, hits, strict=True):
                part.append(value)
            tested += rsum[:, 0].sum()  # each pair once, on its row
            _merge(summary, r, rsum)
            _merge(summary, c, csum)
    return [np.concatenate(part) for part in found], summary, int(tested)


def _merge(summary: np.ndarray, idx: np.ndarray, part: np.ndarray) -> None:
    summary[idx, 0] += part[:, 0]
    summary[idx, 1] += part[:, 1]
    better = part[:, 2] > summary[idx, 2]
    summary[idx[better], 2] = part[better, 2]
    summary[idx[better], 3] = part[better, 3]


def _rows(source, geno: _Genotypes, against) -> tuple[np.ndarray, np.ndarray]:
    """The first variants of the pairs (internal indices) and the set mask (empty: all
    pairs)."""
    n = geno.index.size
    if against is None:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.bool_)
    position = np.full(source.n_variants, -1, dtype=np.int64)
    position[geno.index] = np.arange(n)
    chosen = position[np.asarray(against, dtype=np.int64)]
    rows = np.unique(chosen[chosen >= 0])
    inset = np.zeros(n, dtype=np.bool_)
    inset[rows] = True
    geno.dropped["against_not_scanned"] = int((chosen < 0).sum())
    return rows, inset


def scan_pairs(source, phenotype: np.ndarray, kind: str, settings: ScanSettings) -> ScanResult:
    """Test every pair of variants of ``source`` (or the ``settings.against`` set against
    every variant) for interaction with ``phenotype`` (float, NaN missing; 0/1 when ``kind``
    is ``"binary"``). Pairs with P below ``settings.threshold`` come back in plink1.9's
    columns, in its order (first variant in file order, then the second)."""
    check_settings(settings)
    y = np.asarray(phenotype, dtype=np.float64)
    test = _choose_test(y[np.isfinite(y)], kind, settings.test)
    code = TESTS.index(test)
    geno = _prepare(source, y, test)
    rows, inset = _rows(source, geno, settings.against)
    n = geno.index.size
    if n < 2 or rows.size == 0:
        raise InputError(
            f"{n} variants left to scan ({geno.dropped['monomorphic']} monomorphic, "
            f"{geno.dropped['non_autosomal']} not autosomal), {rows.size} of the set among them",
            file=source.path,
            fix="the scan needs 2+ polymorphic autosomal variants (and 1+ in the --against list)",
        )
    alpha1 = _alpha(settings.threshold)
    job = _Job(code, geno, inset, settings.vif, alpha1, _alpha(settings.summary_threshold))
    (pa, pb, stat, coef), summary, tested = _run_tiles(
        job, rows, settings.threads or numba.get_num_threads()
    )
    pa, pb = pa.astype(np.int64), pb.astype(np.int64)
    if pa.size:  # again, one pair at a time (sum a*b*y in double precision)
        stat, coef = np.empty(pa.size), np.empty(pa.size)
        _exact_kernel(code, pa, pb, geno.data, settings.vif, stat, coef)
    keep = stat >= alpha1
    pairs = _pairs_table(
        source.variants, geno.index, pa[keep], pb[keep], stat[keep], coef[keep], test
    )
    total = (
        n * (n - 1) // 2
        if inset.size == 0
        else rows.size * (n - 1) - rows.size * (rows.size - 1) // 2
    )
    counts = {
        "test": test,
        "samples": geno.n_samples,
        "variants_scanned": int(n),
        **geno.dropped,
        "pairs": int(total),
        "pairs_tested": int(tested),
        "pairs_reported": int(len(pairs)),
    }
    return ScanResult(
        test, pairs, _summary_table(source.variants, geno.index, rows, summary), counts
    )


def _pairs_table(variants, index, pa, pb, stat, coef, test: str) -> pd.DataFrame:
    """plink1.9's .epi.qt / .epi.cc columns, ordered by first then second variant."""
    order = np.lexsort((index[pb], index[pa]))
    i1, i2 = index[pa[order]], index[pb[order]]
    stat, coef = stat[order], coef[order]
    chrom, ids = variants["chrom"].to_numpy(), variants["id"].to_numpy()
    frame = pd.DataFrame({"CHR1": chrom[i1], "SNP1": ids[i1], "CHR2": chrom[i2], "SNP2": ids[i2]})
    if test == "linear":
        frame["BETA_INT"] = coef
    elif test == "logistic":
        frame["OR_INT"] = np.exp(coef)
    frame["STAT"] = stat
    frame["P"] = 2.0 * special.ndtr(-np.sqrt(stat))
    return frame


def _summary_table(variants, index, rows, summary) -> pd.DataFrame:
    """plink1.9's .summary: per variant (of the set, with --against) the pairs with P below
    the summary threshold, the valid tests, their ratio, the best chi-square and partner."""
    s = summary[rows]
    has = s[:, 0] > 0
    partner = index[np.where(has, s[:, 3], 0).astype(np.int64)]
    chrom, ids = variants["chrom"].to_numpy(), variants["id"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        prop = s[:, 1] / s[:, 0]
    return pd.DataFrame(
        {
            "CHR": chrom[index[rows]],
            "SNP": ids[index[rows]],
            "N_SIG": s[:, 1].astype(np.int64),
            "N_TOT": s[:, 0].astype(np.int64),
            "PROP": prop,
            "BEST_CHISQ": np.where(has, s[:, 2], np.nan),
            "BEST_CHR": np.where(has, chrom[partner], None),
            "BEST_SNP": np.where(has, ids[partner], None),
        }
    )
