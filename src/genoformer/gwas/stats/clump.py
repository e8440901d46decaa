"""LD clumping as plink1.9 ``--clump`` does it.

Variants with ``P < p1`` become index variants in order of increasing p (ties in file order);
each index variant absorbs the variants not yet in a clump that lie on its chromosome within
``kb`` kilobases and have an r2 with it of at least ``r2``; those with ``P < p2`` are listed
(``SP2``), all are counted (``TOTAL``). An absorbed variant is neither an index variant nor
absorbed again (plink's default, without ``--clump-allow-overlap``).

The r2 is plink1.9's: from the two variants' haplotype frequencies, estimated by maximum
likelihood from the 3 x 3 table of their genotypes over the samples called at both (the
double heterozygotes are the only ones of unknown phase). The likelihood's stationary points
are the roots of a cubic in the expected number of double heterozygotes on the 11/22 phase;
the root (or end of the range) with the highest likelihood is taken, which reproduced
plink1.9's clumps (index variants, ``TOTAL``, ``SP2``, ``RSQ`` of ``--clump-verbose``) where
EM iterated from one start can stop at the lower of two maxima. A genotype correlation (plink's ``--r2``) differs from it by a few
hundredths, enough to move variants across the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError


@dataclass(frozen=True)
class ClumpSettings:
    """plink1.9's ``--clump-p1``, ``--clump-p2``, ``--clump-r2`` and ``--clump-kb``."""

    p1: float = 1e-4
    p2: float = 0.01
    r2: float = 0.5
    kb: float = 250.0


def check_settings(settings: ClumpSettings) -> None:
    """Refuse thresholds plink1.9 would refuse, naming the setting and plink's option (no
    genoformer command has a clump option yet: the screen of `gwas train` sets them)."""
    checks = (
        ("p1", settings.p1, 0.0 < settings.p1 <= 1.0, "a p-value in (0, 1]"),
        ("p2", settings.p2, 0.0 < settings.p2 <= 1.0, "a p-value in (0, 1]"),
        ("r2", settings.r2, 0.0 <= settings.r2 <= 1.0, "an r2 in [0, 1]"),
        ("kb", settings.kb, settings.kb > 0, "a positive window in kb"),
    )
    for name, value, valid, allowed in checks:
        if not valid:
            raise InputError(
                f"clump {name} is {value}",
                where=name,
                fix=f"use {allowed}, as for plink1.9 --clump-{name}",
            )


def _codes(G: np.ndarray) -> np.ndarray:
    """Dosages (NaN missing) as int8 genotype codes 0, 1, 2, or -1 for a missing call."""
    return np.where(np.isnan(G), -1, np.rint(G)).astype(np.int8)


def _onehot(codes: np.ndarray) -> np.ndarray:
    """``[n, m]`` codes as ``[n, 3m]`` float indicators of genotype 0, 1, 2 (missing: none)."""
    return np.concatenate([(codes == g) for g in (0, 1, 2)], axis=1).astype(np.float64)


def genotype_tables(a: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The 3 x 3 genotype table of variant ``a`` (codes ``[n]``) with each column of ``B``
    (codes ``[n, m]``), over the samples called at both: ``[m, 3, 3]`` counts, ``[j, x, y]``
    the samples with genotype ``x`` at ``a`` and ``y`` at column ``j``."""
    m = B.shape[1]
    left = np.stack([(a == g) for g in (0, 1, 2)]).astype(np.float64)  # [3, n]
    counts = left @ _onehot(B)  # [3, 3m]: genotype of a x (genotype of B, column)
    return counts.reshape(3, 3, m).transpose(2, 0, 1)


def haplotype_r2(tables: np.ndarray) -> np.ndarray:
    """r2 from maximum-likelihood haplotype frequencies, one per ``[3, 3]`` genotype table
    (see the module docstring); 0 where a variant is monomorphic among the samples."""
    t = np.asarray(tables, dtype=np.float64)
    # Haplotype counts known without phase: 11 from (2,2) twice, (2,1) and (1,2); and so on.
    a = 2 * t[:, 2, 2] + t[:, 2, 1] + t[:, 1, 2]
    b = 2 * t[:, 2, 0] + t[:, 2, 1] + t[:, 1, 0]
    c = 2 * t[:, 0, 2] + t[:, 1, 2] + t[:, 0, 1]
    d = 2 * t[:, 0, 0] + t[:, 1, 0] + t[:, 0, 1]
    k = t[:, 1, 1]
    total = a + b + c + d + 2 * k
    x = _best_phase(a, b, c, d, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        f11, f12 = (a + x) / total, (b + k - x) / total
        f21, f22 = (c + k - x) / total, (d + x) / total
        p, q = f11 + f12, f11 + f21
        D = f11 * f22 - f12 * f21
        r2 = D * D / (p * (1 - p) * q * (1 - q))
    return np.where(np.isfinite(r2), np.clip(r2, 0.0, 1.0), 0.0)


def _best_phase(a, b, c, d, k) -> np.ndarray:
    """Expected number of double heterozygotes on the 11/22 phase at the likelihood's
    maximum over ``[0, k]``: the cubic's real roots in the range and both ends compared.

    plink1.9's ``--ld`` can keep a lower stationary point (with no known 11 haplotype it
    kept the root 0 over a likelier one, r2 0.0015 against 0.0008); its ``--clump`` took
    the maximum on every such table compared, one of them a difference of 0.2 in r2.
    """
    # x [(a+x)(d+x) + (b+k-x)(c+k-x)] = k (a+x)(d+x), the EM fixed point, as a cubic in x.
    coefficients = np.stack(
        [a + d - b - c - 3 * k, a * d + (b + k) * (c + k) - k * (a + d), -k * a * d], axis=1
    )
    companion = np.zeros((len(a), 3, 3))
    companion[:, 0, :] = -coefficients / 2.0
    companion[:, 1, 0] = 1.0
    companion[:, 2, 1] = 1.0
    roots = np.linalg.eigvals(companion) if len(a) else np.zeros((0, 3), complex)
    span = k[:, None]
    real = np.where(np.abs(roots.imag) < 1e-7 * np.maximum(1.0, span), roots.real, np.nan)
    inside = (real >= -1e-9) & (real <= span + 1e-9)
    candidates = np.column_stack([np.zeros_like(k), k, np.clip(np.where(inside, real, 0), 0, span)])
    inside = np.column_stack([np.ones((len(a), 2), bool), inside])
    columns = (a[:, None], b[:, None], c[:, None], d[:, None], span)
    like = np.where(inside, _log_likelihood(candidates, *columns), -np.inf)
    return candidates[np.arange(len(a)), np.argmax(like, axis=1)]


def _log_likelihood(x, a, b, c, d, k) -> np.ndarray:
    """Log likelihood of the genotype table at the haplotype frequencies the phase count
    ``x`` gives (constants dropped); ``0 log 0`` read as 0."""
    total = a + b + c + d + 2 * k
    f11, f12 = (a + x) / total, (b + k - x) / total
    f21, f22 = (c + k - x) / total, (d + x) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        parts = [
            n * np.log(f)
            for n, f in ((a, f11), (b, f12), (c, f21), (d, f22), (k, f11 * f22 + f12 * f21))
        ]
    counts = (a, b, c, d, k)
    return sum(
        np.where(np.broadcast_to(n, x.shape) > 0, part, 0.0)
        for n, part in zip(counts, parts, strict=True)
    )


def clump(
    source: Any,
    p: np.ndarray,
    *,
    settings: ClumpSettings = ClumpSettings(),
    samples: np.ndarray | None = None,
) -> pd.DataFrame:
    """Clump the variants of ``source`` by their p-values ``p`` (one per variant of the
    file, NaN for none), r2 over ``samples`` (rows of the file; default all).

    Returns
    -------
    pd.DataFrame
        One row per clump, in order of the index variant's p: ``variant`` (the index
        variant's row in the file), ``CHR``, ``SNP``, ``BP``, ``P``, ``TOTAL`` (variants
        absorbed) and ``SP2`` (their ids, comma-separated, ``NONE`` if none), as plink1.9's
        ``.clumped`` names them.
    """
    check_settings(settings)
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (source.n_variants,):
        raise InputError(
            f"{p.size} p-values for {source.n_variants} variants",
            fix="give one p-value per variant of the genotype file (NaN for none)",
        )
    table = source.variants
    chrom = table["chrom"].astype(str).to_numpy()
    pos = table["pos"].to_numpy(dtype=np.int64)
    ids = table["id"].astype(str).to_numpy()
    # Every variant with a p is read: those at or above p2 are not listed as absorbed, but
    # plink counts the ones in LD with an index variant in its TOTAL.
    usable = np.isfinite(p)
    rows = []
    for name in dict.fromkeys(chrom[usable]):
        members = np.flatnonzero(usable & (chrom == name))
        codes = _codes(np.asarray(source.read(samples=samples, variants=members)))
        rows += _clump_chromosome(members, codes, p[members], pos[members], settings)
    rows.sort(key=lambda row: (p[row[0]], row[0]))
    return pd.DataFrame(
        {
            "variant": np.array([r[0] for r in rows], dtype=np.int64),
            "CHR": [chrom[r[0]] for r in rows],
            "SNP": [ids[r[0]] for r in rows],
            "BP": np.array([pos[r[0]] for r in rows], dtype=np.int64),
            "P": np.array([p[r[0]] for r in rows], dtype=np.float64),
            "TOTAL": np.array([r[2] for r in rows], dtype=np.int64),
            "SP2": [",".join(ids[r[1]]) or "NONE" for r in rows],
        }
    )


def _clump_chromosome(
    members: np.ndarray,
    codes: np.ndarray,
    p: np.ndarray,
    pos: np.ndarray,
    settings: ClumpSettings,
) -> list[tuple[int, np.ndarray, int]]:
    """Clumps of one chromosome: (index variant's file row, absorbed file rows below p2,
    TOTAL: those and the ones at or above p2 in LD with the index variant)."""
    window = settings.kb * 1000.0
    free = np.ones(len(members), dtype=bool)
    absorbable = p < settings.p2
    out = []
    for i in np.lexsort((np.arange(len(p)), p)):
        if not (free[i] and p[i] < settings.p1):
            continue
        free[i] = False
        # A mask, not a search: the file need not be sorted by position.
        near = np.flatnonzero(free & (np.abs(pos - pos[i]) <= window))
        near = near[near != i]
        if near.size:
            r2 = haplotype_r2(genotype_tables(codes[:, i], codes[:, near]))
            near = near[r2 >= settings.r2]
        # Those at or above p2 are used up too: plink counts each in one TOTAL only.
        free[near] = False
        taken = near[absorbable[near]]
        out.append((int(members[i]), members[taken], int(near.size)))
    return out
