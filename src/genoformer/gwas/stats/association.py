"""Per-variant association tests, additive model, as plink2 ``--glm`` and plink1.9 ``--assoc``.

Linear regression is vectorised over the variants of a chunk: one small (k x k) system per
variant from matrix products (Frisch-Waugh / Schur complement). Logistic and Firth
regression run compiled per-variant loops (numba, on ``numba.get_num_threads()`` threads
that release the GIL): each Newton step makes a few passes over the variant's samples in
double precision, with a vectorised exp.

Conventions matched to plink2 v2.00a3.5 (checked against its output in
``tests/gwas/stats/test_association_plink.py``):

- A1, the counted allele, is the minor allele by default, as plink2 ``--glm`` and plink1.9
  ``--assoc`` report it: allele frequencies over the chosen *founders* (both parent ids "0"
  in the .fam, as plink2 counts them), before samples without phenotype or covariates are
  dropped; on an exact tie ALT is A1 (plink2 makes REF the omitted, major allele when its
  frequency is >= 0.5). ``a1="alt"`` / ``"ref"`` fix it to ``.bim`` column 5 / 6.
- Only the ADD row per variant (``hide-covar``); samples with a missing phenotype or
  covariate are dropped for every variant, samples with a missing call for that variant only
  (``OBS_CT``).
- ERRCODE, in plink2's order: ``SAMPLE_CT<=PREDICTOR_CT``, ``CONST_OMITTED_ALLELE`` (all
  called genotypes equal), then plink2's collinearity check of every predictor but the
  intercept on the variant's called samples: ``CORR_TOO_HIGH`` (|r| > 0.999 between any two
  predictors, covariates included), ``VIF_INFINITE`` (singular correlation matrix),
  ``VIF_TOO_HIGH`` (any predictor's VIF above 50: the genotype's or a covariate's); then
  ``SEPARATION`` (``firth="never"`` only), ``LOGISTIC_CONVERGE_FAIL``,
  ``FIRTH_CONVERGE_FAIL`` and ``INVALID_RESULT`` (plink2's check of the fitted covariance
  matrix). The ``FIRTH?`` column comes with ``firth="fallback"`` only, as in plink2.
- Logistic regression: covariates enter as given (plink2's failure and stopping rules depend
  on their scale); Newton steps start from the covariates-only fit (plink2 starts from 0; the
  estimate is the same) and stop when every step is below 1e-6; plink2's failure rules.
- Firth fallback (``firth="fallback"``): Firth is used when the A1 dosage is 0 in cases or
  in controls, or only A1 is seen there (plink2 checks this before fitting), or when logistic
  regression fails. Firth regression is plink2 a3.5's algorithm step for step (start, step
  cap, halvings, stopping rule: see ``_firth_kernel``). plink2 runs it in single precision,
  and where the fit converges slowly (rare variants) its stop is decided by rounding in the
  penalised log-likelihood: its estimate is then an iterate one or two steps from ours,
  up to 6e-4 relative apart in OR (most Firth fits agree within 1e-5).
- ``offset`` (regenie's step 2, the LOCO predictions of ``gwas/stats/wgr.py``): subtracted
  from the phenotype of a linear test; a fixed term of every sample's linear predictor in
  the logistic and Firth fits (and the covariates-only start). A zero offset gives the same
  numbers bit for bit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numba
import numpy as np
import pandas as pd
from scipy import special
from threadpoolctl import threadpool_limits

from genoformer.engine.errors import InputError
from genoformer.gwas.stats.tails import chi2_sf, t_sf

GLM_LINEAR_COLUMNS = [
    "#CHROM", "POS", "ID", "REF", "ALT", "A1", "TEST", "OBS_CT",
    "BETA", "SE", "T_STAT", "P", "ERRCODE",
]  # fmt: skip
GLM_LOGISTIC_COLUMNS = [
    "#CHROM", "POS", "ID", "REF", "ALT", "A1", "FIRTH?", "TEST", "OBS_CT",
    "OR", "LOG(OR)_SE", "Z_STAT", "P", "ERRCODE",
]  # fmt: skip
ASSOC_COLUMNS = ["CHR", "SNP", "BP", "A1", "F_A", "F_U", "A2", "CHISQ", "P", "OR"]

#: plink2's defaults: --max-corr 0.999, --vif 50.
MAX_CORR = 0.999
MAX_VIF = 50.0
#: Newton-Raphson steps of logistic regression before plink2 keeps the last iterate.
LOGISTIC_MAX_ITER = 15
_TOL = 1e-6  # Newton converges quadratically: the estimate is then good to ~1e-12
#: (samples x variants) cells per block of the regressions: the working arrays take about 40
#: bytes per cell, so about 40 MB whatever the cohort size.
_BLOCK_CELLS = 1_000_000
#: Most genotype cells read from disk at once (float32: 16 MB); caps ``chunk_size``.
_READ_CELLS = 4_000_000
#: Blocks of a chunk computed at once (each on its own thread): each takes about 40 MB of
#: working arrays, so memory stays bounded whatever the number of cores (the compiled
#: kernels within a block use every thread).
_BLOCKS_AT_ONCE = 2
#: Variants per work item of the compiled parallel loops (buffers are made once per item).
_PER_ITEM = 8
# Compiled loops may reorder sums (SIMD); nothing is assumed about NaN or infinities.
_FASTMATH = {"reassoc", "contract"}
# exp by range reduction: adding 2^52 + 2^51 rounds to an integer kept in the low bits
_MAGIC = 6755399441055744.0
_MAGIC_BITS = int(np.float64(_MAGIC).view(np.int64))

Test = Literal["auto", "linear", "logistic", "chisq"]
Firth = Literal["fallback", "always", "never"]
A1 = Literal["alt", "ref", "minor"]


# --------------------------------------------------------------------------- helpers


def _in_threads(kernel: Callable[..., None], m: int, *args: Any) -> None:
    """Run a compiled kernel over variants ``0:m`` in slices on numba's number of threads
    (the kernels release the GIL; their last two arguments are the slice)."""
    threads = numba.get_num_threads()
    if threads <= 1 or m <= _PER_ITEM:
        kernel(*args, 0, m)
        return
    size = max(_PER_ITEM, -(-m // (4 * threads)))  # a few slices per thread for balance
    pool = _pool("glm", threads)
    list(pool.map(lambda lo: kernel(*args, lo, min(m, lo + size)), range(0, m, size)))


def _pool(kind: str, threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` threads for ``kind`` of work: ``"glm"`` for the
    slices of a compiled kernel, ``"blocks"`` for the sub-blocks of a chunk (apart, because
    a block waits on its kernels' slices)."""
    with _POOLS_LOCK:
        if (kind, threads) not in _POOLS:
            _POOLS[kind, threads] = ThreadPoolExecutor(
                threads, thread_name_prefix=f"genoformer-{kind}"
            )
        return _POOLS[kind, threads]


_POOLS: dict[tuple[str, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _prepare_phenotype(phenotype: Any, n: int, test: str) -> tuple[np.ndarray, str]:
    """Phenotype as float64 with NaN missing, and the test it calls for."""
    y = np.asarray(phenotype, dtype=np.float64).ravel()
    if y.shape[0] != n:
        raise InputError(
            f"phenotype has {y.shape[0]} values, the genotypes have {n} samples",
            fix="pass one value per sample, in the order of the genotype file's samples",
        )
    values = np.unique(y[np.isfinite(y)])
    binary = values.size <= 2 and (set(values) <= {0.0, 1.0} or set(values) <= {1.0, 2.0})
    if test == "auto":
        test = "logistic" if binary else "linear"
    if test in ("logistic", "chisq"):
        if not binary:
            raise InputError(
                f"{test} test needs a case/control phenotype (1/2 or 0/1), got values "
                f"{values[:5].tolist()}",
                fix="use the linear test (--test linear, test='linear') for a quantitative trait",
            )
        if set(values) <= {1.0, 2.0} and not set(values) <= {0.0, 1.0}:
            y = y - 1.0  # PLINK's 1 = control, 2 = case
    elif test != "linear":
        raise InputError(f"unknown test {test!r}", fix="use auto, linear, logistic or chisq")
    y[~np.isfinite(y)] = np.nan
    return y, test


def _prepare_covariates(covariates: Any, n: int) -> tuple[np.ndarray, list[str]]:
    """Covariates as float64 (n, c) with NaN missing, and their names."""
    if covariates is None:
        return np.empty((n, 0)), []
    if isinstance(covariates, pd.DataFrame):
        names = [str(c) for c in covariates.columns]
        C = covariates.to_numpy(dtype=np.float64)
    else:
        C = np.asarray(covariates, dtype=np.float64)
        if C.ndim == 1:
            C = C[:, None]
        names = [f"COV{i + 1}" for i in range(C.shape[1])]
    if C.shape[0] != n:
        raise InputError(
            f"covariates have {C.shape[0]} rows, the genotypes have {n} samples",
            fix="pass one row per sample, in the order of the genotype file's samples",
        )
    return C, names


def _design(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intercept plus standardised covariates, and intercept plus covariates as given;
    constant covariates are dropped."""
    sd = C.std(axis=0)
    keep = sd > 0
    Z = (C[:, keep] - C[:, keep].mean(axis=0)) / sd[keep]
    ones = np.ones((C.shape[0], 1))
    return np.hstack([ones, Z]), np.ascontiguousarray(np.hstack([ones, C[:, keep]]))


def _open(source: Any) -> Any:
    if isinstance(source, (str, os.PathLike)):
        from genoformer.gwas.io.genotypes import open_genotypes

        return open_genotypes(source)
    return source


def _a1_flip(G: np.ndarray, a1: str) -> np.ndarray:
    """Per-variant flag: count the REF (bim column 6) allele instead of ALT.

    ``G`` holds ALT counts of the samples whose frequencies decide the minor allele. On a
    tie (frequency exactly 0.5) ALT stays A1: plink2 omits (makes the reference) the
    major allele, REF when its frequency is >= 0.5.
    """
    m = G.shape[1]
    if a1 == "alt":
        return np.zeros(m, dtype=bool)
    if a1 == "ref":
        return np.ones(m, dtype=bool)
    if a1 == "minor":
        alt_ct = np.nansum(G, axis=0, dtype=np.float64)
        called = (~np.isnan(G)).sum(axis=0)
        return alt_ct > called
    raise InputError(f"unknown a1 {a1!r}", fix="use 'alt', 'ref' or 'minor'")


def _founder_rows(fam: pd.DataFrame, base: np.ndarray) -> np.ndarray | None:
    """Rows of ``base`` that are founders (both parent ids "0", as plink2 counts them, whether
    or not the parents are in the file), or None where that is every row (or none)."""
    if not {"father", "mother"} <= set(fam.columns):
        return None
    founder = (fam["father"].astype(str) == "0").to_numpy() & (
        fam["mother"].astype(str) == "0"
    ).to_numpy()
    rows = np.flatnonzero(founder[base])
    return None if rows.size in (0, base.size) else rows


def _pvalue_normal(z: np.ndarray) -> np.ndarray:
    return 2.0 * special.ndtr(-np.abs(z))


def _safe_inv(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched inverse; the second array flags singular systems."""
    bad = ~np.isfinite(H).all(axis=(1, 2))
    Hs = np.where(bad[:, None, None], np.eye(H.shape[1]), H)
    try:
        return np.linalg.inv(Hs), bad
    except np.linalg.LinAlgError:
        out = np.empty_like(Hs)
        for j in range(Hs.shape[0]):
            try:
                out[j] = np.linalg.inv(Hs[j])
            except np.linalg.LinAlgError:
                out[j] = np.eye(Hs.shape[1])
                bad[j] = True
        return out, bad


# --------------------------------------------------------------------------- checks


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _moments_kernel(
    Gt: np.ndarray,
    Ct: np.ndarray,
    y: np.ndarray,
    sc_all: np.ndarray,
    scc_all: np.ndarray,
    obs: np.ndarray,
    sums: np.ndarray,
    sgc: np.ndarray,
    sc: np.ndarray,
    scc: np.ndarray,
    start: int,
    stop: int,
) -> None:  # pragma: no cover - compiled
    """Sums over the called samples of variants ``start:stop``: count, g, g^2, g*y, y, min g,
    max g (``sums`` columns), g*c (``sgc``), c and c*c^T (``sc``, ``scc``: the full-sample
    sums ``sc_all``, ``scc_all`` less the samples whose call is missing). ``Ct`` holds the
    covariates, one row each."""
    n = Gt.shape[1]
    c = Ct.shape[0]
    y_all = y.sum()
    g = np.empty(n)
    missing = np.empty(n, dtype=np.int64)
    for j in range(start, stop):
        n_missing = 0
        lo = np.inf
        hi = -np.inf
        for i in range(n):
            v = np.float64(Gt[j, i])
            if np.isnan(v):
                g[i] = 0.0
                missing[n_missing] = i
                n_missing += 1
            else:
                g[i] = v
                lo = min(lo, v)
                hi = max(hi, v)
        s_g = 0.0
        s_gg = 0.0
        s_gy = 0.0
        for i in range(n):
            s_g += g[i]
            s_gg += g[i] * g[i]
            s_gy += g[i] * y[i]
        s_y = y_all
        for a in range(c):
            t = 0.0
            for i in range(n):
                t += g[i] * Ct[a, i]
            sgc[j, a] = t
            sc[j, a] = sc_all[a]
            for b in range(c):
                scc[j, a, b] = scc_all[a, b]
        for q in range(n_missing):
            i = missing[q]
            s_y -= y[i]
            for a in range(c):
                sc[j, a] -= Ct[a, i]
                for b in range(c):
                    scc[j, a, b] -= Ct[a, i] * Ct[b, i]
        obs[j] = n - n_missing
        sums[j, 0] = s_g
        sums[j, 1] = s_gg
        sums[j, 2] = s_gy
        sums[j, 3] = s_y
        sums[j, 4] = lo
        sums[j, 5] = hi


def _variant_checks(Gt: np.ndarray, C: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Sample counts, constant calls and plink2's collinearity checks, per variant.

    ``Gt`` is ``(variants, samples)`` float32 with NaN missing, ``C`` the non-constant
    covariates (without intercept). As plink2 (``CheckMaxCorrAndVif``): on each variant's
    called samples, the correlation matrix of all predictors but the intercept (genotype and
    covariates) is formed; any |r| > ``MAX_CORR`` gives CORR_TOO_HIGH, a singular matrix
    (Cholesky fails or reciprocal 1-norm condition below 1e-14) VIF_INFINITE, and any diagonal
    element of its inverse (a predictor's VIF) above ``MAX_VIF`` VIF_TOO_HIGH.
    """
    m = Gt.shape[0]
    c = C.shape[1]
    Ct = np.ascontiguousarray((C - C.mean(axis=0)).T)  # correlations are shift-free; less rounding
    obs = np.empty(m)
    sums = np.empty((m, 6))
    sgc = np.empty((m, c))
    sc = np.empty((m, c))
    scc = np.empty((m, c, c))
    y = np.ascontiguousarray(y, dtype=np.float64)
    sc_all = Ct.sum(axis=1)
    _in_threads(_moments_kernel, m, Gt, Ct, y, sc_all, Ct @ Ct.T, obs, sums, sgc, sc, scc)
    const = ~(sums[:, 5] > sums[:, 4])
    K = c + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        N = np.maximum(obs, 1.0)
        S = np.empty((m, K, K))
        S[:, 0, 0] = sums[:, 1] - sums[:, 0] ** 2 / N
        S[:, 0, 1:] = sgc - sums[:, :1] * sc / N[:, None]
        S[:, 1:, 0] = S[:, 0, 1:]
        S[:, 1:, 1:] = scc - sc[:, :, None] * sc[:, None, :] / N[:, None, None]
        d = 1.0 / np.sqrt(np.einsum("jaa->ja", S))
        R = S * d[:, :, None] * d[:, None, :]
        off = np.abs(R)
        off[:, np.arange(K), np.arange(K)] = 0.0
        corr_high = np.nan_to_num(off, nan=0.0).max(axis=(1, 2)) > MAX_CORR
        R[:, np.arange(K), np.arange(K)] = 1.0
        Rinv, singular = _safe_inv(np.nan_to_num(R, nan=0.0))
        norm1 = np.abs(R).sum(axis=1).max(axis=1)
        inv_norm1 = np.abs(Rinv).sum(axis=1).max(axis=1)
        vif = np.einsum("jaa->ja", Rinv)
        singular |= ~(1.0 / (norm1 * inv_norm1) >= 1e-14) | ~(vif > 0).all(axis=1)
        vif_high = (vif > MAX_VIF).any(axis=1)
    return {
        "obs": obs, "const": const, "corr_high": corr_high, "vif_infinite": singular,
        "vif_high": vif_high, "sum_g": sums[:, 0], "case_g": sums[:, 2], "n_case": sums[:, 3],
    }  # fmt: skip


# --------------------------------------------------------------------------- linear
def _linear_chunk(
    G: np.ndarray, y: np.ndarray, X: np.ndarray, obs: np.ndarray, sum_g: np.ndarray
) -> dict[str, np.ndarray]:
    """Linear regression of y on (X, g_j) for every column of G (NaN missing); ``obs`` and
    ``sum_g`` are each variant's count and sum of calls."""
    n, k = X.shape
    m = G.shape[1]
    M = np.isnan(G)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = sum_g / obs
    Gc = np.subtract(G, mu, dtype=np.float64)
    Gc[M] = 0.0
    Pk = (X[:, :, None] * X[:, None, :]).reshape(n, k * k)
    yy_all = y @ y
    Xy_all = X.T @ y
    if M.any():
        # Downdate the full-sample moments by the few missing samples of each variant.
        Ms = M.astype(np.float64)
        XX = (Pk.sum(axis=0)[None, :] - Ms.T @ Pk).reshape(m, k, k)
        Xy = Xy_all[None, :] - Ms.T @ (X * y[:, None])
        yy = yy_all - Ms.T @ (y * y)
        A_inv, _ = _safe_inv(XX)
    else:
        A_inv = np.broadcast_to(np.linalg.inv(X.T @ X), (m, k, k))
        Xy = np.broadcast_to(Xy_all, (m, k))
        yy = np.full(m, yy_all)
    Xg = Gc.T @ X
    gg = np.einsum("ij,ij->j", Gc, Gc)
    gy = Gc.T @ y
    AXg = np.einsum("jab,jb->ja", A_inv, Xg)
    AXy = np.einsum("jab,jb->ja", A_inv, Xy)
    resid_gg = gg - np.einsum("ja,ja->j", Xg, AXg)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = (gy - np.einsum("ja,ja->j", Xg, AXy)) / resid_gg
        rss = yy - np.einsum("ja,ja->j", Xy, AXy) - beta * beta * resid_gg
        df = obs - k - 1
        se = np.sqrt(rss / df / resid_gg)
        tstat = beta / se
    p = 2.0 * t_sf(np.abs(tstat), df)
    return {"beta": beta, "se": se, "stat": tstat, "p": p}


# --------------------------------------------------------------------------- logistic

_OK, _FAIL, _INVALID = 0, 1, 2


def _logistic_null(y: np.ndarray, X: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """Coefficients of the covariates-only model (start values for every variant), with
    ``offset`` (a known term of the linear predictor, e.g. a LOCO prediction) if given."""
    b = np.zeros(X.shape[1])
    b[0] = np.log(y.mean() / (1.0 - y.mean()))
    eta0 = np.zeros(y.shape[0]) if offset is None else offset
    for _ in range(50):
        p = special.expit(eta0 + X @ b)
        H = X.T @ (X * (p * (1 - p))[:, None])
        step = np.linalg.solve(H, X.T @ (y - p))
        b += step
        if np.abs(step).max() < 1e-12:
            break
    return b


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _load(Gt: np.ndarray, j: int, Z: np.ndarray, mask: np.ndarray) -> None:  # pragma: no cover
    """Variant ``j``'s calls into the last row of ``Z``; missing calls get 0 and mask 0."""
    k = Z.shape[0] - 1
    for i in range(Z.shape[1]):
        v = np.float64(Gt[j, i])
        if np.isnan(v):
            Z[k, i] = 0.0
            mask[i] = 0.0
        else:
            Z[k, i] = v
            mask[i] = 1.0


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _probabilities(
    Z: np.ndarray, coef: np.ndarray, p: np.ndarray, scratch: np.ndarray, offset: np.ndarray
) -> None:  # pragma: no cover - compiled
    """p = 1 / (1 + exp(-(offset + coef^T Z))), with an exp that vectorises (libm's does not):
    2^k by bits, exp of the remainder (|r| <= ln 2 / 2) by its Taylor series to r^12 (relative
    error < 1e-15); the linear predictor is clamped to +-708. A zero offset changes nothing."""
    K, n = Z.shape
    for i in range(n):
        scratch[i] = offset[i] + coef[0] * Z[0, i]
    for a in range(1, K):
        ca = coef[a]
        for i in range(n):
            scratch[i] += ca * Z[a, i]
    for i in range(n):
        x = -scratch[i]
        x = x if x < 708.0 else 708.0
        x = x if x > -708.0 else -708.0
        t = x * 1.4426950408889634 + _MAGIC
        k = t - _MAGIC
        r = (x - k * 0.6931471803691238) - k * 1.9082149292705877e-10
        q = 1.0 / 479001600.0
        q = q * r + 1.0 / 39916800.0
        q = q * r + 1.0 / 3628800.0
        q = q * r + 1.0 / 362880.0
        q = q * r + 1.0 / 40320.0
        q = q * r + 1.0 / 5040.0
        q = q * r + 1.0 / 720.0
        q = q * r + 1.0 / 120.0
        q = q * r + 1.0 / 24.0
        q = q * r + 1.0 / 6.0
        q = q * r + 0.5
        q = q * r + 1.0
        p[i] = q * r + 1.0
        scratch[i] = t
    bits = scratch.view(np.int64)
    for i in range(n):
        bits[i] = (bits[i] - _MAGIC_BITS + 1023) << 52  # 2^k
    for i in range(n):
        p[i] = 1.0 / (1.0 + p[i] * scratch[i])


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _information(
    Z: np.ndarray, w: np.ndarray, wz: np.ndarray, H: np.ndarray
) -> None:  # pragma: no cover
    """H = Z diag(w) Z^T."""
    K, n = Z.shape
    for a in range(K):
        for i in range(n):
            wz[i] = w[i] * Z[a, i]
        for b in range(a + 1):
            s = 0.0
            for i in range(n):
                s += wz[i] * Z[b, i]
            H[a, b] = s
            H[b, a] = s


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _project(Z: np.ndarray, r: np.ndarray, U: np.ndarray) -> None:  # pragma: no cover
    """U = Z r."""
    K, n = Z.shape
    for a in range(K):
        s = 0.0
        for i in range(n):
            s += Z[a, i] * r[i]
        U[a] = s


@numba.njit(cache=True, nogil=True)
def _cholesky(H: np.ndarray, L: np.ndarray) -> bool:  # pragma: no cover
    """Lower Cholesky factor of ``H`` into ``L``; False if ``H`` is not positive definite."""
    K = H.shape[0]
    for j in range(K):
        s = H[j, j]
        for q in range(j):
            s -= L[j, q] * L[j, q]
        if not s > 0.0:
            return False
        d = np.sqrt(s)
        L[j, j] = d
        for i in range(j + 1, K):
            t = H[i, j]
            for q in range(j):
                t -= L[i, q] * L[j, q]
            L[i, j] = t / d
            L[j, i] = 0.0
    return True


@numba.njit(cache=True, nogil=True)
def _cholesky_solve(L: np.ndarray, b: np.ndarray, x: np.ndarray) -> None:  # pragma: no cover
    K = L.shape[0]
    for i in range(K):
        t = b[i]
        for q in range(i):
            t -= L[i, q] * x[q]
        x[i] = t / L[i, i]
    for i in range(K - 1, -1, -1):
        t = x[i]
        for q in range(i + 1, K):
            t -= L[q, i] * x[q]
        x[i] = t / L[i, i]


@numba.njit(cache=True, nogil=True)
def _cholesky_inverse(L: np.ndarray, e: np.ndarray, Hinv: np.ndarray) -> None:  # pragma: no cover
    K = L.shape[0]
    for a in range(K):
        e[:] = 0.0
        e[a] = 1.0
        _cholesky_solve(L, e, Hinv[a])


@numba.njit(cache=True, nogil=True)
def _valid(Hinv: np.ndarray) -> bool:  # pragma: no cover
    """plink2's check of the covariance matrix (its validParameters): positive, finite
    variances and no correlation between two estimates above 0.99999."""
    K = Hinv.shape[0]
    for a in range(1, K):
        if not (Hinv[a, a] >= 1e-20 and np.isfinite(Hinv[a, a])):
            return False
    for a in range(1, K):
        for b in range(a):
            if Hinv[a, b] > 0.99999 * np.sqrt(Hinv[a, a] * Hinv[b, b]):
                return False
    return True


@numba.njit(cache=True, nogil=True)
def _workspace(Xt: np.ndarray) -> tuple:  # pragma: no cover - compiled
    """The buffers of one kernel's fits of y on (X, g_j), K = k + 1 coefficients: ``Z``
    (K x n, the covariate rows ``Xt`` filled in, the last row for g_j), ``mask`` and four
    more n-vectors, the K x K ``H``, ``L`` (zeros: its upper triangle stays 0) and ``Hinv``,
    and three K-vectors."""
    k, n = Xt.shape
    K = k + 1
    Z = np.empty((K, n))
    Z[:k] = Xt
    n1, n2, n3, n4, n5 = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    H, L, Hinv = np.empty((K, K)), np.zeros((K, K)), np.empty((K, K))
    return Z, n1, n2, n3, n4, n5, H, L, Hinv, np.empty(K), np.empty(K), np.empty(K)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _logistic_kernel(
    y: np.ndarray,
    Xt: np.ndarray,
    Gt: np.ndarray,
    offset: np.ndarray,
    b0: np.ndarray,
    tol: float,
    max_iter: int,
    fits: tuple[np.ndarray, np.ndarray, np.ndarray],
    start: int,
    stop: int,
) -> None:  # pragma: no cover - compiled
    """Newton-Raphson logistic regression of y on (X, g_j) for every row g_j of ``Gt``, into
    ``fits`` (see :func:`_store_fit`).

    Starts from the covariates-only fit ``b0``; stops when every step is below ``tol``.
    plink2's failure rules (its LogisticRegression): a NaN step; after 4 steps, a step
    (sum of |changes|) above 20 and twice the smallest so far, or after 7 steps one within
    1e-3 of 1; after ``max_iter`` steps any |coefficient| above 8e3 (else the last iterate is
    kept, as plink2 does). Converged fits with a |coefficient| above 6e4 fail too. The SE comes
    from the information matrix at the last iterate before the final step.
    """
    k, n = Xt.shape
    K = k + 1
    Z, mask, p, w, r, wz, H, L, Hinv, U, step, coef = _workspace(Xt)
    for j in range(start, stop):
        _load(Gt, j, Z, mask)
        coef[:k] = b0
        coef[k] = 0.0
        result = _FAIL
        min_delta = 1e9
        for it in range(max_iter):
            _probabilities(Z, coef, p, r, offset)
            for i in range(n):
                w[i] = p[i] * (1.0 - p[i]) * mask[i]
                r[i] = (y[i] - p[i]) * mask[i]
            _information(Z, w, wz, H)
            _project(Z, r, U)
            if not _cholesky(H, L):
                break
            _cholesky_solve(L, U, step)
            delta = 0.0
            largest = 0.0
            for a in range(K):
                delta += abs(step[a])
                largest = max(largest, abs(step[a]))
                coef[a] += step[a]
            if not np.isfinite(delta):
                break
            min_delta = min(min_delta, delta)
            if it > 3 and (
                (delta > 20.0 and delta > 2.0 * min_delta) or (it > 6 and abs(1.0 - delta) < 1e-3)
            ):
                break
            if largest < tol:
                result = _OK
                for a in range(K):
                    if abs(coef[a]) > 6e4:
                        result = _FAIL
                break
            if it == max_iter - 1:
                result = _OK
                for a in range(K):
                    if abs(coef[a]) > 8e3:
                        result = _FAIL
        if result == _OK:
            _cholesky_inverse(L, step, Hinv)
        _store_fit(fits, j, coef[k], Hinv, result)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _firth_state(
    Z: np.ndarray,
    mask: np.ndarray,
    y: np.ndarray,
    coef: np.ndarray,
    p: np.ndarray,
    w: np.ndarray,
    wz: np.ndarray,
    H: np.ndarray,
    L: np.ndarray,
    offset: np.ndarray,
) -> float:  # pragma: no cover - compiled
    """Fitted probabilities, weights, information matrix (its Cholesky factor in ``L``) and
    penalised log-likelihood at ``coef``; NaN where the information matrix is singular."""
    n = Z.shape[1]
    _probabilities(Z, coef, p, wz, offset)
    loglik = 0.0
    for i in range(n):
        w[i] = p[i] * (1.0 - p[i]) * mask[i]
        if mask[i] > 0.0:
            loglik += np.log(p[i]) if y[i] > 0.0 else np.log1p(-p[i])
    _information(Z, w, wz, H)
    if not _cholesky(H, L):
        return np.nan
    for a in range(H.shape[0]):
        loglik += np.log(L[a, a])  # + 0.5 log det H
    return loglik


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _firth_kernel(
    y: np.ndarray,
    Xt: np.ndarray,
    Gt: np.ndarray,
    offset: np.ndarray,
    fits: tuple[np.ndarray, np.ndarray, np.ndarray],
    start: int,
    stop: int,
) -> None:  # pragma: no cover - compiled
    """Firth-penalised logistic regression of y on (X, g_j) for every row g_j of ``Gt``,
    into ``fits`` (see :func:`_store_fit`).

    plink2 v2.00a3.5's FirthRegression step for step (a port of logistf before its 1.24
    rewrite), in double precision: start at 0; step = I^-1 U* with I the information matrix
    and U* the score with Firth's h_i (1/2 - p_i) term; the largest |change| capped at 5; up
    to 5 step halvings while the penalised log-likelihood falls; converged when the change in
    penalised log-likelihood is at most 1e-4 and either every |change| <= 1e-4 and every
    |score| < 1e-4, or a halving run gave up (largest change < 1e-3, largest score < 0.05);
    at most 25 steps. The SE comes from I^-1 at the returned coefficients.
    """
    k, n = Xt.shape
    K = k + 1
    Z, mask, p, w, h, t, H, L, Hinv, grad, dcoef, coef = _workspace(Xt)
    for j in range(start, stop):
        _load(Gt, j, Z, mask)
        coef[:] = 0.0
        result = _FAIL
        loglik = _firth_state(Z, mask, y, coef, p, w, t, H, L, offset)
        if np.isnan(loglik):
            _store_fit(fits, j, np.nan, Hinv, _FAIL)
            continue
        _cholesky_inverse(L, grad, Hinv)
        hs_bail = False
        for iteration in range(25):
            # h_i = w_i z_i^T I^-1 z_i; the modified score U* = Z (y - p + h (1/2 - p))
            h[:] = 0.0
            for a in range(K):
                for i in range(n):
                    t[i] = Hinv[a, 0] * Z[0, i]
                for b in range(1, K):
                    hab = Hinv[a, b]
                    for i in range(n):
                        t[i] += hab * Z[b, i]
                for i in range(n):
                    h[i] += Z[a, i] * t[i]
            for i in range(n):
                t[i] = ((y[i] - p[i]) + w[i] * h[i] * (0.5 - p[i])) * mask[i]
            _project(Z, t, grad)
            grad_max = 0.0
            for a in range(K):
                grad_max = max(grad_max, abs(grad[a]))
            dcoef_max = 0.0
            for a in range(K):
                s = 0.0
                for b in range(K):
                    s += Hinv[a, b] * grad[b]
                dcoef[a] = s
                dcoef_max = max(dcoef_max, abs(s))
            if dcoef_max > 5.0:
                for a in range(K):
                    dcoef[a] *= 5.0 / dcoef_max
                dcoef_max = 5.0
            for a in range(K):
                coef[a] += dcoef[a]
            converged = dcoef_max <= 1e-4 and grad_max < 1e-4
            loglik_old = loglik
            # near the optimum rounding makes the change random: accept a tiny fall
            thresh = loglik_old - 0.999999e-4 if converged else loglik_old
            max_halvings = 5
            halving = 1
            while True:
                loglik = _firth_state(Z, mask, y, coef, p, w, t, H, L, offset)
                if np.isnan(loglik) or halving > max_halvings:
                    break
                if loglik >= thresh:
                    if loglik >= loglik_old:
                        break
                    max_halvings = halving
                elif (
                    halving == max_halvings
                    and dcoef_max < 1e-3
                    and grad_max < 0.05
                    and loglik >= loglik_old - 1e-4
                ):
                    # as good as single precision gets: undo the step entirely
                    halving -= 1
                    max_halvings -= 1
                    hs_bail = True
                factor = 2.0**-halving
                for a in range(K):
                    coef[a] -= dcoef[a] * factor
                halving += 1
            if np.isnan(loglik):
                break
            _cholesky_inverse(L, grad, Hinv)
            if abs(loglik - loglik_old) <= 1e-4 and (converged or hs_bail):
                result = _OK
                break
            if iteration == 24:
                result = _OK  # plink2 keeps the last iterate ("unfinished")
        _store_fit(fits, j, coef[k], Hinv, result)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _store_fit(
    fits: tuple[np.ndarray, np.ndarray, np.ndarray],
    j: int,
    beta: float,
    Hinv: np.ndarray,
    result: int,
) -> None:  # pragma: no cover - compiled
    """Variant ``j``'s fit into ``fits`` (beta, SE, status): a converged fit whose inverse
    information ``Hinv`` is not valid becomes ``_INVALID``; the SE (of the last coefficient)
    is NaN unless the fit is ``_OK``."""
    if result == _OK and not _valid(Hinv):
        result = _INVALID
    k = Hinv.shape[0] - 1
    fits[0][j] = beta
    fits[1][j] = np.sqrt(Hinv[k, k]) if result == _OK else np.nan
    fits[2][j] = result


def _fit_rows(
    kernel: Callable[..., None],
    rows: np.ndarray,
    y: np.ndarray,
    Xt: np.ndarray,
    Gt: np.ndarray,
    *rest: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``kernel`` (``y``, ``Xt``, the variants ``rows`` of ``Gt``, then ``rest``) run on
    numba's threads: those variants' beta, SE and status."""
    fits = (np.empty(rows.size), np.empty(rows.size), np.empty(rows.size, np.int8))
    _in_threads(kernel, rows.size, y, Xt, np.ascontiguousarray(Gt[rows]), *rest, fits)
    return fits


def _logistic_chunk(
    Gt: np.ndarray,
    y: np.ndarray,
    X: np.ndarray,
    b0: np.ndarray,
    firth: str,
    separated: np.ndarray,
    offset: np.ndarray,
) -> dict[str, np.ndarray]:
    """Logistic regression of y on (X, g_j) for every row g_j of ``Gt`` (NaN missing), with
    ``offset`` a known term of every sample's linear predictor (zeros: none).

    ``X`` is intercept and covariates as given (plink2 fits them unscaled, and its stopping
    rules depend on the scale); ``separated`` flags variants whose A1 dosage is 0 in cases or
    controls, which plink2 sends straight to Firth regression.
    """
    m = Gt.shape[0]
    Xt = np.ascontiguousarray(X.T)
    y = np.ascontiguousarray(y, dtype=np.float64)
    beta = np.full(m, np.nan)
    se = np.full(m, np.nan)
    status = np.zeros(m, dtype=np.int8)
    used_firth = np.zeros(m, dtype=bool)
    if firth == "always":
        need_firth = np.ones(m, dtype=bool)
    else:
        todo = np.flatnonzero(~separated) if firth == "fallback" else np.arange(m)
        if todo.size:
            fit = _fit_rows(_logistic_kernel, todo, y, Xt, Gt, offset, b0, _TOL, LOGISTIC_MAX_ITER)
            beta[todo], se[todo], status[todo] = fit
        if firth == "fallback":
            need_firth = separated | (status == _FAIL)
        else:
            need_firth = np.zeros(m, dtype=bool)
    idx = np.flatnonzero(need_firth)
    if idx.size:
        beta[idx], se[idx], status[idx] = _fit_rows(_firth_kernel, idx, y, Xt, Gt, offset)
        used_firth[idx] = True
    with np.errstate(invalid="ignore", divide="ignore"):
        z = beta / se
    return {
        "beta": beta, "se": se, "stat": z, "p": _pvalue_normal(z), "firth": used_firth,
        "failed": status == _FAIL, "invalid": status == _INVALID,
    }  # fmt: skip


# --------------------------------------------------------------------------- chi-square


def _chisq_chunk(G: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """1-df allelic chi-square test (plink1.9 --assoc), without continuity correction."""
    M = np.isnan(G)
    G0 = np.where(M, 0.0, G.astype(np.float64))
    obs_mask = (~M).astype(np.float64)
    a_case = G0.T @ y
    a_ctrl = G0.T @ (1.0 - y)
    n_case = 2.0 * (obs_mask.T @ y)
    n_ctrl = 2.0 * (obs_mask.T @ (1.0 - y))
    b_case = n_case - a_case
    b_ctrl = n_ctrl - a_ctrl
    total = n_case + n_ctrl
    col_a = a_case + a_ctrl
    col_b = b_case + b_ctrl
    with np.errstate(invalid="ignore", divide="ignore"):
        chisq = total * (a_case * b_ctrl - b_case * a_ctrl) ** 2 / (n_case * n_ctrl * col_a * col_b)
        f_a = a_case / n_case
        f_u = a_ctrl / n_ctrl
        odds = (a_case * b_ctrl) / (b_case * a_ctrl)
    odds[~np.isfinite(odds)] = np.nan
    return {"chisq": chisq, "p": chi2_sf(chisq, 1), "f_a": f_a, "f_u": f_u, "or": odds}


# --------------------------------------------------------------------------- driver


def _chunk_table(
    variants: pd.DataFrame,
    G: np.ndarray,
    flip: np.ndarray,
    *,
    y: np.ndarray,
    X: np.ndarray,
    X_raw: np.ndarray,
    test: str,
    firth: str,
    b0: np.ndarray | None,
    offset: np.ndarray | None = None,
) -> pd.DataFrame:
    """Results for one chunk; ``variants`` are the chunk's rows of ``source.variants``.

    ``G`` counts ALT alleles of the analysed samples; ``flip`` marks variants whose A1 is REF.
    ``X`` is the design with standardised covariates (linear regression), ``X_raw`` the same
    with covariates as given (logistic regression and the collinearity checks); ``offset``
    a known term of the logistic linear predictor (None: zero).
    """
    if flip.any():
        G = G.copy()
        G[:, flip] = 2.0 - G[:, flip]
    alt = variants["a1"].astype(str).to_numpy()
    ref = variants["a2"].astype(str).to_numpy()
    a1_allele = np.where(flip, ref, alt)
    if test == "chisq":
        return _chisq_table(variants, G, y, a1_allele, np.where(flip, alt, ref))
    m = G.shape[1]
    Gt = np.ascontiguousarray(G.T, dtype=np.float32)
    chk = _variant_checks(Gt, X_raw[:, 1:], y)
    err = _error_codes(chk, X.shape[1])
    if test == "linear":
        r = _linear_chunk(G, y, X, chk["obs"], chk["sum_g"])
        used_firth = np.zeros(m, dtype=bool)
    else:
        assert b0 is not None
        eta0 = np.zeros(y.shape[0]) if offset is None else np.ascontiguousarray(offset, np.float64)
        r, used_firth = _logistic_fits(Gt, y, X_raw, b0, firth, chk, err, eta0)
    alleles = {"REF": ref, "ALT": alt, "A1": a1_allele}
    return _glm_table(variants, alleles, chk["obs"], err, r, used_firth, test=test, firth=firth)


def _chisq_table(
    variants: pd.DataFrame, G: np.ndarray, y: np.ndarray, a1: np.ndarray, a2: np.ndarray
) -> pd.DataFrame:
    """plink1.9 ``--assoc`` rows of a chunk; ``G`` counts the A1 alleles."""
    r = _chisq_chunk(G, y)
    return pd.DataFrame(
        {
            "CHR": variants["chrom"].to_numpy(),
            "SNP": variants["id"].to_numpy(),
            "BP": variants["pos"].to_numpy(),
            "A1": a1,
            "F_A": r["f_a"],
            "F_U": r["f_u"],
            "A2": a2,
            "CHISQ": r["chisq"],
            "P": r["p"],
            "OR": r["or"],
        }  # fmt: skip
    )


def _error_codes(chk: dict[str, np.ndarray], k: int) -> np.ndarray:
    """ERRCODE per variant from the checks before any fit (``"."`` where the variant is
    fitted); ``k`` is the number of columns of the design (intercept and covariates)."""
    obs = chk["obs"]
    # plink2's order: too few samples, constant genotype, then the collinearity checks
    err = np.full(obs.shape[0], ".", dtype=object)
    err[chk["vif_high"]] = "VIF_TOO_HIGH"
    err[chk["vif_infinite"]] = "VIF_INFINITE"
    err[chk["corr_high"]] = "CORR_TOO_HIGH"
    err[chk["const"]] = "CONST_OMITTED_ALLELE"
    err[obs <= k + 1] = "SAMPLE_CT<=PREDICTOR_CT"
    return err


def _logistic_fits(
    Gt: np.ndarray,
    y: np.ndarray,
    X_raw: np.ndarray,
    b0: np.ndarray,
    firth: str,
    chk: dict[str, np.ndarray],
    err: np.ndarray,
    offset: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Logistic (or Firth) fits of the variants that passed the checks (``err == "."``).

    Returns the per-variant ``beta``, ``se``, ``stat`` and ``p`` (NaN where not fitted) and
    which variants used Firth; ``err`` gets the codes of separation and failed fits, in place.
    """
    m = Gt.shape[0]
    obs = chk["obs"]
    used_firth = np.zeros(m, dtype=bool)
    r = {key: np.full(m, np.nan) for key in ("beta", "se", "stat", "p")}
    idx = np.flatnonzero(err == ".")
    if not idx.size:
        return r, used_firth
    # A1 dosage 0 in cases or controls, or only A1 there (plink2 tests every allele)
    case_g, tot_g, n_case = chk["case_g"][idx], chk["sum_g"][idx], chk["n_case"][idx]
    ctrl_g = tot_g - case_g
    separated = (case_g == 0) | (ctrl_g == 0) | (case_g == 2 * n_case)
    separated |= ctrl_g == 2 * (obs[idx] - n_case)
    if firth == "never":
        err[idx[separated]] = "SEPARATION"
        idx, separated = idx[~separated], separated[~separated]
    fitted = _logistic_chunk(Gt[idx], y, X_raw, b0, firth, separated, offset)
    for key in r:
        r[key][idx] = fitted[key]
    used_firth[idx] = fitted["firth"]
    failed = idx[fitted["failed"]]
    err[failed] = np.where(used_firth[failed], "FIRTH_CONVERGE_FAIL", "LOGISTIC_CONVERGE_FAIL")
    err[idx[fitted["invalid"]]] = "INVALID_RESULT"
    return r, used_firth


def _glm_table(
    variants: pd.DataFrame,
    alleles: dict[str, np.ndarray],
    obs: np.ndarray,
    err: np.ndarray,
    r: dict[str, np.ndarray],
    used_firth: np.ndarray,
    *,
    test: str,
    firth: str,
) -> pd.DataFrame:
    """plink2 ``--glm`` rows of a chunk: estimates are NA where ERRCODE is not ``"."``."""
    na = err != "."
    beta = np.where(na, np.nan, r["beta"])
    se = np.where(na, np.nan, r["se"])
    stat = np.where(na, np.nan, r["stat"])
    p = np.where(na, np.nan, r["p"])
    out = {
        "#CHROM": variants["chrom"].to_numpy(),
        "POS": variants["pos"].to_numpy(),
        "ID": variants["id"].to_numpy(),
        "REF": alleles["REF"],
        "ALT": alleles["ALT"],
        "A1": alleles["A1"],
    }
    if test == "logistic" and firth == "fallback":  # plink2 has the column for fallback only
        out["FIRTH?"] = np.where(used_firth, "Y", "N")
    out["TEST"] = "ADD"
    out["OBS_CT"] = obs.astype(np.int64)
    if test == "linear":
        out.update({"BETA": beta, "SE": se, "T_STAT": stat})
    else:
        out.update({"OR": np.exp(beta), "LOG(OR)_SE": se, "Z_STAT": stat})
    out["P"] = p
    out["ERRCODE"] = err
    return pd.DataFrame(out)


def associate(
    source: Any,
    phenotype: Any,
    *,
    covariates: Any = None,
    test: Test = "auto",
    firth: Firth = "fallback",
    a1: A1 = "minor",
    chunk_size: int = 4096,
    samples: np.ndarray | None = None,
    variants: np.ndarray | None = None,
    engine: Literal["numpy", "dask"] = "numpy",
    scheduler: Any = None,
    offset: Any = None,
) -> pd.DataFrame:
    """Test every variant for association with a phenotype, one row per variant.

    Parameters
    ----------
    source
        A ``GenotypeSource`` (``genoformer.gwas.io.genotypes.open_genotypes``) or a path to one.
    phenotype
        One value per sample of ``source`` (its order), NaN for missing. Case/control as
        1/2 (PLINK) or 0/1.
    covariates
        ``(n_samples, c)`` array or DataFrame in the same order, NaN for missing; samples
        with a missing covariate are left out of every test, as in plink2.
    test
        ``"linear"`` (t test), ``"logistic"`` (Wald, with Firth as ``firth`` says),
        ``"chisq"`` (plink1.9 ``--assoc`` allelic test, covariates ignored) or ``"auto"``
        (logistic for a case/control phenotype, linear otherwise).
    firth
        ``"fallback"`` (plink2 ``firth-fallback``; adds the ``FIRTH?`` column),
        ``"always"`` (``firth``), ``"never"`` (``no-firth``: separated variants get
        ``SEPARATION``).
    a1
        Which allele is counted and reported as A1: ``"minor"`` (the default of plink2
        ``--glm`` and plink1.9 ``--assoc``: the less frequent allele among the founders of
        the chosen ``samples``, ALT on a tie), ``"alt"`` (``.bim`` column 5) or ``"ref"``
        (column 6).
    chunk_size
        Variants per chunk read from disk.
    samples
        Indices of the samples to use (default: all).
    variants
        Indices of the variants to test (default: all), e.g. those that pass QC.
    engine
        ``"numpy"`` (this process) or ``"dask"`` (``genoformer.gwas.stats.distributed``).
    scheduler
        Dask scheduler address, for ``engine="dask"``.
    offset
        One value per sample (its order), a known part of the phenotype: subtracted from
        the phenotype of a linear test, an offset in the linear predictor of a logistic one
        (the leave-one-chromosome-out prediction of whole-genome regression,
        ``genoformer.gwas.stats.wgr``). Not for ``"chisq"``.

    Returns
    -------
    pandas.DataFrame
        plink2 ``--glm`` columns (``#CHROM POS ID REF ALT A1 [FIRTH?] TEST OBS_CT BETA|OR
        SE|LOG(OR)_SE T_STAT|Z_STAT P ERRCODE``) or, for ``"chisq"``, plink1.9 ``--assoc``
        columns (``CHR SNP BP A1 F_A F_U A2 CHISQ P OR``), in file order.
    """
    source = _open(source)
    n_all = int(source.n_samples)
    y, test = _prepare_phenotype(phenotype, n_all, test)
    if firth not in ("fallback", "always", "never"):
        raise InputError(f"unknown firth {firth!r}", fix="use fallback, always or never")
    C, _names = _prepare_covariates(covariates if test != "chisq" else None, n_all)
    y, eta = _apply_offset(y, offset, test)
    base, keep, rows, founders = _analysed_samples(source, y, C, samples)
    eta_used = None if eta is None else eta[keep]  # logistic only: linear tests subtract it
    y_used, X, X_raw, b0 = _null_design(y[keep], C[keep], test, eta_used)
    variant_table = source.variants.reset_index(drop=True)
    # Memory is bounded by the chunk: fewer variants per chunk for larger cohorts.
    chunk_size = max(64, min(chunk_size, _READ_CELLS // max(len(base), 1)))

    def run_chunk(variant_indices: np.ndarray, G: np.ndarray) -> pd.DataFrame:
        G = np.asarray(G)
        # A1 follows allele frequencies over the chosen founders (plink2 computes them
        # before dropping samples without phenotype or covariates).
        flip = _a1_flip(G if founders is None else G[founders], a1)
        return _chunk_table(
            variant_table.iloc[np.asarray(variant_indices)],
            G[rows],
            flip,
            y=y_used, X=X, X_raw=X_raw, test=test, firth=firth, b0=b0, offset=eta_used,
        )  # fmt: skip

    parts = _chunk_parts(
        source, run_chunk, engine=engine, chunk_size=chunk_size, samples=base,
        variants=variants, scheduler=scheduler, n_used=y_used.size,
    )  # fmt: skip
    tables = list(parts)
    if not tables:
        columns = {"chisq": ASSOC_COLUMNS, "linear": GLM_LINEAR_COLUMNS}
        return pd.DataFrame(columns=columns.get(test, GLM_LOGISTIC_COLUMNS))
    return pd.concat(tables, ignore_index=True)


def _analysed_samples(
    source: Any, y: np.ndarray, C: np.ndarray, samples: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Which samples are read and which analysed.

    Returns ``base`` (the chosen samples, read for every chunk), ``keep`` (those with a
    phenotype and every covariate, the analysed ones), ``rows`` (the analysed samples' rows
    within a chunk read for ``base``) and ``founders`` (rows of ``base`` whose allele
    frequencies decide A1, None for all).
    """
    n_all = y.shape[0]
    use = np.isfinite(y) & np.isfinite(C).all(axis=1)
    if samples is not None:
        chosen = np.zeros(n_all, dtype=bool)
        chosen[np.asarray(samples)] = True
        use &= chosen
    base = np.flatnonzero(chosen) if samples is not None else np.arange(n_all)
    founders = _founder_rows(source.samples, base)
    keep = np.flatnonzero(use)
    # rows of the analysed samples within the chunk read for ``base``
    rows = np.flatnonzero(use[base])
    if keep.size == 0:
        raise InputError(
            "no sample left with a phenotype, all covariates and the chosen ids",
            fix="check that phenotype and covariate ids match the genotype file",
        )
    return base, keep, rows, founders


def _apply_offset(y: np.ndarray, offset: Any, test: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The phenotype less the offset (linear test: the offset is then None), else the
    phenotype and the offset as float64; a sample without an offset (NaN) is left out."""
    eta = _prepare_offset(offset, y.shape[0], test)
    if eta is None:
        return y, None
    y = np.where(np.isfinite(eta), y, np.nan)
    return (y - eta, None) if test == "linear" else (y, eta)


def _prepare_offset(offset: Any, n: int, test: str) -> np.ndarray | None:
    """The per-sample offset as float64 (None for none)."""
    if offset is None:
        return None
    if test == "chisq":
        raise InputError(
            "the allelic chi-square test takes no offset (no whole-genome regression)",
            fix="use test='linear' or 'logistic' with an offset (--wgr)",
        )
    eta = np.asarray(offset, dtype=np.float64).ravel()
    if eta.shape[0] != n:
        raise InputError(
            f"offset has {eta.shape[0]} values, the genotypes have {n} samples",
            fix="pass one value per sample, in the order of the genotype file's samples",
        )
    return eta


def _null_design(
    y_used: np.ndarray, C_used: np.ndarray, test: str, offset: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The analysed samples' phenotype (centred for linear regression), the designs with
    standardised and with raw covariates, and the covariates-only logistic fit (or None),
    with ``offset`` in its linear predictor."""
    X, X_raw = _design(C_used)
    b0 = None
    if test == "logistic":
        if y_used.min() == y_used.max():
            raise InputError("logistic regression needs both cases and controls")
        b0 = _logistic_null(y_used, X_raw, offset)
    if test == "linear":
        y_used = y_used - y_used.mean()  # intercept in the model: numerical stability only
    return y_used, X, X_raw, b0


def _chunk_parts(
    source: Any,
    run_chunk: Callable[[np.ndarray, np.ndarray], pd.DataFrame],
    *,
    engine: str,
    chunk_size: int,
    samples: np.ndarray,
    variants: np.ndarray | None,
    scheduler: Any,
    n_used: int,
) -> Iterator[pd.DataFrame]:
    """The per-chunk tables, computed by ``engine``: in this process or on a Dask cluster;
    ``n_used`` is the number of analysed samples (it sizes the sub-blocks in this process)."""
    if engine == "dask":
        try:
            from genoformer.gwas.stats.distributed import map_chunks
        except ImportError as exc:  # pragma: no cover - depends on the optional module
            raise InputError(
                "engine='dask' needs genoformer.gwas.stats.distributed", fix="use engine='numpy'"
            ) from exc
        return map_chunks(
            source,
            run_chunk,
            chunk_size=chunk_size,
            samples=samples,
            variants=variants,
            scheduler=scheduler,
        )
    if engine == "numpy":
        return _in_process(
            run_chunk, source.chunks(chunk_size, samples=samples, variants=variants), n_used
        )
    raise InputError(f"unknown engine {engine!r}", fix="use numpy or dask")


def _in_process(
    run_chunk: Callable[[np.ndarray, np.ndarray], pd.DataFrame],
    chunks: Iterator[tuple[np.ndarray, np.ndarray]],
    n: int,
) -> Iterator[pd.DataFrame]:
    """The per-chunk tables in this process, BLAS on one thread: the blocks of a chunk run on
    numba's threads instead (:func:`_split_run`). BLAS threads that spin while waiting made
    the many small products of a block many times slower on a busy machine (a 2,000 x 500
    matrix-vector product 7.5 ms instead of 0.1 ms on two loaded cores), and with one BLAS
    thread the numbers no longer depend on how many cores the machine has. The limit holds
    for the whole process while the chunks run."""
    with threadpool_limits(1, user_api="blas"):
        for idx, G in chunks:
            yield _split_run(run_chunk, idx, G, n)


def _split_run(
    run_chunk: Callable[[np.ndarray, np.ndarray], pd.DataFrame],
    idx: np.ndarray,
    G: np.ndarray,
    n: int,
) -> pd.DataFrame:
    """Run a chunk in sub-blocks so that (samples x variants) working arrays stay bounded,
    up to ``_BLOCKS_AT_ONCE`` at once on threads: numpy's array operations and BLAS, which
    do most of a block's work, release the GIL. Each block is computed as it would be alone,
    so the numbers do not depend on the threads."""
    step = max(64, _BLOCK_CELLS // max(n, 1))
    if G.shape[1] <= step:
        return run_chunk(idx, G)
    starts = range(0, G.shape[1], step)

    def block(s: int) -> pd.DataFrame:
        return run_chunk(idx[s : s + step], G[:, s : s + step])

    threads = min(numba.get_num_threads(), _BLOCKS_AT_ONCE)
    parts = _pool("blocks", threads).map(block, starts) if threads > 1 else map(block, starts)
    return pd.concat(list(parts), ignore_index=True)


def write_results(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write association results as TSV (plink2 layout, ``NA`` for missing) or Parquet."""
    from genoformer.engine.runs import write_table

    return write_table(path, table, float_format="%.6g", na_rep="NA")
