"""Genotypes as a sequence of tokens for the genotype-to-phenotype transformer.

Each input column (a variant, or a decoy: a copy of a variant with its genotypes permuted
across samples) carries a learned embedding for each genotype 0, 1, 2 and for a missing call.
A dosage between two genotypes is embedded by linear interpolation between them, so the
embedding is differentiable in the dosage and equals the genotype's own embedding at 0, 1 and
2. Columns are grouped into windows of ``window`` consecutive columns on one chromosome; a
window's token is the sum of its columns' embeddings (a linear projection of its genotypes)
plus a learned embedding of the window itself. ``window=1`` gives one token per variant.

Data side: pre-selection of the variants the model takes (the marginal association screen,
optionally with Levene's variance test, on the training samples), the cohort's input matrix
(real columns, then decoys), covariates standardised with the training samples' mean and
standard deviation, and a torch dataset of the dicts the model takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from genoformer.engine.errors import InputError

if TYPE_CHECKING:
    from genoformer.gwas.io.genotypes import GenotypeSource

#: Genotype codes per column: weights of genotype 0, 1, 2 and the missing flag.
N_CODES = 4


def missing_calls(genotypes: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
    """Which cells are missing calls: flagged in ``missing`` or NaN."""
    nan = torch.isnan(genotypes)
    return nan if missing is None else missing.bool() | nan


def genotype_codes(genotypes: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
    """Interpolation weights of genotypes 0, 1, 2 and the missing flag, ``[b, m, 4]``.

    A dosage ``x`` in [0, 1] weighs genotype 0 by ``1 - x`` and 1 by ``x``; in [1, 2] it weighs
    1 by ``2 - x`` and 2 by ``x - 1``. Missing cells (``missing`` True, or NaN) get weight
    only on the missing code. The weights are differentiable in ``genotypes``; at the knots
    the derivative is the one of the segment toward the next genotype (toward 2 at 1, the
    segment [1, 2] at 2).
    """
    x = genotypes
    flag = missing_calls(x, missing)
    x = torch.where(flag, torch.zeros_like(x), x).clamp(0.0, 2.0)
    upper = (x >= 1.0).to(x.dtype).detach()  # which segment: [0, 1] or [1, 2]
    t = x - upper
    present = 1.0 - flag.to(x.dtype)
    codes = torch.stack(
        [
            (1.0 - upper) * (1.0 - t) * present,
            ((1.0 - upper) * t + upper * (1.0 - t)) * present,
            upper * t * present,
            flag.to(x.dtype),
        ],
        dim=-1,
    )
    return codes


def window_layout(chroms: Sequence[str], groups: Sequence[int] | None, window: int) -> np.ndarray:
    """The token of every column: runs of ``window`` consecutive columns that share a
    chromosome and a group (real variants and decoys are different groups).

    Returns
    -------
    np.ndarray
        int64 token index per column, from 0, non-decreasing.
    """
    if window < 1:
        raise InputError(f"window is {window}", where="--window", fix="use 1 or more variants")
    n = len(chroms)
    group = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    chrom = np.asarray(chroms, dtype=object)
    token = np.empty(n, dtype=np.int64)
    current, filled = -1, window
    for j in range(n):
        new_block = j == 0 or chrom[j] != chrom[j - 1] or group[j] != group[j - 1]
        if new_block or filled == window:
            current += 1
            filled = 0
        token[j] = current
        filled += 1
    return token


class GenotypeEmbedding(nn.Module):
    """Columns' genotype embeddings summed into window tokens, plus a learned embedding per
    token: ``[b, m]`` dosages (and missing flags) to ``[b, n_tokens, d]``."""

    def __init__(self, token_of_column: Sequence[int], d_model: int, init_std: float = 0.02):
        super().__init__()
        layout = np.asarray(token_of_column, dtype=np.int64)
        self.n_columns = int(layout.size)
        self.n_tokens = int(layout.max()) + 1 if layout.size else 0
        self.d_model = d_model
        self.register_buffer("token_of_column", torch.from_numpy(layout))
        self.genotype = nn.Parameter(torch.randn(self.n_columns, N_CODES, d_model) * init_std)
        self.position = nn.Parameter(torch.randn(self.n_tokens, d_model) * init_std)

    def forward(self, genotypes: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
        codes = genotype_codes(genotypes, missing)  # [b, m, 4]
        per_column = torch.einsum("bmc,mcd->bmd", codes, self.genotype)
        tokens = per_column.new_zeros(per_column.shape[0], self.n_tokens, self.d_model)
        tokens = tokens.index_add(1, self.token_of_column, per_column)
        return tokens + self.position


# ------------------------------------------------------------------------ pre-selection


def variance_heterogeneity(G: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Levene's test per variant: does the spread of ``residual`` differ between genotype
    groups? One p-value per column of ``G`` (samples x variants, NaN missing; 1 when fewer
    than two groups). A variant in an epistatic pair changes the phenotype's variance even
    when it leaves its mean unchanged, which is what makes this screen see it."""
    from scipy import stats

    codes = np.where(np.isnan(G), -1, np.rint(G)).astype(np.int8)
    r = np.asarray(residual, dtype=np.float64)[:, None]
    deviation = np.zeros(G.shape, dtype=np.float64)
    counts = []
    for g in (0, 1, 2):
        in_group = codes == g
        n_g = in_group.sum(axis=0)
        mean = (in_group * r).sum(axis=0) / np.maximum(n_g, 1)
        deviation += in_group * np.abs(r - mean)
        counts.append(n_g)
    valid = codes >= 0
    n = valid.sum(axis=0)
    grand = (deviation * valid).sum(axis=0) / np.maximum(n, 1)
    between = np.zeros(G.shape[1])
    within = np.zeros(G.shape[1])
    for g, n_g in zip((0, 1, 2), counts, strict=True):
        in_group = codes == g
        mean = (deviation * in_group).sum(axis=0) / np.maximum(n_g, 1)
        between += n_g * (mean - grand) ** 2
        within += ((deviation - mean) ** 2 * in_group).sum(axis=0)
    k = np.sum([c > 0 for c in counts], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (between / (k - 1)) / (within / (n - k))
        p = stats.f.sf(f, k - 1, n - k)
    return np.where((k >= 2) & np.isfinite(p), p, 1.0)


PRESELECT_BY = ("marginal", "marginal+variance")


def preselect_variants(
    source: GenotypeSource,
    index: np.ndarray,
    y: np.ndarray,
    covariates: np.ndarray | None,
    train_rows: np.ndarray,
    top: int,
    by: str = "marginal",
) -> tuple[np.ndarray, pd.DataFrame]:
    """The ``top`` variants by association p on the training samples, in file order: the
    marginal (additive) test, or the smaller of it and Levene's variance test; and the
    association results of every variant (with ``P_VARIANCE``, Levene's p, when used).

    ``index`` holds the cohort's rows of the genotype file, ``y`` and ``covariates`` (raw,
    or None) one row per cohort sample, ``train_rows`` the training samples' rows of them.
    """
    from genoformer.gwas.stats.association import associate

    if top < 1:
        raise InputError(f"preselect is {top}", where="--preselect", fix="use 1 or more")
    if by not in PRESELECT_BY:
        raise InputError(
            f"unknown preselection '{by}'",
            where="--preselect-by",
            fix=f"use {' or '.join(PRESELECT_BY)}",
        )
    y_file = np.full(source.n_samples, np.nan)
    y_file[index] = y
    X = None
    if covariates is not None and covariates.shape[1]:
        X = np.full((source.n_samples, covariates.shape[1]), np.nan)
        X[index] = covariates
    rows = index[train_rows]
    results = associate(source, y_file, covariates=X, samples=rows)
    p = results["P"].to_numpy(dtype=float)
    if by == "marginal+variance":
        design = np.ones((len(rows), 1))
        if X is not None:
            design = np.column_stack([design, X[rows]])
        coef, *_ = np.linalg.lstsq(design, y_file[rows], rcond=None)
        residual = y_file[rows] - design @ coef
        levene = np.ones(source.n_variants)
        for chunk, G in source.chunks(2048, samples=rows):
            levene[chunk] = variance_heterogeneity(G, residual)
        results["P_VARIANCE"] = levene
        p = np.fmin(p, levene)
    p = np.where(np.isfinite(p), p, np.inf)
    return np.sort(np.argsort(p, kind="stable")[: min(top, len(p))]), results


# ------------------------------------------------------------------------------ data side


@dataclass
class CohortInputs:
    """Model inputs of a set of samples, in model column order (decoys included).

    ``genotypes`` float32 ``[n, m]`` (missing cells 0), ``missing`` bool ``[n, m]``,
    ``covariates`` float32 ``[n, c]`` standardised as in training (or None), ``y`` float
    ``[n]`` (NaN when unknown; 0/1 for case/control).
    """

    genotypes: np.ndarray
    missing: np.ndarray
    covariates: np.ndarray | None
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.genotypes)

    def subset(self, rows: np.ndarray) -> CohortInputs:
        return CohortInputs(
            self.genotypes[rows],
            self.missing[rows],
            None if self.covariates is None else self.covariates[rows],
            self.y[rows],
        )


def split_missing(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN-coded genotypes as (float32 values with 0 where missing, bool missing mask)."""
    missing = np.isnan(G)
    return np.where(missing, 0.0, G).astype(np.float32), missing


def choose_decoys(n_columns: int, n_decoys: int, seed: int) -> np.ndarray:
    """Which real columns get a decoy copy: ``n_decoys`` distinct ones, in column order."""
    if n_decoys < 0:
        raise InputError(f"{n_decoys} decoys", where="--decoys", fix="use 0 or more")
    n = min(n_decoys, n_columns)
    rng = np.random.default_rng([seed, 1])
    return np.sort(rng.choice(n_columns, size=n, replace=False))


def decoy_permutation(n_samples: int, seed: int) -> np.ndarray:
    """The sample permutation all decoy columns share (so decoys keep the LD between them and
    lose every link to the phenotype)."""
    return np.random.default_rng([seed, 2]).permutation(n_samples)


def with_decoys(G: np.ndarray, decoy_source: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Real columns, then decoy columns: ``G[permutation][:, decoy_source]``."""
    if not len(decoy_source):
        return G
    return np.concatenate([G, G[permutation][:, decoy_source]], axis=1)


def standardise_covariates(
    X: np.ndarray, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """Covariates centred and scaled with the training samples' statistics."""
    return ((X - np.asarray(mean)) / np.asarray(std)).astype(np.float32)


def covariate_scaling(X: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and standard deviation per covariate (1 for a constant one)."""
    mean = np.nanmean(X, axis=0)
    std = np.nanstd(X, axis=0)
    std[~(std > 0)] = 1.0
    return mean.astype(float).tolist(), std.astype(float).tolist()


class GenotypeDataset(Dataset):
    """The dicts the model takes (``genotypes``, ``missing``, ``covariates``, ``labels``)."""

    def __init__(self, inputs: CohortInputs, *, task: str = "regression") -> None:
        self.genotypes = torch.from_numpy(np.ascontiguousarray(inputs.genotypes, np.float32))
        self.missing = torch.from_numpy(np.ascontiguousarray(inputs.missing, bool))
        self.covariates = (
            None
            if inputs.covariates is None
            else torch.from_numpy(np.ascontiguousarray(inputs.covariates, np.float32))
        )
        y = np.nan_to_num(np.asarray(inputs.y, dtype=np.float64), nan=0.0)
        self.labels = (
            torch.from_numpy(y.astype(np.int64))
            if task == "classification"
            else torch.from_numpy(y.astype(np.float32))
        )

    def __len__(self) -> int:
        return len(self.genotypes)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {
            "genotypes": self.genotypes[i],
            "missing": self.missing[i],
            "labels": self.labels[i],
        }
        if self.covariates is not None:
            item["covariates"] = self.covariates[i]
        return item
