"""Pairs of variants whose joint effect in the trained model is not additive (epistasis).

The pair score is an in silico interaction contrast. For variants ``a`` and ``b`` and two
dosage levels ``lo < hi`` (default 0 and 2: each variant homozygous for the other allele,
then for the counted allele A1), every sample ``s`` is scored four times with both
variants set, everything else kept as it is::

    I_s = f(a=hi, b=hi) - f(a=hi, b=lo) - f(a=lo, b=hi) + f(a=lo, b=lo)

and the pair's ``interaction`` is the mean of ``I_s`` over the samples (``score`` is its
absolute value). A model additive in ``a`` and ``b`` gives exactly 0; a term
``c * g_a * g_b`` gives ``c * (hi - lo)**2``, whatever the rest of the model. A missing call
of ``a`` or ``b`` becomes the level set.

Calibration: pairs among the top ``top`` real variants by importance are tested against
null pairs that involve a decoy (a permuted copy of a real variant, linked to nothing):
each top real variant with each of the most important decoys, and those decoys with each
other, so that the null pairs, like the tested ones, hold variants the model leans on.
A tested pair's p-value is ``(1 + #{null pairs >= score}) / (1 + #null pairs)``, its q-value
the BH FDR over the tested pairs; each null pair gets its p-value against the other null
pairs (leave one out) and a q-value as if it were one more tested pair. As for single
variants (see :mod:`genoformer.gwas.model.attribution`), a score beyond all but a few null pairs
gets its p-value from a gamma fitted to the null pairs' scores, so that a few hundred null
pairs suffice for an FDR over a few hundred tested pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError
from genoformer.engine.progress import progress_bar
from genoformer.engine.stats import (
    benjamini_hochberg,
    empirical_pvalues,
    leave_one_out_pvalues,
    q_as_extra_test,
)
from genoformer.gwas.model.attribution import (
    ScoreFunction,
    _Inputs,
    _reference_scores,
    _score,
    _substituted_batch,
    as_inputs,
)

__all__ = ["PairScanOptions", "candidate_pairs", "interaction_contrast", "pair_scan"]

#: Relative size of a contrast below which it is rounding noise: 4 scores, each with a
#: float32 rounding error of a few units of eps, summed and averaged.
_ROUNDING = 64 * float(np.finfo(np.float32).eps)
#: Signs of f(hi, hi), f(hi, lo), f(lo, hi), f(lo, lo) in the contrast.
_COMBOS = ((1, 1, 1.0), (1, 0, -1.0), (0, 1, -1.0), (0, 0, 1.0))


@shared_docs
def interaction_contrast(
    f: ScoreFunction,
    genotypes: np.ndarray | torch.Tensor,
    missing: np.ndarray | torch.Tensor | None = None,
    covariates: np.ndarray | torch.Tensor | None = None,
    *,
    pairs: np.ndarray | Sequence[tuple[int, int]],
    levels: tuple[float, float] = (0.0, 2.0),
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Mean interaction contrast of each pair of model columns (see the module docstring).

    Parameters
    ----------
    f, genotypes, missing, covariates
        Score function and model inputs, as in :mod:`genoformer.gwas.model.attribution`.
    pairs
        (P, 2) model column indices.
    levels
        ``(lo, hi)`` dosages.
    batch_size
        Scored samples per forward pass; ``None`` picks one from a memory budget.
    {inputs_device}
    {progress}

    Returns
    -------
    numpy.ndarray
        (P,) float64, signed.
    """
    x = as_inputs(genotypes, missing, covariates, device=device)
    pairs_np = _pairs(pairs, x.m)
    lo_level, hi_level = (float(v) for v in levels)
    if not lo_level < hi_level:
        raise InputError(
            f"levels {tuple(levels)}: the first must be below the second",
            where="levels",
            fix="use two dosages such as (0, 2)",
        )
    batch = _substituted_batch(batch_size, x)
    dev = x.genotypes.device
    level = torch.tensor([lo_level, hi_level], device=dev)
    out = np.zeros(len(pairs_np), dtype=np.float64)
    per_block = max(1, (1 << 22) // (4 * x.n))
    with torch.inference_mode():
        reference = _reference_scores(f, x, batch)
        with progress_bar(enabled=progress, unit="pairs", transient=True) as bar:
            task = bar.add_task("pair interaction contrasts", total=len(pairs_np))
            for start in range(0, len(pairs_np), per_block):
                block = torch.as_tensor(pairs_np[start : start + per_block], device=dev)
                contrast = _block_contrast(f, x, block, reference, level, batch)
                out[start : start + len(block)] = contrast.cpu().numpy()
                bar.advance(task, len(block))
    return out


def _block_contrast(
    f: ScoreFunction,
    x: _Inputs,
    block: torch.Tensor,
    reference: torch.Tensor,
    level: torch.Tensor,
    batch: int,
) -> torch.Tensor:
    """Mean interaction contrast of each pair of ``block`` ((P, 2) model columns).

    ``reference`` holds every sample's score as it is, ``level`` the ``(lo, hi)`` dosages;
    only the (sample, pair, combination) inputs that a combination changes are scored,
    ``batch`` at a time.
    """
    dev = x.genotypes.device
    combo_a = torch.tensor([c[0] for c in _COMBOS], device=dev)
    combo_b = torch.tensor([c[1] for c in _COMBOS], device=dev)
    sign = torch.tensor([c[2] for c in _COMBOS], dtype=torch.float64, device=dev)
    ga, gb = x.genotypes[:, block[:, 0]], x.genotypes[:, block[:, 1]]  # (n, P)
    want_a = level[combo_a]  # (4,)
    want_b = level[combo_b]
    changed = (ga[:, :, None] != want_a) | (gb[:, :, None] != want_b)  # (n, P, 4)
    if x.missing is not None:
        either = x.missing[:, block[:, 0]] | x.missing[:, block[:, 1]]
        changed |= either[:, :, None]
    # Unchanged inputs score as the reference: their delta is 0 without a pass.
    sample, which, combo = torch.nonzero(changed, as_tuple=True)
    total = torch.zeros(len(block), dtype=torch.float64, device=dev)
    # Sum over samples and combinations of |f|, for the rounding floor below.
    unchanged = (~changed).sum(dim=2).double()  # (n, P)
    magnitude = (unchanged * reference.abs().double()[:, None]).sum(dim=0)
    for lo in range(0, len(sample), batch):
        s, w, c = sample[lo : lo + batch], which[lo : lo + batch], combo[lo : lo + batch]
        rows = x.rows(s)  # advanced indexing: a copy, edited in place
        e = torch.arange(len(s), device=dev)
        a, b = block[w, 0], block[w, 1]
        rows.genotypes[e, a] = want_a[c]
        rows.genotypes[e, b] = want_b[c]
        if rows.missing is not None:
            rows.missing[e, a] = False
            rows.missing[e, b] = False
        y = _score(f, rows)
        delta = (y - reference[s]).double()
        total.index_add_(0, w, sign[c] * delta)
        magnitude.index_add_(0, w, y.abs().double())
    # The signs sum to 0, so the reference terms cancel: the contrast is the signed sum of
    # the changes alone. A contrast within the rounding error of four float32 scores is no
    # interaction: it is set to exactly 0, so that an additive pair ties with the null
    # instead of beating it by rounding noise.
    contrast = total / x.n
    floor = _ROUNDING * magnitude / (4 * x.n)
    contrast[contrast.abs() <= floor] = 0.0
    return contrast


def _pairs(pairs: np.ndarray | Sequence[tuple[int, int]], m: int) -> np.ndarray:
    array = np.asarray(pairs, dtype=np.int64)
    if array.size == 0:
        return array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InputError(
            f"pairs have shape {array.shape}, expected (P, 2)",
            fix="pass pairs of model column indices",
        )
    bad = (array < 0) | (array >= m)
    if bad.any():
        raise InputError(
            f"pair column {int(array[bad][0])} is out of range for {m} variants",
            fix=f"use model column indices from 0 to {m - 1}",
        )
    if (array[:, 0] == array[:, 1]).any():
        raise InputError("a pair names the same column twice", fix="pair two different columns")
    return array


def candidate_pairs(
    importance: np.ndarray, is_decoy: np.ndarray, *, top: int = 20, null_pairs: int = 500
) -> pd.DataFrame:
    """The pairs to score: among the ``top`` real variants, and null pairs with a decoy.

    Real variants and decoys are ranked by ``importance`` (descending, ties by column).
    Null pairs are added decoy by decoy, most important first: each top real variant with
    that decoy, then that decoy with each decoy before it, until ``null_pairs`` are listed
    (fewer when the decoys run out).

    Returns
    -------
    pandas.DataFrame
        ``a``, ``b`` (model columns, ``a`` the more important), ``null`` (bool); the tested
        pairs first.
    """
    importance = np.asarray(importance, dtype=np.float64)
    decoy = np.asarray(is_decoy, dtype=bool)
    if top < 2:
        raise InputError(
            f"top is {top}: pairs need at least 2 variants", where="top_pairs", fix="use 2 or more"
        )
    if null_pairs < 1:
        raise InputError(
            f"null_pairs is {null_pairs}", where="null_pairs", fix="use 1 or more null pairs"
        )
    rank = np.lexsort((np.arange(importance.size), -np.nan_to_num(importance, nan=-np.inf)))
    real = rank[~decoy[rank]][:top]
    decoys = rank[decoy[rank]]
    if len(real) < 2:
        raise InputError(
            f"{len(real)} real variant(s) in the model: pairs need at least 2",
            fix="explain a model with more real variants",
        )
    if len(decoys) == 0:
        raise InputError(
            "no decoy variants in the model, so no null for the pair scores",
            fix="train with decoy variants (they are flagged is_decoy in variants.tsv)",
        )
    rows = [
        (int(real[i]), int(real[j]), False)
        for i in range(len(real))
        for j in range(i + 1, len(real))
    ]
    nulls: list[tuple[int, int, bool]] = []
    for k, d in enumerate(decoys):
        if len(nulls) >= null_pairs:
            break
        nulls += [(int(r), int(d), True) for r in real]
        nulls += [(int(e), int(d), True) for e in decoys[:k]]
    return pd.DataFrame(rows + nulls[:null_pairs], columns=["a", "b", "null"])


@dataclass(frozen=True)
class PairScanOptions:
    """How :func:`pair_scan` scores and calls pairs.

    Attributes
    ----------
    levels
        ``(lo, hi)`` dosages of the contrast.
    alpha
        FDR level of the ``called`` column.
    batch_size, device, progress
        As in :func:`interaction_contrast`.
    """

    levels: tuple[float, float] = (0.0, 2.0)
    alpha: float = 0.05
    batch_size: int | None = None
    device: str | torch.device | None = None
    progress: bool = False


def pair_scan(
    f: ScoreFunction,
    genotypes: np.ndarray | torch.Tensor,
    missing: np.ndarray | torch.Tensor | None = None,
    covariates: np.ndarray | torch.Tensor | None = None,
    *,
    importance: np.ndarray,
    is_decoy: np.ndarray,
    top: int = 20,
    null_pairs: int = 500,
    options: PairScanOptions | None = None,
) -> pd.DataFrame:
    """Interaction contrasts of the top pairs, calibrated against decoy pairs.

    Parameters
    ----------
    f, genotypes, missing, covariates
        Score function and model inputs, as in :mod:`genoformer.gwas.model.attribution`.
    importance, is_decoy
        One importance and one decoy flag per model column.
    top, null_pairs
        See :func:`candidate_pairs`.
    options
        Contrast levels, FDR level and how the model is run (default
        ``PairScanOptions()``: levels 0 and 2, FDR 0.05).

    Returns
    -------
    pandas.DataFrame
        ``a``, ``b``, ``null``, ``interaction`` (signed), ``score`` (absolute), ``p``,
        ``q``, ``called``; tested pairs first, each group by score, strongest first.
    ``attrs`` holds the counts: tested and null pairs, pairs called, null pairs called.
    """
    options = options or PairScanOptions()
    x = as_inputs(genotypes, missing, covariates, device=options.device)
    importance = np.asarray(importance, dtype=np.float64)
    decoy = np.asarray(is_decoy, dtype=bool)
    if importance.shape != (x.m,) or decoy.shape != (x.m,):
        raise InputError(
            f"importance and is_decoy need one entry per model column ({x.m}); "
            f"got {importance.shape} and {decoy.shape}",
            fix="pass the per-variant importance and variants.tsv's is_decoy column",
        )
    table = candidate_pairs(importance, decoy, top=top, null_pairs=null_pairs)
    contrast = interaction_contrast(
        f,
        x.genotypes,
        x.missing,
        x.covariates,
        pairs=table[["a", "b"]].to_numpy(),
        levels=options.levels,
        batch_size=options.batch_size,
        device=options.device,
        progress=options.progress,
    )
    table["interaction"] = contrast
    table["score"] = np.abs(contrast)
    null = table["null"].to_numpy()
    null_scores = table["score"].to_numpy()[null]
    p = np.empty(len(table))
    p[~null] = empirical_pvalues(table["score"].to_numpy()[~null], null_scores, fit_tail=True)
    p[null] = leave_one_out_pvalues(null_scores, fit_tail=True)
    q = np.empty(len(table))
    q[~null] = benjamini_hochberg(p[~null])
    q[null] = q_as_extra_test(p[~null], p[null])
    table["p"], table["q"] = p, q
    table["called"] = q <= options.alpha
    table = table.sort_values(["null", "score"], ascending=[True, False], kind="stable")
    table = table.reset_index(drop=True)
    n_null = int(null.sum())
    null_called = int((table["called"] & table["null"]).sum())
    table.attrs.update(
        {
            "tested_pairs": int((~null).sum()),
            "null_pairs": n_null,
            "pairs_called": int((table["called"] & ~table["null"]).sum()),
            "null_pairs_called": null_called,
            "null_pairs_called_share": null_called / n_null if n_null else float("nan"),
            "min_p": 1.0 / (1.0 + n_null),
        }
    )
    return table
