"""Per-variant importance from a trained genotype model, and its calibration by decoys.

Every function works on a score function ``f(genotypes, missing, covariates) -> (b,)``, one
differentiable scalar per sample (``functools.partial(genoformer.gwas.model.network.score, model)``:
the prediction for a quantitative trait, the log-odds of a case for a binary one), and on
the model's inputs as numpy arrays or tensors: ``genotypes`` (n, m) dosages in [0, 2],
``missing`` (n, m) bool or None, ``covariates`` (n, c) or None, columns in model order.

Methods, each giving one number per sample and variant (:func:`saliency`,
:func:`gradient_x_input`, :func:`integrated_gradients`) or per variant
(:func:`substitution`):

- saliency: the gradient of the score with respect to the dosage;
- gradient x input: gradient times dosage, the first-order contribution of the dosage;
- integrated gradients (Captum): the path integral of the gradient from a baseline (dosage
  0, the homozygote for the other allele, by default) to the sample's dosages; the
  attributions of a sample add up to ``f(x) - f(baseline)``. SmoothGrad (Captum's
  ``NoiseTunnel``) averages them over copies of the input with Gaussian noise added to the
  dosages;
- in silico substitution: each variant set to 0, 1 and 2 in every sample (a missing call
  becomes that known genotype); the importance is the mean absolute change of the score
  over samples and levels.

A missing call is read through the model's "missing" embedding, not its dosage, so its
gradient attributions are 0.

Calibration (:func:`calibrate`): decoy columns are permuted copies of real variants, so
linked to neither the phenotype nor any other variant; their scores are the null. A real
variant's empirical p-value is ``(1 + #{decoys >= score}) / (1 + #decoys)``, its q-value
the Benjamini-Hochberg FDR over the real variants. Each decoy gets the same p-value against
the other decoys (leave one out), which is what checks the calibration. A count can never
go below ``1 / (1 + #decoys)``, too coarse for an FDR over many variants when decoys are a
few dozen: so a score beyond every decoy gets ``P(null >= score)`` from a gamma
distribution fitted to the decoy scores, capped at the count's ``1 / (1 + #decoys)``. This
follows Knijnenburg et al. 2009 ("Fewer permutations, more accurate P-values"), who fit a
Pareto tail where fewer than 10 permutations exceed a score; a few dozen decoys are too few
to fit a tail alone, and a gamma fitted to the whole null can be too light in the tail of a
skewed null, so it is used only beyond the last decoy, where no count can say more. The
decoys' own leave-one-out p-values go through the same rule, so the share of decoys called
checks the fit too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from genoformer.engine.attribution import check_batch_size, gradients
from genoformer.engine.attribution import integrated_gradients as engine_integrated_gradients
from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError
from genoformer.engine.progress import progress_bar
from genoformer.engine.stats import (
    benjamini_hochberg,
    empirical_pvalues,
    leave_one_out_pvalues,
    q_as_extra_test,
)

__all__ = [
    "GRADIENT_METHODS",
    "METHODS",
    "ScoreFunction",
    "SubstitutionResult",
    "as_inputs",
    "benjamini_hochberg",
    "calibrate",
    "empirical_pvalues",
    "gradient_x_input",
    "integrated_gradients",
    "leave_one_out_pvalues",
    "mean_absolute",
    "saliency",
    "screen",
    "substitution",
]

#: f(genotypes (b, m), missing (b, m) | None, covariates (b, c) | None) -> score (b,).
ScoreFunction = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]

GRADIENT_METHODS = ("saliency", "gradient_x_input", "ig")
METHODS = (*GRADIENT_METHODS, "substitution")
#: Genotype cells one batch of substituted inputs may hold (4 Mi float32, 16 MiB): the
#: model's own activations per cell are many times that (d_model floats per column).
_BATCH_CELLS = 2**22


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------


@dataclass
class _Inputs:
    genotypes: torch.Tensor
    missing: torch.Tensor | None
    covariates: torch.Tensor | None

    @property
    def n(self) -> int:
        return int(self.genotypes.shape[0])

    @property
    def m(self) -> int:
        return int(self.genotypes.shape[1])

    def rows(self, index: torch.Tensor | slice) -> _Inputs:
        return _Inputs(
            self.genotypes[index],
            None if self.missing is None else self.missing[index],
            None if self.covariates is None else self.covariates[index],
        )


def _tensor(values: np.ndarray | torch.Tensor) -> torch.Tensor:
    return values if torch.is_tensor(values) else torch.as_tensor(np.asarray(values))


def as_inputs(
    genotypes: np.ndarray | torch.Tensor,
    missing: np.ndarray | torch.Tensor | None = None,
    covariates: np.ndarray | torch.Tensor | None = None,
    *,
    device: str | torch.device | None = None,
) -> _Inputs:
    """The model's inputs as float32 / bool tensors on ``device``, checked for shape."""
    device = torch.device(device or "cpu")
    g = _tensor(genotypes)
    if g.ndim != 2 or g.shape[0] == 0 or g.shape[1] == 0:
        raise InputError(
            f"genotypes have shape {tuple(g.shape)}, expected (samples, variants) with both > 0",
            fix="pass a 2-D dosage matrix, one row per sample",
        )
    g = g.to(device, torch.float32)
    miss = _per_sample(
        missing, g, torch.bool, "missing has", "one missing flag per genotype cell", per_cell=True
    )
    cov = _per_sample(
        covariates,
        g,
        torch.float32,
        "covariates have",
        "one covariate row per sample",
        per_cell=False,
    )
    observed = g if miss is None else g[~miss]
    if not torch.isfinite(observed).all():
        raise InputError(
            "genotypes hold NaN or infinite values outside the missing cells",
            fix="flag missing calls in `missing` and put any finite value (e.g. 0) there",
        )
    return _Inputs(g, miss, cov)


def _per_sample(
    values: np.ndarray | torch.Tensor | None,
    g: torch.Tensor,
    dtype: torch.dtype,
    name: str,
    fix: str,
    *,
    per_cell: bool,
) -> torch.Tensor | None:
    """An optional input beside the genotypes ``g``, as a ``dtype`` tensor on their device:
    one value per genotype cell (``per_cell``, the missing flags) or one row per sample."""
    if values is None:
        return None
    t = _tensor(values)
    if not per_cell and t.ndim == 1:
        t = t[:, None]
    fits = t.shape == g.shape if per_cell else (t.ndim == 2 and t.shape[0] == g.shape[0])
    if not fits:
        expected = tuple(g.shape) if per_cell else f"{g.shape[0]} samples"
        raise InputError(
            f"{name} shape {tuple(t.shape)}, the genotypes {expected}", fix=f"pass {fix}"
        )
    return t.to(g.device, dtype)


def _score(f: ScoreFunction, x: _Inputs, genotypes: torch.Tensor | None = None) -> torch.Tensor:
    y = f(x.genotypes if genotypes is None else genotypes, x.missing, x.covariates)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != x.n:
        raise ValueError(
            f"the score function returned shape {tuple(y.shape)} for {x.n} samples; "
            "it must return one scalar per sample"
        )
    return y


def _gradients(f: ScoreFunction, x: _Inputs, batch_size: int) -> torch.Tensor:
    def score(g: torch.Tensor, missing, covariates) -> torch.Tensor:
        return _score(f, _Inputs(g, missing, covariates))

    grads = gradients(
        score,
        x.genotypes,
        args=(x.missing, x.covariates),
        batch_size=batch_size,
        device=x.genotypes.device,
    )
    return grads.to(x.genotypes.device)


def _substituted_batch(batch_size: int | None, x: _Inputs) -> int:
    """Samples per forward pass of substituted inputs: ``batch_size``, else as many as the
    memory budget ``_BATCH_CELLS`` holds (at least 16)."""
    batch = batch_size or max(16, _BATCH_CELLS // x.m)
    check_batch_size(batch)
    return batch


def _reference_scores(f: ScoreFunction, x: _Inputs, batch: int) -> torch.Tensor:
    """Every sample's score as it is, ``batch`` samples per forward pass (no gradients: call
    under ``torch.inference_mode``)."""
    return torch.cat([_score(f, x.rows(slice(lo, lo + batch))) for lo in range(0, x.n, batch)])


def _masked(values: torch.Tensor, x: _Inputs) -> np.ndarray:
    if x.missing is not None:
        values = values.masked_fill(x.missing, 0.0)
    return values.detach().float().cpu().numpy()


def saliency(
    f: ScoreFunction,
    genotypes: np.ndarray | torch.Tensor,
    missing: np.ndarray | torch.Tensor | None = None,
    covariates: np.ndarray | torch.Tensor | None = None,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Gradient of the score with respect to each dosage, (n, m) float32 (0 where missing)."""
    x = as_inputs(genotypes, missing, covariates, device=device)
    return _masked(_gradients(f, x, batch_size), x)


def gradient_x_input(
    f: ScoreFunction, genotypes: Any, missing: Any = None, covariates: Any = None, **options: Any
) -> np.ndarray:
    """Gradient times dosage, (n, m) float32 (0 where missing): the :func:`saliency` of the
    same inputs (``options``: its ``batch_size`` and ``device``) times each dosage."""
    x = as_inputs(genotypes, missing, covariates)
    grads = saliency(f, x.genotypes, x.missing, x.covariates, **options)
    return _masked(torch.from_numpy(grads) * x.genotypes, x)


def _baseline(baseline: str | float | np.ndarray, x: _Inputs) -> torch.Tensor:
    """The IG baseline, broadcast to (n, m)."""
    if isinstance(baseline, str):
        if baseline == "zero":
            return torch.zeros_like(x.genotypes)
        if baseline == "mean":
            g = x.genotypes if x.missing is None else x.genotypes.masked_fill(x.missing, 0.0)
            seen = x.n if x.missing is None else (~x.missing).sum(0).clamp(min=1)
            return (g.sum(0) / seen).expand_as(g).contiguous()
        raise InputError(
            f"unknown baseline {baseline!r}",
            where="baseline",
            fix="use 'zero', 'mean', a number or one dosage per variant",
        )
    value = torch.as_tensor(np.asarray(baseline, dtype=np.float32), device=x.genotypes.device)
    if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != x.m):
        raise InputError(
            f"baseline has shape {tuple(value.shape)}, expected a number or ({x.m},)",
            where="baseline",
            fix="give one baseline dosage per variant",
        )
    return value.expand_as(x.genotypes).contiguous()


@shared_docs
def integrated_gradients(
    f: ScoreFunction,
    genotypes: np.ndarray | torch.Tensor,
    missing: np.ndarray | torch.Tensor | None = None,
    covariates: np.ndarray | torch.Tensor | None = None,
    *,
    baseline: str | float | np.ndarray = "zero",
    device: str | torch.device | None = None,
    **options: Any,
) -> np.ndarray:
    """Integrated gradients (Captum) of the score, (n, m) float32 (0 where missing).

    Parameters
    ----------
    f, genotypes, missing, covariates
        Score function and model inputs (see the module docstring).
    baseline
        ``"zero"`` (every dosage 0), ``"mean"`` (each variant's mean dosage over the samples
        given), a number, or one dosage per variant.
    {inputs_device}
    options
        ``n_steps``, ``smoothgrad_samples``, ``smoothgrad_sd`` (in dosage units),
        ``batch_size`` and ``seed``, as :func:`genoformer.engine.attribution.integrated_gradients`
        takes them.

    Returns
    -------
    numpy.ndarray
        (n, m); without SmoothGrad, each row sums to ``f(x) - f(baseline)`` up to the
        quadrature error.
    """
    x = as_inputs(genotypes, missing, covariates, device=device)
    out = engine_integrated_gradients(
        f,
        x.genotypes,
        args=(x.missing, x.covariates),
        baselines=_baseline(baseline, x),
        device=x.genotypes.device,
        **options,
    )
    return _masked(out.to(x.genotypes.device), x)


def mean_absolute(attributions: np.ndarray) -> np.ndarray:
    """Per-variant importance: the mean absolute attribution over samples, (m,) float64."""
    return np.abs(np.asarray(attributions, dtype=np.float64)).mean(axis=0)


# ---------------------------------------------------------------------------------------
# In silico substitution
# ---------------------------------------------------------------------------------------


@dataclass
class SubstitutionResult:
    """In silico genotype substitution of the variants in ``columns``.

    Attributes
    ----------
    columns
        Model columns substituted, (k,).
    levels
        Dosages each was set to, (L,).
    importance
        Mean absolute change of the score over samples and levels, (k,).
    mean_score
        Mean score over samples with the variant set to each level, (k, L): the model's
        dose-response curve for that variant.
    reference
        Mean score of the samples as given.
    """

    columns: np.ndarray
    levels: np.ndarray
    importance: np.ndarray
    mean_score: np.ndarray
    reference: float

    @property
    def effect(self) -> np.ndarray:
        """Change of the mean score per copy of the counted allele, from the lowest to the
        highest level, (k,)."""
        span = float(self.levels[-1] - self.levels[0]) or 1.0
        return (self.mean_score[:, -1] - self.mean_score[:, 0]) / span


@shared_docs
def substitution(
    f: ScoreFunction,
    genotypes: np.ndarray | torch.Tensor,
    missing: np.ndarray | torch.Tensor | None = None,
    covariates: np.ndarray | torch.Tensor | None = None,
    *,
    columns: Sequence[int] | np.ndarray | None = None,
    levels: Sequence[float] = (0.0, 1.0, 2.0),
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> SubstitutionResult:
    """In silico genotype substitution: each variant set to each level in every sample.

    A (sample, variant, level) whose dosage already is that level, and is not missing,
    leaves the input unchanged, so its change is 0 without a forward pass; the others are
    batched, many variants and samples per forward pass.

    Parameters
    ----------
    f, genotypes, missing, covariates
        Score function and model inputs (see the module docstring).
    columns
        Model columns to substitute (default: all).
    levels
        Dosages to set (sorted ascending).
    batch_size
        Substituted samples per forward pass; ``None`` picks one from a memory budget.
    {inputs_device}
    {progress}

    Returns
    -------
    SubstitutionResult
    """
    x = as_inputs(genotypes, missing, covariates, device=device)
    columns = _columns(columns, x.m)
    level_values = np.sort(np.asarray(levels, dtype=np.float32))
    if level_values.size == 0:
        raise InputError("no substitution levels given", fix="use levels such as (0, 1, 2)")
    batch = _substituted_batch(batch_size, x)
    k, n_levels = len(columns), level_values.size
    level_t = torch.as_tensor(level_values, device=x.genotypes.device)
    with torch.inference_mode():
        reference = _reference_scores(f, x, batch)
        abs_sum = torch.zeros(k, dtype=torch.float64, device=x.genotypes.device)
        score_sum = torch.zeros((k, n_levels), dtype=torch.float64, device=x.genotypes.device)
        # Edits are listed for a block of variants at a time so the list stays small.
        per_block = max(1, (1 << 22) // max(1, x.n * n_levels))
        with progress_bar(enabled=progress, unit="variants", transient=True) as bar:
            task = bar.add_task("in silico substitution", total=k)
            for start in range(0, k, per_block):
                block = torch.as_tensor(
                    columns[start : start + per_block], device=x.genotypes.device
                )
                current = x.genotypes[:, block]  # (n, b)
                changed = current[:, :, None] != level_t  # (n, b, L)
                if x.missing is not None:
                    changed |= x.missing[:, block][:, :, None]
                sample, which, level = torch.nonzero(changed, as_tuple=True)
                delta = torch.zeros_like(changed, dtype=torch.float64)
                for lo in range(0, len(sample), batch):
                    s, w, lv = (
                        sample[lo : lo + batch],
                        which[lo : lo + batch],
                        level[lo : lo + batch],
                    )
                    rows = x.rows(s)  # advanced indexing: a copy, edited in place
                    e = torch.arange(len(s), device=rows.genotypes.device)
                    rows.genotypes[e, block[w]] = level_t[lv]
                    if rows.missing is not None:
                        rows.missing[e, block[w]] = False
                    y = _score(f, rows)
                    delta[s, w, lv] = (y - reference[s]).double()
                abs_sum[start : start + len(block)] = delta.abs().sum(dim=(0, 2))
                score_sum[start : start + len(block)] = delta.sum(dim=0) + reference.double().sum()
                bar.advance(task, len(block))
    n = x.n
    return SubstitutionResult(
        columns=columns,
        levels=level_values.astype(np.float64),
        importance=(abs_sum / (n * n_levels)).cpu().numpy(),
        mean_score=(score_sum / n).cpu().numpy(),
        reference=float(reference.double().mean()),
    )


def screen(scores: np.ndarray, budget: int) -> np.ndarray:
    """The ``budget`` columns with the highest ``scores``, real and decoy alike (sorted).

    A cheap score (a gradient method) picks the columns an expensive one (substitution) is
    computed for. Real variants and decoys pass the same screen, so the decoys that pass are
    exactly those a real null variant would have needed to beat, and the decoys left out
    rank below every screened column: with NaN for the columns left out,
    :func:`calibrate` gives p-values against all decoys, at full resolution, for the cost
    of the screened columns only. Ties at the cut are broken by column order.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if budget < 1:
        raise InputError(f"screen budget is {budget}", fix="screen 1 or more columns")
    order = np.lexsort((np.arange(scores.size), -np.nan_to_num(scores, nan=-np.inf)))
    return np.sort(order[:budget])


def _columns(columns: Sequence[int] | np.ndarray | None, m: int) -> np.ndarray:
    if columns is None:
        return np.arange(m)
    columns = np.asarray(columns)
    if columns.dtype == bool:
        if columns.size != m:
            raise InputError(
                f"column mask has {columns.size} entries for {m} variants",
                fix="pass one flag per model column, or column indices",
            )
        return np.flatnonzero(columns)
    columns = columns.astype(np.int64).ravel()
    bad = (columns < 0) | (columns >= m)
    if bad.any():
        raise InputError(
            f"column {int(columns[bad][0])} is out of range for {m} variants",
            fix=f"use model column indices from 0 to {m - 1}",
        )
    return columns


# ---------------------------------------------------------------------------------------
# Calibration by decoys
# ---------------------------------------------------------------------------------------


def calibrate(
    scores: np.ndarray, is_decoy: np.ndarray, *, alpha: float = 0.05, fit_tail: bool = True
) -> pd.DataFrame:
    """Empirical p-values and BH FDR of per-variant scores against the decoys.

    Parameters
    ----------
    scores
        One importance per model column. NaN marks a column not scored because a screen
        left it out (see :func:`screen`): it ranks below every scored column, so a real
        variant left out gets p = 1 and a decoy left out still counts in the null.
    is_decoy
        Flags the decoy columns.
    alpha
        FDR level of the ``called`` column.
    fit_tail
        Scores beyond every decoy get their p-value from a gamma fitted to the decoys
        (see the module docstring); False: counts only.

    Returns
    -------
    pandas.DataFrame
        One row per column: ``score``, ``p`` (a real variant against all decoys; a decoy
        against the other decoys), ``q`` (BH over the real variants; for a decoy, BH over
        the real variants and that decoy's p-value side by side, i.e. as if it were one more
        real variant), ``called`` (q <= alpha). ``attrs`` holds the counts (see
        :func:`calibration_summary`).
    """
    scores = np.asarray(scores, dtype=np.float64)
    decoy = np.asarray(is_decoy, dtype=bool)
    if decoy.shape != scores.shape:
        raise ValueError(f"{decoy.size} decoy flags for {scores.size} scores")
    ranked = np.where(np.isnan(scores), -np.inf, scores)
    null = ranked[decoy]
    p = np.full(scores.shape, np.nan)
    real = ~decoy
    p[real] = empirical_pvalues(ranked[real], null, fit_tail=fit_tail)
    p[decoy] = leave_one_out_pvalues(null, fit_tail=fit_tail)
    q = np.full(scores.shape, np.nan)
    q[real] = benjamini_hochberg(p[real])
    q[decoy] = q_as_extra_test(p[real], p[decoy])
    table = pd.DataFrame({"score": scores, "p": p, "q": q, "called": q <= alpha})
    table.attrs.update(calibration_summary(table, decoy))
    return table


def calibration_summary(table: pd.DataFrame, is_decoy: np.ndarray) -> dict[str, float | int]:
    """Counts of :func:`calibrate`'s table: real variants and decoys called."""
    decoy = np.asarray(is_decoy, dtype=bool)
    called = table["called"].to_numpy(dtype=bool)
    n_decoys = int(decoy.sum())
    decoys_called = int((called & decoy).sum())
    return {
        "n_real": int((~decoy).sum()),
        "n_decoys": n_decoys,
        "called": int((called & ~decoy).sum()),
        "decoys_called": decoys_called,
        "decoys_called_share": decoys_called / n_decoys if n_decoys else float("nan"),
        "smallest_p": float(np.nanmin(table["p"].to_numpy()[~decoy], initial=np.inf)),
    }
