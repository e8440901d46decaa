"""Quality control as plink2 does it: --mind, --geno, --hwe, --maf, in that order.

plink2 (v2.00a3.5) applies the sample filter first (``--mind``: samples whose missing-call
rate exceeds the threshold), then, on the remaining samples, the variant filters in the
order ``--geno`` (missing rate above the threshold), ``--hwe`` (Hardy-Weinberg exact test
p below the threshold), ``--maf`` (minor allele frequency below the threshold); each count
of removed variants is taken after the filters before it. All samples are treated as
founders (a .fam with parents is the caller's to subset).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from genoformer.engine.errors import InputError

#: Relative tolerance when comparing genotype-configuration probabilities, so that
#: configurations as likely as the observed one count towards the p-value (as PLINK does).
_HWE_TIES = 1e-7
#: Variants per block in the vectorised exact test (bounds the (variants x het) array).
_HWE_BLOCK_CELLS = 2_000_000


@dataclass
class QCResult:
    """What QC kept and why it removed the rest.

    Attributes
    ----------
    samples
        Indices of the kept samples.
    variants
        Indices of the kept variants.
    removed
        Counts removed per filter, in plink2's order: ``mind`` (samples), ``geno``, ``hwe``,
        ``maf`` (variants).
    variant_stats
        One row per variant: ``ALT_FREQ``, ``MAF``, ``F_MISS``, ``HWE_P``, genotype counts
        (on the samples kept by ``--mind``) and ``KEPT``.
    sample_missing
        Missing-call rate of every sample.
    """

    samples: np.ndarray
    variants: np.ndarray
    removed: dict[str, int] = field(default_factory=dict)
    variant_stats: pd.DataFrame = field(default_factory=pd.DataFrame)
    sample_missing: np.ndarray = field(default_factory=lambda: np.empty(0))


def hwe_exact(
    het: np.ndarray, hom1: np.ndarray, hom2: np.ndarray, *, midp: bool = False
) -> np.ndarray:
    """Hardy-Weinberg exact test p-values (Wigginton, Cutler & Abecasis 2005), vectorised.

    The probability of each heterozygote count given the allele counts is computed in
    log space from factorials; the p-value sums the probabilities of all configurations no
    more likely than the observed one (``midp``: half the observed one's).
    """
    het = np.asarray(het, dtype=np.int64)
    hom1 = np.asarray(hom1, dtype=np.int64)
    hom2 = np.asarray(hom2, dtype=np.int64)
    out = np.ones(het.shape, dtype=np.float64)
    n = het + hom1 + hom2
    rare = np.minimum(2 * hom1 + het, 2 * hom2 + het)
    if midp:
        # a monomorphic variant has one configuration: its mid-p is 0.5, as in plink2
        out[(n > 0) & (rare == 0)] = 0.5
    todo = np.flatnonzero((n > 0) & (rare > 0))
    if todo.size == 0:
        return out
    # longest support among the variants decides the width of a block
    order = todo[np.argsort(rare[todo], kind="stable")]
    start = 0
    while start < order.size:
        width = int(rare[order[min(order.size - 1, start)]]) + 1
        stop = start + 1
        while stop < order.size:
            w = int(rare[order[stop]]) + 1
            if w * (stop - start + 1) > _HWE_BLOCK_CELLS:
                break
            stop += 1
            width = w
        idx = order[start:stop]
        out[idx] = _hwe_block(het[idx], rare[idx], n[idx], width, midp)
        start = stop
    return out


def _hwe_block(
    het: np.ndarray, rare: np.ndarray, n: np.ndarray, width: int, midp: bool
) -> np.ndarray:
    h = np.arange(width, dtype=np.float64)[None, :]
    r = rare[:, None].astype(np.float64)
    nn = n[:, None].astype(np.float64)
    hom_r = (r - h) / 2.0
    hom_c = nn - h - hom_r
    valid = (h <= r) & ((r - h) % 2 == 0) & (hom_c >= 0)
    with np.errstate(invalid="ignore"):
        logp = (
            special.gammaln(nn + 1)
            - special.gammaln(hom_r + 1)
            - special.gammaln(np.where(valid, hom_c, 0) + 1)
            - special.gammaln(h + 1)
            + h * np.log(2.0)
            + special.gammaln(r + 1)
            + special.gammaln(2 * nn - r + 1)
            - special.gammaln(2 * nn + 1)
        )
    logp = np.where(valid, logp, -np.inf)
    peak = logp.max(axis=1, keepdims=True)
    prob = np.exp(logp - peak)
    total = prob.sum(axis=1)
    obs = prob[np.arange(het.size), het]
    le = prob <= obs[:, None] * (1.0 + _HWE_TIES)
    p = (prob * le).sum(axis=1)
    if midp:
        p -= 0.5 * obs
    return np.minimum(p / total, 1.0)


#: The range of each plink2 threshold (0 is legal: ``--geno 0`` drops any missing call).
_RANGES = {
    "maf": (0.0, 0.5, "a minor allele frequency from 0 to 0.5, e.g. 0.01"),
    "geno": (0.0, 1.0, "a missing rate from 0 to 1, e.g. 0.05"),
    "mind": (0.0, 1.0, "a missing rate from 0 to 1, e.g. 0.1"),
    "hwe": (0.0, 1.0, "a p-value threshold from 0 to 1, e.g. 1e-6"),
}


def check_thresholds(**thresholds: float | None) -> None:
    """Refuse a QC threshold outside its range, naming the option (plink2 refuses them too)."""
    for name, value in thresholds.items():
        low, high, fix = _RANGES[name]
        if value is not None and not low <= value <= high:
            raise InputError(f"--{name} is {value:g}", where=f"--{name}", fix=f"use {fix}")


def genotype_counts(
    source: Any, *, samples: np.ndarray | None = None, chunk_size: int = 4096
) -> np.ndarray:
    """Hard-call counts per variant of a ``GenotypeSource``: ``(n_variants, 4)`` int64 of
    genotypes 0, 1, 2 (copies of the counted allele) and missing, over ``samples`` (all when
    ``None``). Dosages that are not 0, 1 or 2 count in none of the four."""
    counts = np.zeros((int(source.n_variants), 4), dtype=np.int64)
    for idx, G in source.chunks(size=chunk_size, samples=samples):
        idx = np.asarray(idx)
        counts[idx, 0] = (G == 0).sum(axis=0)
        counts[idx, 1] = (G == 1).sum(axis=0)
        counts[idx, 2] = (G == 2).sum(axis=0)
        counts[idx, 3] = np.isnan(G).sum(axis=0)
    return counts


def allele_frequencies(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequency of the counted allele and the minor allele frequency of each row of
    :func:`genotype_counts` (NaN where no genotype was called)."""
    called = counts[:, :3].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = (counts[:, 1] + 2 * counts[:, 2]) / (2.0 * called)
    return freq, np.minimum(freq, 1.0 - freq)


def qc(
    source: Any,
    *,
    maf: float | None = None,
    geno: float | None = None,
    mind: float | None = None,
    hwe: float | None = None,
    hwe_midp: bool = False,
    chunk_size: int = 4096,
) -> QCResult:
    """Filter samples and variants as plink2 ``--mind --geno --hwe --maf`` would.

    Parameters
    ----------
    source
        A ``GenotypeSource`` or a path to one.
    maf, geno, mind, hwe
        plink2's thresholds; ``None`` skips the filter. A variant goes when its MAF is below
        ``maf``, its missing rate above ``geno``, its HWE p below ``hwe``; a sample when its
        missing rate is above ``mind``.
    hwe_midp
        Mid-p correction of the exact test (plink2 ``--hwe ... midp``).
    chunk_size
        Variants per chunk; two passes over the file when ``mind`` is set.

    Returns
    -------
    QCResult
    """
    check_thresholds(maf=maf, geno=geno, mind=mind, hwe=hwe)
    if isinstance(source, (str,)) or hasattr(source, "__fspath__"):
        from genoformer.gwas.io.genotypes import open_genotypes

        source = open_genotypes(source)
    n, m = int(source.n_samples), int(source.n_variants)
    removed: dict[str, int] = {}
    # pass 1: per-sample missing calls, only needed for --mind
    sample_missing_ct = np.zeros(n, dtype=np.int64)
    if mind is not None:
        for _idx, G in source.chunks(size=chunk_size):
            sample_missing_ct += np.isnan(G).sum(axis=1)
    sample_missing = sample_missing_ct / max(m, 1)
    keep_samples = np.arange(n)
    if mind is not None:
        keep_samples = np.flatnonzero(~(sample_missing > mind))
        removed["mind"] = n - keep_samples.size
    # pass 2: genotype counts per variant on the kept samples
    counts = genotype_counts(source, samples=keep_samples, chunk_size=chunk_size)
    f_miss = counts[:, 3] / max(keep_samples.size, 1)
    alt_freq, minor = allele_frequencies(counts)
    hwe_p = hwe_exact(counts[:, 1], counts[:, 0], counts[:, 2], midp=hwe_midp)
    keep = np.ones(m, dtype=bool)
    if geno is not None:
        drop = keep & (f_miss > geno)
        removed["geno"] = int(drop.sum())
        keep &= ~drop
    if hwe is not None:
        drop = keep & (hwe_p < hwe)
        removed["hwe"] = int(drop.sum())
        keep &= ~drop
    if maf is not None:
        # a variant with no call has no frequency: plink2 removes it here
        drop = keep & ~(minor >= maf)
        removed["maf"] = int(drop.sum())
        keep &= ~drop
    stats_table = pd.DataFrame(
        {
            "ID": source.variants["id"].to_numpy(),
            "ALT_FREQ": alt_freq,
            "MAF": minor,
            "F_MISS": f_miss,
            "HWE_P": hwe_p,
            "HOM_REF_CT": counts[:, 0],
            "HET_CT": counts[:, 1],
            "HOM_ALT_CT": counts[:, 2],
            "MISSING_CT": counts[:, 3],
            "KEPT": keep,
        }
    )
    return QCResult(
        samples=keep_samples,
        variants=np.flatnonzero(keep),
        removed=removed,
        variant_stats=stats_table,
        sample_missing=sample_missing,
    )


def usable_covariates(
    C: np.ndarray, names: list[str], use: np.ndarray, *, file: str | None = None
) -> np.ndarray:
    """Which covariate columns enter the association, checked as plink2 ``--glm`` checks
    them on the analysed samples (``use``) before any variant: a constant covariate is left
    out with a warning naming it; collinear covariates (|r| above 0.999, a singular
    correlation matrix, a VIF above 50) are refused, naming them. Returns a column mask."""
    from genoformer.gwas.stats.association import MAX_CORR, MAX_VIF

    values = C[use]
    n = values.shape[0]
    constant = ~(np.ptp(values, axis=0) > 0) if n else np.ones(C.shape[1], dtype=bool)
    place = f"{file}: " if file else ""
    for name in np.asarray(names, dtype=object)[constant]:
        warnings.warn(
            f"{place}covariate {name!r} is constant over the {n:,} analysed samples: left out "
            "of the association (plink2 --glm leaves it out too)",
            stacklevel=2,
        )
    kept = np.flatnonzero(~constant)
    if kept.size < 2:
        return ~constant
    R = np.corrcoef(values[:, kept], rowvar=False)
    off = np.abs(R - np.eye(kept.size))
    i, j = np.unravel_index(int(np.argmax(off)), off.shape)
    if off[i, j] > MAX_CORR:
        raise _collinear(
            [names[kept[i]], names[kept[j]]],
            f"correlation {R[i, j]:.4f} over the {n:,} analysed samples: plink2 stops with "
            "CORR_TOO_HIGH",
            file,
        )
    with np.errstate(all="ignore"):
        vif = np.diag(np.linalg.pinv(R))
    if np.linalg.cond(R) > 1e14:
        raise _collinear(
            [names[k] for k in kept], "linearly dependent: plink2 stops with VIF_INFINITE", file
        )
    high = np.flatnonzero(vif > MAX_VIF)
    if high.size:
        shown = ", ".join(f"{names[kept[h]]} {vif[h]:.0f}" for h in high)
        raise _collinear(
            [names[kept[h]] for h in high],
            f"variance inflation factors {shown}, above {MAX_VIF:g}: plink2 stops with "
            "VIF_TOO_HIGH",
            file,
        )
    return ~constant


def _collinear(names: list[str], detail: str, file: str | None) -> InputError:
    return InputError(
        f"covariates {', '.join(repr(n) for n in names)} are collinear ({detail})",
        file=file,
        fix="leave out the redundant ones (choose covariates with --covar-name)",
    )
