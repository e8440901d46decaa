"""Per-variant association tests, additive model, as plink2 ``--glm`` and plink1.9 ``--assoc``.

Every test is vectorised over the variants of a chunk: linear regression solves one small
(k x k) system per variant from matrix products (Frisch-Waugh / Schur complement), logistic
regression runs batched Newton-Raphson steps over all variants of a chunk at once, Firth's
penalised regression likewise over the variants that need it.

Conventions matched to plink2 v2.00a3.5 (checked against its output in
``tests/gwas/test_association_plink.py``):

- A1, the counted allele, is the minor allele by default (ALT on an exact tie; plink2
  a3.5 chose REF for 1 of 9 exact ties in our benchmark data), as plink2 ``--glm``
  and plink1.9 ``--assoc`` report it: frequencies over all chosen samples, before samples
  without phenotype or covariates are dropped. ``a1="alt"`` / ``"ref"`` fix it to
  ``.bim`` column 5 / 6.
- Only the ADD row per variant (``hide-covar``); samples with a missing phenotype or
  covariate are dropped for every variant, samples with a missing call for that variant only
  (``OBS_CT``).
- Covariate scaling does not change the genotype's estimate; covariates are standardised
  internally for numerical stability only (plink2's ``--covar-variance-standardize`` has no
  effect on the ADD row either).
- ERRCODE: ``CONST_OMITTED_ALLELE`` (all non-missing calls equal), ``CORR_TOO_HIGH``
  (|r| > 0.999 between genotype and a covariate), ``VIF_INFINITE`` / ``VIF_TOO_HIGH``
  (genotype VIF singular / above 50), ``LOGISTIC_CONVERGE_FAIL``, ``FIRTH_CONVERGE_FAIL``.
  Only the genotype's VIF is checked (plink2 checks every predictor's; covariate-only
  collinearity is the caller's to fix).
- Firth fallback (``firth="fallback"``): Firth is used when the 2x2 table of A1 dosage by
  case status has an empty cell (plink2 checks this before fitting) or when logistic
  regression does not converge.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from genoformer.engine.errors import InputError

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
#: Newton-Raphson limits: plink2 gives up on logistic regression after a few dozen steps.
LOGISTIC_MAX_ITER = 25
FIRTH_MAX_ITER = 200
_TOL = 1e-6  # Newton converges quadratically: the estimate is then good to ~1e-12
_FIRTH_TOL = 1e-7
#: (samples x variants) cells per block of the regressions: the working arrays take about 40
#: bytes per cell, so about 40 MB whatever the cohort size.
_BLOCK_CELLS = 1_000_000
#: Most genotype cells read from disk at once (float32: 16 MB); caps ``chunk_size``.
_READ_CELLS = 4_000_000

Test = Literal["auto", "linear", "logistic", "chisq"]
Firth = Literal["fallback", "always", "never"]
A1 = Literal["alt", "ref", "minor"]


# --------------------------------------------------------------------------- helpers


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
                fix="use test='linear' for a quantitative trait",
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


def _design(C: np.ndarray) -> np.ndarray:
    """Intercept plus standardised covariates; constant covariates are dropped."""
    sd = C.std(axis=0)
    keep = sd > 0
    Z = (C[:, keep] - C[:, keep].mean(axis=0)) / sd[keep]
    return np.column_stack([np.ones(C.shape[0]), Z])


def _open(source: Any) -> Any:
    if isinstance(source, (str, os.PathLike)):
        from genoformer.gwas.genotypes import open_genotypes

        return open_genotypes(source)
    return source


def _a1_flip(G: np.ndarray, a1: str) -> np.ndarray:
    """Per-variant flag: count the REF (bim column 6) allele instead of ALT.

    ``G`` holds ALT counts of the samples whose frequencies decide the minor allele. On a
    tie (frequency exactly 0.5) ALT stays A1, as plink1.9 and, nearly always, plink2 do.
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


def _pvalue_normal(z: np.ndarray) -> np.ndarray:
    return 2.0 * special.ndtr(-np.abs(z))


def _batched_info(X: np.ndarray, Pk: np.ndarray, G: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Information matrices sum_i W_ij z_ij z_ij^T with z_ij = (x_i, g_ij): (m, k+1, k+1)."""
    k = X.shape[1]
    m = G.shape[1]
    WG = W * G
    H = np.empty((m, k + 1, k + 1))
    H[:, :k, :k] = (W.T @ Pk).reshape(m, k, k)
    xg = WG.T @ X
    H[:, :k, k] = xg
    H[:, k, :k] = xg
    H[:, k, k] = np.einsum("ij,ij->j", WG, G)
    return H


def _quad(X: np.ndarray, Pk: np.ndarray, G: np.ndarray, Hinv: np.ndarray) -> np.ndarray:
    """z_ij^T Hinv_j z_ij for every sample i and variant j: (n, m)."""
    k = X.shape[1]
    m = G.shape[1]
    A = Hinv[:, :k, :k].reshape(m, k * k)
    c = Hinv[:, :k, k]
    d = Hinv[:, k, k]
    return Pk @ A.T + 2.0 * G * (X @ c.T) + G * G * d


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


def _collinearity(
    X: np.ndarray, Gc: np.ndarray, obs_mask: np.ndarray, obs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Genotype VIF and max |correlation| with a covariate, on each variant's samples.

    ``Gc`` is the genotype centred on each variant's observed mean (0 where missing).
    """
    gg = np.einsum("ij,ij->j", Gc, Gc)
    k = X.shape[1]
    if k == 1:
        return np.ones(Gc.shape[1]), np.zeros(Gc.shape[1])
    C = X[:, 1:]
    # covariate moments over each variant's observed samples
    sx = obs_mask.T @ C
    sxx = obs_mask.T @ (C * C)
    mean = sx / obs[:, None]
    var_c = sxx / obs[:, None] - mean**2
    cov = (Gc.T @ C) / obs[:, None]  # Gc sums to 0 over observed samples
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.sqrt(var_c * (gg / obs)[:, None])
        max_corr = np.nan_to_num(np.abs(corr), nan=0.0).max(axis=1)
    return gg, max_corr


# --------------------------------------------------------------------------- linear


def _linear_chunk(G: np.ndarray, y: np.ndarray, X: np.ndarray) -> dict[str, np.ndarray]:
    """Linear regression of y on (X, g_j) for every column of G (NaN missing)."""
    n, k = X.shape
    m = G.shape[1]
    M = np.isnan(G)
    obs_mask = (~M).astype(np.float64)
    obs = obs_mask.sum(axis=0)
    G64 = G.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.nansum(G64, axis=0) / obs
    Gc = np.where(M, 0.0, G64 - mu)
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
    p = 2.0 * stats.t.sf(np.abs(tstat), df)
    _, max_corr = _collinearity(X, Gc, obs_mask, obs)
    return {
        "obs": obs, "beta": beta, "se": se, "stat": tstat, "p": p, "gg": gg,
        "resid_gg": resid_gg, "max_corr": max_corr, "df": df,
    }  # fmt: skip


# --------------------------------------------------------------------------- logistic


def _logistic_null(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Coefficients of the covariates-only model (start values for every variant)."""
    b = np.zeros(X.shape[1])
    b[0] = np.log(y.mean() / (1.0 - y.mean()))
    for _ in range(50):
        p = special.expit(X @ b)
        H = X.T @ (X * (p * (1 - p))[:, None])
        step = np.linalg.solve(H, X.T @ (y - p))
        b += step
        if np.abs(step).max() < 1e-12:
            break
    return b


def _newton(
    y: np.ndarray,
    X: np.ndarray,
    Pk: np.ndarray,
    G: np.ndarray,
    obs_mask: np.ndarray,
    B: np.ndarray,
    *,
    firth: bool,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched (Firth-penalised) Newton-Raphson; returns (coefficients, SE of g, converged).

    ``B`` (m, k+1) holds the start values; ``G`` has 0 where a call is missing and ``obs_mask``
    masks those samples out of every sum.
    """
    k = X.shape[1]
    m = G.shape[1]
    converged = np.zeros(m, dtype=bool)
    active = np.arange(m)
    var_g = np.full(m, np.nan)
    B = B.copy()
    # A missing call gets eta = +-inf, so p equals y there: its weight p(1-p) and residual
    # y-p are exactly 0 and no mask multiplications are needed in the loop.
    offset = np.where(obs_mask > 0, 0.0, np.where(y[:, None] > 0, np.inf, -np.inf))
    has_missing = bool((obs_mask == 0).any())
    tol = _FIRTH_TOL if firth else _TOL
    for _ in range(max_iter):
        if active.size == 0:
            break
        if active.size == m:  # no copies while every variant is still iterating
            Ga, Ba, off = G, B, offset
        else:
            Ga, Ba, off = G[:, active], B[active], offset[:, active]
        eta = X @ Ba[:, :k].T
        eta += Ga * Ba[:, k]
        if has_missing:
            eta += off
        p = special.expit(eta)
        W = p * (1.0 - p)
        H = _batched_info(X, Pk, Ga, W)
        Hinv, bad = _safe_inv(H)
        r = y[:, None] - p
        if firth:
            h = W * _quad(X, Pk, Ga, Hinv)
            r += h * (0.5 - p)
        U = np.empty((active.size, k + 1))
        U[:, :k] = r.T @ X
        U[:, k] = np.einsum("ij,ij->j", r, Ga)
        if firth:
            # logistf's modified IRLS (as plink2 ports it): weights p(1-p)(1+h), steps capped
            # at 5; it converges on separated data where plain Newton steps oscillate.
            H2inv, bad2 = _safe_inv(_batched_info(X, Pk, Ga, W * (1.0 + h)))
            bad |= bad2
            step = np.einsum("jab,jb->ja", H2inv, U)
            big = np.abs(step).max(axis=1)
            step *= np.minimum(1.0, 5.0 / np.maximum(big, 1e-300))[:, None]
        else:
            step = np.einsum("jab,jb->ja", Hinv, U)
        B[active] = Ba + step
        # the variance at the last iterate: the final step is below ``tol``, so it differs
        # from the variance at the estimate by O(tol)
        var_g[active] = Hinv[:, k, k]
        done = (np.abs(step).max(axis=1) < tol) & ~bad
        diverged = bad | ~np.isfinite(B[active]).all(axis=1)
        converged[active[done]] = True
        active = active[~done & ~diverged]
    se = np.sqrt(var_g)
    converged &= np.isfinite(se) & np.isfinite(B).all(axis=1)
    return B, se, converged


def _logistic_chunk(
    G: np.ndarray, y: np.ndarray, X: np.ndarray, b0: np.ndarray, firth: str
) -> dict[str, np.ndarray]:
    n, k = X.shape
    m = G.shape[1]
    M = np.isnan(G)
    obs_mask = (~M).astype(np.float64)
    obs = obs_mask.sum(axis=0)
    G0 = np.where(M, 0.0, G.astype(np.float64))
    Pk = (X[:, :, None] * X[:, None, :]).reshape(n, k * k)
    beta = np.full(m, np.nan)
    se = np.full(m, np.nan)
    used_firth = np.zeros(m, dtype=bool)
    failed = np.zeros(m, dtype=bool)
    # A1 dosage by case status: an empty cell means separation, which plink2 sends straight
    # to Firth regression.
    case_d = G0.T @ y
    ctrl_d = G0.T @ (1.0 - y)
    n_case = obs_mask.T @ y
    n_ctrl = obs - n_case
    empty_cell = (case_d == 0) | (ctrl_d == 0) | (case_d == 2 * n_case) | (ctrl_d == 2 * n_ctrl)
    start = np.zeros((m, k + 1))
    start[:, :k] = b0
    if firth == "always":
        need_firth = np.ones(m, dtype=bool)
    else:
        todo = ~empty_cell if firth == "fallback" else np.ones(m, dtype=bool)
        idx = np.flatnonzero(todo)
        if idx.size:
            B, s, ok = _newton(
                y, X, Pk, G0[:, idx], obs_mask[:, idx], start[idx],
                firth=False, max_iter=LOGISTIC_MAX_ITER,
            )  # fmt: skip
            beta[idx] = np.where(ok, B[:, k], np.nan)
            se[idx] = np.where(ok, s, np.nan)
            failed[idx] = ~ok
        need_firth = (empty_cell | failed) if firth == "fallback" else np.zeros(m, bool)
    idx = np.flatnonzero(need_firth)
    if idx.size:
        B, s, ok = _newton(
            y, X, Pk, G0[:, idx], obs_mask[:, idx], start[idx], firth=True, max_iter=FIRTH_MAX_ITER
        )
        beta[idx] = np.where(ok, B[:, k], np.nan)
        se[idx] = np.where(ok, s, np.nan)
        used_firth[idx] = True
        failed[idx] = ~ok
    with np.errstate(invalid="ignore", divide="ignore"):
        z = beta / se
    mu = np.where(obs > 0, G0.sum(axis=0) / np.maximum(obs, 1), 0.0)
    Gc = np.where(M, 0.0, G0 - mu)
    gg, max_corr = _collinearity(X, Gc, obs_mask, obs)
    # residual genotype variance after covariates, for the VIF check
    XX = (obs_mask.T @ Pk).reshape(m, k, k)
    A_inv, _ = _safe_inv(XX)
    Xg = Gc.T @ X
    resid_gg = gg - np.einsum("ja,jab,jb->j", Xg, A_inv, Xg)
    return {
        "obs": obs, "beta": beta, "se": se, "stat": z, "p": _pvalue_normal(z),
        "firth": used_firth, "failed": failed, "gg": gg, "resid_gg": resid_gg,
        "max_corr": max_corr,
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
    return {"chisq": chisq, "p": stats.chi2.sf(chisq, 1), "f_a": f_a, "f_u": f_u, "or": odds}


# --------------------------------------------------------------------------- driver


def _chunk_table(
    variants: pd.DataFrame,
    G: np.ndarray,
    flip: np.ndarray,
    *,
    y: np.ndarray,
    X: np.ndarray,
    test: str,
    firth: str,
    b0: np.ndarray | None,
) -> pd.DataFrame:
    """Results for one chunk; ``variants`` are the chunk's rows of ``source.variants``.

    ``G`` counts ALT alleles of the analysed samples; ``flip`` marks variants whose A1 is REF.
    """
    if flip.any():
        G = G.copy()
        G[:, flip] = 2.0 - G[:, flip]
    alt = variants["a1"].astype(str).to_numpy()
    ref = variants["a2"].astype(str).to_numpy()
    a1_allele = np.where(flip, ref, alt)
    other = np.where(flip, alt, ref)
    if test == "chisq":
        r = _chisq_chunk(G, y)
        return pd.DataFrame(
            {
                "CHR": variants["chrom"].to_numpy(),
                "SNP": variants["id"].to_numpy(),
                "BP": variants["pos"].to_numpy(),
                "A1": a1_allele,
                "F_A": r["f_a"],
                "F_U": r["f_u"],
                "A2": other,
                "CHISQ": r["chisq"],
                "P": r["p"],
                "OR": r["or"],
            }  # fmt: skip
        )
    if test == "linear":
        r = _linear_chunk(G, y, X)
    else:
        assert b0 is not None
        r = _logistic_chunk(G, y, X, b0, firth)
    m = G.shape[1]
    obs = r["obs"]
    lo = np.nanmin(np.where(np.isnan(G), np.inf, G), axis=0)
    hi = np.nanmax(np.where(np.isnan(G), -np.inf, G), axis=0)
    const = ~(hi > lo)
    err = np.full(m, ".", dtype=object)
    with np.errstate(invalid="ignore", divide="ignore"):
        vif = r["gg"] / r["resid_gg"]
    k = X.shape[1]
    err[(obs <= k + 1) & ~const] = "SAMPLE_CT<=PREDICTOR_CT"
    err[(r["max_corr"] > MAX_CORR) & (err == ".") & ~const] = "CORR_TOO_HIGH"
    err[~(vif < 1e8) & (err == ".") & ~const] = "VIF_INFINITE"
    err[(vif > MAX_VIF) & (err == ".") & ~const] = "VIF_TOO_HIGH"
    if test == "logistic":
        fail = r["failed"] & (err == ".")
        err[fail] = np.where(r["firth"][fail], "FIRTH_CONVERGE_FAIL", "LOGISTIC_CONVERGE_FAIL")
    err[const] = "CONST_OMITTED_ALLELE"
    na = err != "."
    beta = np.where(na, np.nan, r["beta"])
    se = np.where(na, np.nan, r["se"])
    stat = np.where(na, np.nan, r["stat"])
    p = np.where(na, np.nan, r["p"])
    out = {
        "#CHROM": variants["chrom"].to_numpy(),
        "POS": variants["pos"].to_numpy(),
        "ID": variants["id"].to_numpy(),
        "REF": ref,
        "ALT": alt,
        "A1": a1_allele,
    }
    if test == "logistic":
        out["FIRTH?"] = np.where(r["firth"] & ~const, "Y", "N")
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
) -> pd.DataFrame:
    """Test every variant for association with a phenotype, one row per variant.

    Parameters
    ----------
    source
        A ``GenotypeSource`` (``genoformer.gwas.genotypes.open_genotypes``) or a path to one.
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
        ``"fallback"`` (plink2 ``firth-fallback``), ``"always"`` (``firth``), ``"never"``.
    a1
        Which allele is counted and reported as A1: ``"minor"`` (the default of plink2
        ``--glm`` and plink1.9 ``--assoc``: the less frequent allele among the chosen
        ``samples``, ALT on a tie), ``"alt"`` (``.bim`` column 5) or ``"ref"`` (column 6).
    chunk_size
        Variants per chunk read from disk.
    samples
        Indices of the samples to use (default: all).
    variants
        Indices of the variants to test (default: all), e.g. those that pass QC.
    engine
        ``"numpy"`` (this process) or ``"dask"`` (``genoformer.gwas.distributed``).
    scheduler
        Dask scheduler address, for ``engine="dask"``.

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
    use = np.isfinite(y) & np.isfinite(C).all(axis=1)
    if samples is not None:
        chosen = np.zeros(n_all, dtype=bool)
        chosen[np.asarray(samples)] = True
        use &= chosen
    base = np.flatnonzero(chosen) if samples is not None else np.arange(n_all)
    keep = np.flatnonzero(use)
    # rows of the analysed samples within the chunk read for ``base``
    rows = np.flatnonzero(use[base])
    if keep.size == 0:
        raise InputError(
            "no sample left with a phenotype, all covariates and the chosen ids",
            fix="check that phenotype and covariate ids match the genotype file",
        )
    y_used = y[keep]
    X = _design(C[keep])
    b0 = None
    if test == "logistic":
        if y_used.min() == y_used.max():
            raise InputError("logistic regression needs both cases and controls")
        b0 = _logistic_null(y_used, X)
    if test == "linear":
        y_used = y_used - y_used.mean()  # intercept in the model: numerical stability only
    variant_table = source.variants.reset_index(drop=True)
    # Memory is bounded by the chunk: fewer variants per chunk for larger cohorts.
    chunk_size = max(64, min(chunk_size, _READ_CELLS // max(len(base), 1)))

    def run_chunk(variant_indices: np.ndarray, G: np.ndarray) -> pd.DataFrame:
        G = np.asarray(G)
        # A1 follows allele frequencies over all chosen samples (plink2 computes them
        # before dropping samples without phenotype or covariates).
        flip = _a1_flip(G, a1)
        return _chunk_table(
            variant_table.iloc[np.asarray(variant_indices)],
            G[rows],
            flip,
            y=y_used, X=X, test=test, firth=firth, b0=b0,
        )  # fmt: skip

    parts: Iterator[pd.DataFrame]
    if engine == "dask":
        try:
            from genoformer.gwas.distributed import map_chunks
        except ImportError as exc:  # pragma: no cover - depends on the optional module
            raise InputError(
                "engine='dask' needs genoformer.gwas.distributed", fix="use engine='numpy'"
            ) from exc
        parts = map_chunks(
            source,
            run_chunk,
            chunk_size=chunk_size,
            samples=base,
            variants=variants,
            scheduler=scheduler,
        )
    elif engine == "numpy":
        parts = (
            _split_run(run_chunk, idx, G, y_used.size)
            for idx, G in source.chunks(size=chunk_size, samples=base, variants=variants)
        )
    else:
        raise InputError(f"unknown engine {engine!r}", fix="use numpy or dask")
    tables = list(parts)
    if not tables:
        columns = {"chisq": ASSOC_COLUMNS, "linear": GLM_LINEAR_COLUMNS}
        return pd.DataFrame(columns=columns.get(test, GLM_LOGISTIC_COLUMNS))
    return pd.concat(tables, ignore_index=True)


def _split_run(
    run_chunk: Callable[[np.ndarray, np.ndarray], pd.DataFrame],
    idx: np.ndarray,
    G: np.ndarray,
    n: int,
) -> pd.DataFrame:
    """Run a chunk in sub-blocks so that (samples x variants) working arrays stay bounded."""
    step = max(64, _BLOCK_CELLS // max(n, 1))
    if G.shape[1] <= step:
        return run_chunk(idx, G)
    return pd.concat(
        [run_chunk(idx[s : s + step], G[:, s : s + step]) for s in range(0, G.shape[1], step)],
        ignore_index=True,
    )


def write_results(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write association results as TSV (plink2 layout, ``NA`` for missing) or Parquet."""
    from genoformer.engine.runs import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, sep="\t", index=False, na_rep="NA", float_format="%.6g")
    return path
