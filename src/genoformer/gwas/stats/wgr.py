"""Whole-genome regression as regenie's step 1, and association with its LOCO predictions.

Step 1 (:func:`fit_wgr`), as regenie (Mbatchou et al. 2021) fits it:

- Covariates (intercept included) are projected out of the phenotype and of every genotype.
  Genotypes are mean-imputed, residualised and scaled to unit variance (norm / sqrt(N - C)),
  the phenotype too (quantitative); a case/control phenotype is first turned into the
  standardised residual of the covariates-only logistic fit, (y - p0) / sqrt(p0 (1 - p0)).
- Level 0: the variants of each chromosome in blocks of ``block_size`` (a block never spans
  two chromosomes); for each block a ridge regression for each heritability h2 of
  ``h2_grid``, penalty M (1 - h2) / h2 with M the number of variants in step 1, fitted in
  ``folds`` folds of samples: each fold's prediction comes from the fit on the other folds.
  The folds are a seeded random partition, where regenie takes contiguous runs of the file's
  samples: files are often sorted by family or population, and a fold that holds a whole
  family (or most of a population) leaves its members' predictions without what their
  relatives share, which is what the prediction must carry to correct for relatedness. Each block gives ``len(h2_grid)`` out-of-fold predictors, standardised.
- Level 1: over all those predictors, ridge (quantitative) or logistic ridge with the
  covariates-only fit as offset (case/control), penalty P (1 - h2) / h2 with P the number
  of predictors (times 3 / pi^2 for case/control, the liability scale), for each h2 of the
  grid, again fitted fold by fold; the h2 with the smallest out-of-fold error (squared
  error, or deviance) is kept.
- LOCO: each sample's prediction for chromosome c comes from the level-1 fit without its
  fold and without chromosome c's predictors. regenie drops them from the one level-1 fit;
  for a quantitative trait the level-1 ridge is refitted here for each chromosome without
  them, at the chosen penalty (``refit``; the logistic fit keeps regenie's way, a refit per
  chromosome costing as much again as level 1). Ancestry is predicted by every chromosome's
  blocks together: dropping one chromosome's share from the joint fit drops that share of
  the ancestry prediction (about a fifth with 5 chromosomes; on a 3-population cohort of
  3,000 samples the trait's population means were left 70% corrected and lambda_GC 1.24,
  against 96% and 1.16 refitted). The prediction is on the phenotype's scale (quantitative)
  or the logit scale (case/control).

Memory: one block of genotypes (samples x ``block_size``) at a time and the level-0
predictors (samples x blocks x ``len(h2_grid)``), as regenie without ``--lowmem``.

Step 2 (:func:`associate_loco`): the association tests of
:mod:`genoformer.gwas.stats.association`, chromosome by chromosome, with that chromosome's
LOCO prediction as the offset (subtracted from a quantitative phenotype, in the linear
predictor of a logistic fit; Firth fallback as without it).
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd
from scipy import linalg, special
from threadpoolctl import threadpool_limits

from genoformer.engine.errors import InputError
from genoformer.engine.runs import atomic_path, write_table
from genoformer.gwas.stats.association import (
    _logistic_null,
    _prepare_covariates,
    _prepare_phenotype,
    associate,
)

#: regenie's default grid of heritabilities for both levels (its --l0 / --l1 defaults: 5).
H2_GRID = (0.01, 0.25, 0.5, 0.75, 0.99)
_TINY = 1e-8  # a residualised genotype with a smaller SD is left out (monomorphic here)
_LOGISTIC_STEPS = 30


@dataclass(frozen=True)
class WGRSettings:
    """Options of step 1 (``refit``: level 1 refitted per chromosome, see the module
    docstring): variants per block (regenie --bsize; 200 rather than regenie's
    advised 1000: the level-0 solves cost block_size^2 per variant; 1000 corrected population
    structure better in bench/bench_relatedness.py, docs/benchmarks.md), folds (--cv), the
    heritabilities of the ridge penalties (regenie's 5-value grid) and the folds' seed."""

    block_size: int = 200
    folds: int = 5
    h2_grid: tuple[float, ...] = H2_GRID
    seed: int = 0
    refit: bool = True


@dataclass
class WGRResult:
    """The step-1 fit: ``loco`` (samples x chromosomes, NaN for samples not analysed) on
    the phenotype's scale (quantitative) or the logit scale (case/control), and a summary."""

    loco: np.ndarray
    chromosomes: list[str]
    test: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def offset(self, chrom: str) -> np.ndarray:
        """The LOCO prediction of every sample for the variants of ``chrom``."""
        return self.loco[:, self.chromosomes.index(str(chrom))]

    def table(self, samples: pd.DataFrame) -> pd.DataFrame:
        """regenie's ``.loco`` layout: a ``FID_IID`` header row of samples, then one row per
        chromosome (its name first, then each sample's prediction)."""
        ids = (samples["fid"].astype(str) + "_" + samples["iid"].astype(str)).tolist()
        rows = np.round(self.loco.T, 6)
        table = pd.DataFrame(rows, columns=ids)
        table.insert(0, "FID_IID", self.chromosomes)
        return table


def check_settings(settings: WGRSettings, n_samples: int) -> None:
    """Refuse a block size, number of folds or heritability grid step 1 cannot use."""
    if settings.block_size < 1:
        raise InputError(
            f"--wgr-block-size is {settings.block_size}",
            where="--wgr-block-size",
            fix="use a positive number of variants per block (regenie uses 1000)",
        )
    if not 2 <= settings.folds <= n_samples:
        raise InputError(
            f"--wgr-folds is {settings.folds}, and {n_samples:,} samples are analysed",
            where="--wgr-folds",
            fix=f"use 2 to {n_samples:,} folds (regenie uses 5)",
        )
    bad = [h for h in settings.h2_grid if not 0.0 < h < 1.0]
    if bad or not settings.h2_grid:
        raise InputError(
            f"heritabilities of the ridge grid must lie strictly between 0 and 1, got {bad}",
            where="h2_grid",
            fix="use values such as regenie's 0.01, 0.25, 0.5, 0.75, 0.99",
        )


def fit_wgr(
    source: Any,
    phenotype: Any,
    *,
    covariates: Any = None,
    test: str = "auto",
    samples: np.ndarray | None = None,
    variants: np.ndarray | None = None,
    settings: WGRSettings = WGRSettings(),
) -> WGRResult:
    """Step 1: level-0 block ridge, level-1 ridge, LOCO predictions (see the module docstring).

    ``source``, ``phenotype``, ``covariates``, ``test``, ``samples`` and ``variants`` as
    :func:`genoformer.gwas.stats.association.associate` takes them; samples without a
    phenotype or a covariate are left out (NaN in the predictions).
    """
    n_all = int(source.n_samples)
    y, test = _prepare_phenotype(phenotype, n_all, test)
    if test not in ("linear", "logistic"):
        raise InputError(
            f"whole-genome regression (--wgr) goes with linear or logistic tests, not {test}",
            where="--test",
            fix="use --test linear, logistic or auto with --wgr",
        )
    C, _ = _prepare_covariates(covariates, n_all)
    use = np.isfinite(y) & np.isfinite(C).all(axis=1)
    if samples is not None:
        chosen = np.zeros(n_all, dtype=bool)
        chosen[np.asarray(samples)] = True
        use &= chosen
    keep = np.flatnonzero(use)
    check_settings(settings, keep.size)
    chosen_variants = np.arange(source.n_variants) if variants is None else np.asarray(variants)
    chroms = source.variants["chrom"].astype(str).to_numpy()[chosen_variants]
    names = list(dict.fromkeys(chroms))
    if len(names) < 2:
        raise InputError(
            f"--wgr needs variants on at least 2 chromosomes, found {len(names)} "
            f"({', '.join(names) or 'none'})",
            file=getattr(source, "path", None),
            fix="give genotypes of several chromosomes: each LOCO prediction comes from the "
            "chromosomes not tested (regenie needs them too)",
        )
    Q, phen, offset0 = _null_model(y[keep], C[keep], test)
    order = np.random.default_rng(settings.seed).permutation(keep.size)
    folds = [np.sort(part) for part in np.array_split(order, settings.folds)]
    n_used = sum(int((chroms == c).sum()) for c in names)
    # Many small solves: BLAS threads that spin while waiting made them 20x slower on a
    # loaded machine; blocks run on Python threads instead (as the association kernels do).
    with threadpool_limits(1, user_api="blas"):
        W, block_chrom = _level0(
            source, keep, chosen_variants, chroms, names, Q, phen, folds, settings, n_used
        )
        beta, best, errors = _level1(W, phen, y[keep], offset0, test, folds, settings.h2_grid)
        loco = np.full((n_all, len(names)), np.nan)
        if test == "linear" and settings.refit:
            h2 = settings.h2_grid[best]
            loco[keep] = _loco_refit(W, phen["z"], folds, block_chrom, h2) * phen["scale"]
        else:
            for c in range(len(names)):
                mask = block_chrom != c
                pred = np.empty(keep.size)
                for k, rows in enumerate(folds):
                    pred[rows] = W[rows][:, mask] @ beta[k][mask]
                loco[keep, c] = pred * (phen["scale"] if test == "linear" else 1.0)
    metrics = {
        "samples": int(keep.size),
        "variants": int(n_used),
        "blocks": int(W.shape[1] // len(settings.h2_grid)),
        "folds": settings.folds,
        "level1_h2": float(settings.h2_grid[best]),
        "level1_cv_error": [float(e) for e in errors],
    }
    return WGRResult(loco, names, test, metrics)


def _null_model(y: np.ndarray, C: np.ndarray, test: str) -> tuple[np.ndarray, dict, np.ndarray]:
    """An orthonormal basis ``Q`` of intercept and covariates, the level-0 phenotype
    (``phen["z"]``, unit variance, covariates projected out; ``phen["scale"]`` its SD on the
    phenotype's scale), and the covariates-only logit offset (zeros for a linear test)."""
    X = np.hstack([np.ones((y.size, 1)), C])
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    Q = U[:, s > s[0] * 1e-10]
    n_cov = Q.shape[1]
    if y.size <= n_cov + 1:
        raise InputError(
            f"{y.size} samples for {n_cov} covariates (intercept included)",
            fix="give more samples or fewer covariates to --wgr",
        )
    offset0 = np.zeros(y.size)
    if test == "logistic":
        if y.min() == y.max():
            raise InputError("logistic regression needs both cases and controls")
        offset0 = X @ _logistic_null(y, X)
        p0 = special.expit(offset0)
        r = (y - p0) / np.sqrt(p0 * (1.0 - p0))
    else:
        r = y
    r = r - Q @ (Q.T @ r)
    scale = float(np.linalg.norm(r) / math.sqrt(y.size - n_cov))
    if not scale > 0:
        raise InputError(
            "the phenotype is constant once the covariates are accounted for",
            fix="check the phenotype column and the covariates",
        )
    return Q, {"z": r / scale, "scale": scale}, offset0


def _standardised_block(G: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Mean-imputed genotypes with the covariates projected out, scaled to unit variance
    (norm / sqrt(N - C), as regenie); columns without variance become 0."""
    G = np.asarray(G, dtype=np.float64)
    missing = np.isnan(G)
    if missing.any():
        mean = np.nanmean(np.where(missing.all(axis=0), 0.0, G), axis=0)
        G = np.where(missing, mean, G)
    G -= Q @ (Q.T @ G)
    sd = np.linalg.norm(G, axis=0) / math.sqrt(G.shape[0] - Q.shape[1])
    G *= np.where(sd > _TINY, 1.0 / np.where(sd > _TINY, sd, 1.0), 0.0)
    return G


def _level0(
    source: Any,
    keep: np.ndarray,
    variants: np.ndarray,
    chroms: np.ndarray,
    names: list[str],
    Q: np.ndarray,
    phen: dict,
    folds: list[np.ndarray],
    settings: WGRSettings,
    n_used: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The out-of-fold level-0 predictors (samples x blocks*len(h2_grid)), standardised, and
    each predictor's chromosome (index into ``names``)."""
    z = phen["z"]
    h2 = np.asarray(settings.h2_grid, dtype=np.float64)
    lam = n_used * (1.0 - h2) / h2

    def work(G: np.ndarray) -> np.ndarray:
        return _block_predictions(_standardised_block(G, Q), z, folds, lam)

    # Blocks are read here, in order, and solved on Python threads (BLAS and LAPACK release
    # the GIL), a bounded number in flight; BLAS itself is held to one thread by the caller.
    threads = max(1, numba.get_num_threads())
    columns, owner, pending = [], [], deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="genoformer-wgr") as pool:
        for c, name in enumerate(names):
            index = variants[chroms == name]
            for _, G in source.chunks(size=settings.block_size, samples=keep, variants=index):
                pending.append(pool.submit(work, np.asarray(G)))
                owner += [c] * lam.size
                if len(pending) > 2 * threads:
                    columns.append(pending.popleft().result())
        columns += [future.result() for future in pending]
    W = np.hstack(columns)
    W -= W.mean(axis=0)
    sd = W.std(axis=0, ddof=1)
    W /= np.where(sd > 0, sd, 1.0)
    return W, np.asarray(owner)


def _block_predictions(
    X: np.ndarray, z: np.ndarray, folds: list[np.ndarray], lam: np.ndarray
) -> np.ndarray:
    """Out-of-fold ridge predictions of ``z`` from one block ``X``, one column per penalty."""
    blocks = [X[rows] for rows in folds]
    parts = [(Xk.T @ Xk, Xk.T @ z[rows]) for Xk, rows in zip(blocks, folds, strict=True)]
    XtX = sum(p[0] for p in parts)
    Xtz = sum(p[1] for p in parts)
    diagonal = np.arange(X.shape[1])
    out = np.empty((z.size, lam.size))
    for Xk, rows, (A_k, b_k) in zip(blocks, folds, parts, strict=True):
        A = XtX - A_k
        b = Xtz - b_k
        beta = np.empty((X.shape[1], lam.size))
        for r, value in enumerate(lam):
            A_r = A.copy()
            A_r[diagonal, diagonal] += value
            beta[:, r] = linalg.cho_solve(linalg.cho_factor(A_r, overwrite_a=True), b)
        out[rows] = Xk @ beta
    return out


def _level1(
    W: np.ndarray,
    phen: dict,
    y: np.ndarray,
    offset0: np.ndarray,
    test: str,
    folds: list[np.ndarray],
    h2_grid: tuple[float, ...],
) -> tuple[list[np.ndarray], int, np.ndarray]:
    """Level-1 coefficients per fold (fitted without it) at the best penalty, its index in
    the grid, and the out-of-fold error of every penalty."""
    P = W.shape[1]
    h2 = np.asarray(h2_grid, dtype=np.float64)
    tau = P * (1.0 - h2) / h2
    if test == "logistic":
        tau = tau * 3.0 / math.pi**2
    fits = [[None] * tau.size for _ in folds]
    errors = np.zeros(tau.size)
    for k, rows in enumerate(folds):
        train = np.ones(W.shape[0], dtype=bool)
        train[rows] = False
        if test == "linear":
            z = phen["z"]
            A = W[train].T @ W[train]
            b = W[train].T @ z[train]
            for t, value in enumerate(tau):
                fits[k][t] = np.linalg.solve(A + value * np.eye(P), b)
                errors[t] += np.sum((z[rows] - W[rows] @ fits[k][t]) ** 2)
        else:
            start = np.zeros(P)
            for t, value in enumerate(tau):
                start = _logistic_ridge(W[train], y[train], offset0[train], value, start)
                fits[k][t] = start
                eta = offset0[rows] + W[rows] @ start
                errors[t] -= 2.0 * np.sum(y[rows] * eta - np.logaddexp(0.0, eta))
    best = int(np.argmin(errors))
    return [fits[k][best] for k in range(len(folds))], best, errors / W.shape[0]


def _loco_refit(
    W: np.ndarray, z: np.ndarray, folds: list[np.ndarray], owner: np.ndarray, h2: float
) -> np.ndarray:
    """LOCO predictions (samples x chromosomes) from level-1 ridge fits refitted without each
    chromosome's predictors, at the chosen heritability, fold by fold."""
    n_chrom = int(owner.max()) + 1
    out = np.empty((W.shape[0], n_chrom))
    for rows in folds:
        train = np.ones(W.shape[0], dtype=bool)
        train[rows] = False
        A = W[train].T @ W[train]
        b = W[train].T @ z[train]
        for c in range(n_chrom):
            mask = owner != c
            tau = mask.sum() * (1.0 - h2) / h2
            A_c = A[np.ix_(mask, mask)]
            A_c[np.diag_indices_from(A_c)] += tau
            beta = linalg.cho_solve(linalg.cho_factor(A_c, overwrite_a=True), b[mask])
            out[rows, c] = W[rows][:, mask] @ beta
    return out


def _logistic_ridge(
    W: np.ndarray, y: np.ndarray, offset: np.ndarray, tau: float, start: np.ndarray
) -> np.ndarray:
    """Ridge-penalised logistic regression (no intercept: the offset carries it) by Newton
    steps with step halving, from ``start`` (warm starts along the penalty grid, as regenie)."""
    beta = start.copy()
    eye = np.eye(W.shape[1])

    def penalised(b: np.ndarray) -> float:
        eta = offset + W @ b
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)) - 0.5 * tau * b @ b)

    current = penalised(beta)
    for _ in range(_LOGISTIC_STEPS):
        p = special.expit(offset + W @ beta)
        grad = W.T @ (y - p) - tau * beta
        H = (W * (p * (1.0 - p))[:, None]).T @ W + tau * eye
        step = np.linalg.solve(H, grad)
        for _halving in range(10):
            candidate = penalised(beta + step)
            if candidate >= current - 1e-10:
                break
            step /= 2.0
        beta += step
        current = candidate
        if np.abs(step).max() < 1e-6:
            break
    return beta


def write_loco(
    fit: WGRResult, samples: pd.DataFrame, out_dir: Path, phenotype: str
) -> dict[str, Path]:
    """Step 1's output as regenie writes it (tab-separated): ``wgr.loco`` (see
    :meth:`WGRResult.table`) and ``wgr_pred.list`` (phenotype name and the .loco file)."""
    loco = write_table(out_dir / "wgr.loco", fit.table(samples))
    pred = out_dir / "wgr_pred.list"
    with atomic_path(pred) as tmp:
        Path(tmp).write_text(f"{phenotype} {loco.resolve()}\n")
    return {"wgr_loco": loco, "wgr_pred_list": pred}


def associate_loco(source: Any, phenotype: Any, fit: WGRResult, **options: Any) -> pd.DataFrame:
    """Step 2: :func:`~genoformer.gwas.stats.association.associate` chromosome by chromosome,
    with the chromosome's LOCO prediction of ``fit`` as the offset. ``options`` are
    ``associate``'s (``variants`` restricts the variants, e.g. to those that pass QC)."""
    variants = options.pop("variants", None)
    chosen = np.arange(source.n_variants) if variants is None else np.asarray(variants)
    chroms = source.variants["chrom"].astype(str).to_numpy()
    order = list(dict.fromkeys(chroms[chosen]))
    tables = []
    for name in order:
        if name not in fit.chromosomes:  # pragma: no cover - step 1 saw every chromosome
            raise InputError(f"no LOCO prediction for chromosome {name}", fix="rerun step 1")
        index = chosen[chroms[chosen] == name]
        tables.append(
            associate(source, phenotype, variants=index, offset=fit.offset(name), **options)
        )
    return pd.concat(tables, ignore_index=True)
