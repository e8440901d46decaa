"""Simulated GWAS data: msprime genotypes with LD, phenotypes with known causal variants.

The model, so that a test or a demo knows what to expect:

- Genotypes: one msprime coalescent simulation per chromosome (diploid samples, effective
  population size 10,000, recombination 1e-8 per bp per generation, human-like LD), infinite
  sites mutations (every site biallelic; the derived allele is ALT = ``a1``). The sequence
  length is chosen from the neutral site-frequency spectrum so that about 25% more sites than
  wanted pass the MAF filter; exactly the wanted number is then drawn at random (seeded) and
  kept in position order.
- Quantitative trait ``quant = g + c + e``: ``g`` the genetic value, ``c`` covariate effects,
  ``e ~ N(0, 1 - h2)``. ``g`` sums standardised causal genotypes ``z_j = (x_j - 2p_j) / sd_j``
  times effects of random sign and size uniform in [0.5, 1], plus, for each epistatic pair
  (a, b), an effect times the standardised product ``z_a * z_b``; ``g`` is then scaled to
  variance ``h2``, so ``h2`` is the heritability net of covariates: var(g) / var(g + e).
- ``epistatic_share`` (optional) fixes the share of the genetic variance that the pairs
  carry: the pair terms are scaled together to variance ``share`` and the additive terms to
  ``1 - share`` before ``g`` is scaled to ``h2`` (by default every term keeps its drawn
  effect, so the pairs' share follows the number of pairs and causal variants).
- Epistatic pairs have near-zero marginal effects by construction: the two variants of a
  pair lie on different chromosomes (independent), so E[z_a z_b | x_a] = z_a E[z_b] = 0:
  neither variant alone predicts the trait, only their product does. Pair variants are drawn
  among common variants (MAF >= 0.2) so the product has power.
- Case/control trait: liability threshold on ``quant``; the top ``prevalence`` fraction are
  cases (coded 2, controls 1, as PLINK does).
- Covariates: ``age`` (20-79), ``sex`` (1/2), further ``cov3``.. standard normal, each with
  effect 0.2 SD, and a categorical ``batch`` (A/B/C, effects 0/+0.3/-0.3).
- Missing calls: each genotype is set missing with probability ``missing_rate`` after the
  phenotypes are made (the trait depends on the true genotypes, as in real data).
- Families (``siblings`` >= 2): the msprime samples are parents, paired into couples; each
  couple has ``siblings`` children (the last family fewer when ``n_samples`` is not a
  multiple), and only the children are written, siblings sharing their FID (parent ids "0":
  the parents are not genotyped). Each child gets one gamete from each parent: Mendelian
  transmission with crossovers as a Poisson process (1 per Morgan, the map of the
  recombination rate) along each chromosome, so siblings share half their genome on
  average (kinship 0.25). The MAF filter is on the children's genotypes.
  ``family_environment`` adds a family effect ``N(0, share)`` common to siblings, with the
  noise variance reduced to ``1 - h2 - share``.
- Populations (``populations`` >= 2): an ancestral population of size 10,000 splits
  ``split_generations`` generations ago into that many populations of size 10,000
  (msprime demography; F_ST about ``1 - exp(-T / 20,000)``); samples (or families) are
  divided evenly among them. ``population_shift`` shifts the trait's mean by population,
  evenly from ``-shift / 2`` (the first) to ``+shift / 2`` (the last), in units of the
  trait's standard deviation before the shift; ``out_prefix.populations`` names each
  sample's population.
"""

from __future__ import annotations

import math
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError, setting
from genoformer.engine.options import with_overrides
from genoformer.engine.runs import RunResult, atomic_path, write_table

_BASES = np.array(["A", "C", "G", "T"])
_POPULATION_SIZE = 10_000
_RECOMBINATION_RATE = 1e-8
_OVERSHOOT = 1.25
#: Base pairs per SNP kept, as on a genotyping array (1.5 million SNPs over 3 Gb). The
#: sequence is that long and the mutation rate is set to give the wanted number of SNPs, so
#: LD decays over a realistic share of the variants instead of spanning a whole chromosome.
_SNP_SPACING = 2_000


@dataclass(frozen=True)
class _Design:
    """Who is simulated: ``n_samples`` written, in families of ``siblings`` children (0:
    unrelated samples) and ``populations`` populations split ``split_generations`` ago."""

    n_samples: int
    siblings: int = 0
    populations: int = 1
    split_generations: float = 0.0

    @property
    def n_families(self) -> int:
        return -(-self.n_samples // self.siblings) if self.siblings else self.n_samples

    @property
    def n_founders(self) -> int:
        """Individuals msprime simulates: the samples, or two parents per family."""
        return 2 * self.n_families if self.siblings else self.n_samples

    def family(self) -> np.ndarray:
        """Each written sample's family (0-based)."""
        if not self.siblings:
            return np.arange(self.n_samples)
        return np.arange(self.n_samples) // self.siblings

    def founder_population(self) -> np.ndarray:
        """Each founder's population (0-based); couples never span two populations."""
        units = self.n_families if self.siblings else self.n_samples
        pop = np.repeat(
            np.arange(self.populations),
            [len(p) for p in np.array_split(np.arange(units), self.populations)],
        )
        return np.repeat(pop, 2) if self.siblings else pop

    def population(self) -> np.ndarray:
        """Each written sample's population."""
        founders = self.founder_population()
        return founders[2 * self.family()] if self.siblings else founders


@dataclass(frozen=True)
class SimulateSettings:
    """What :func:`simulate` simulates (each also a keyword argument of it, and a CLI flag).

    Attributes
    ----------
    n_samples, n_variants, n_chromosomes
        Diploid samples written, SNPs kept after the MAF filter, chromosomes.
    maf_min
        Minimum minor allele frequency of a kept SNP.
    missing_rate
        Share of genotype calls set missing (after the phenotypes are made).
    heritability
        Heritability of the trait net of covariates, var(g) / var(g + e).
    n_causal, epistatic_pairs
        Additive causal variants, and epistatic pairs (two variants on different
        chromosomes, with no marginal effect).
    n_covariates
        Numeric covariates (``age``, ``sex``, then ``cov3`` ...), besides ``batch``.
    prevalence
        Share of cases of the case/control trait.
    seed
        Seed of every draw.
    epistatic_share
        Share of the genetic variance the pairs carry (None: as the drawn effects give).
    siblings, family_environment
        Children per family (0: unrelated samples), and the variance share of an
        environment siblings share.
    populations, split_generations, population_shift
        Populations split from one ancestor ``split_generations`` generations ago, and the
        trait mean difference from the first to the last (in SD).
    """

    n_samples: int = 2000
    n_variants: int = 20_000
    n_chromosomes: int = 3
    maf_min: float = 0.01
    missing_rate: float = 0.01
    heritability: float = 0.5
    n_causal: int = 10
    epistatic_pairs: int = 0
    n_covariates: int = 2
    prevalence: float = 0.3
    seed: int = 0
    epistatic_share: float | None = None
    siblings: int = 0
    family_environment: float = 0.0
    populations: int = 1
    split_generations: float = 500.0
    population_shift: float = 0.0


def simulate(
    out_prefix: str | os.PathLike,
    *,
    settings: SimulateSettings | None = None,
    **overrides: Any,
) -> RunResult:
    """Simulate genotypes, phenotypes and covariates and write them PLINK-style.

    Writes ``out_prefix.bed/.bim/.fam``, ``out_prefix.pheno`` (``FID IID quant binary``,
    binary coded 1 control / 2 case), ``out_prefix.covar`` (``FID IID age sex [cov3..] batch``)
    and ``out_prefix.truth.tsv`` (``id chrom pos a1 maf effect std_effect kind pair``:
    ``effect`` per copy of a1 for additive rows, per unit of the product of centred genotypes
    for epistatic rows; the two rows of a pair share ``pair``). See the module docstring for
    the model, which also describes families (``siblings`` children per couple,
    ``family_environment`` their shared environment's variance share) and populations
    (``populations`` split ``split_generations`` generations ago, trait means
    ``population_shift`` SD apart from first to last; ``out_prefix.populations`` written).

    Returns a :class:`~genoformer.engine.runs.RunResult`: ``run_dir`` the folder of
    ``out_prefix``, ``metrics`` the realised ``heritability``, ``h2_observed``, ``prevalence``
    and ``missing_rate``, ``outputs`` the files written (``bed``, ``bim``, ``fam``, ``pheno``,
    ``covar``, ``truth``) and the ``prefix``.

    ``settings`` (a :class:`SimulateSettings`) and/or any of its fields by name
    (``n_samples=500, epistatic_pairs=2``) say what is simulated.
    """
    o = with_overrides(SimulateSettings, settings, overrides, "simulate")  # o: its settings
    _check_arguments(o)
    _check_epistatic_share(o.epistatic_share)
    design = _Design(o.n_samples, o.siblings, o.populations, o.split_generations)
    _check_design(design, o.heritability, o.family_environment)
    rng = np.random.default_rng(o.seed)
    prefix = Path(out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)

    G, bim = _genotypes(design, o.n_variants, o.n_chromosomes, o.maf_min, rng)
    freq = G.mean(axis=0, dtype=np.float64) / 2.0
    maf = np.minimum(freq, 1.0 - freq)

    covar, covariate_effect = _covariates(o.n_samples, o.n_covariates, rng)
    g, truth = _genetic_value(
        G, bim, freq, maf, o.heritability, o.n_causal, o.epistatic_pairs, rng, o.epistatic_share
    )
    noise = rng.normal(0.0, math.sqrt(1.0 - o.heritability - o.family_environment), o.n_samples)
    if o.family_environment > 0:
        shared = rng.normal(0.0, math.sqrt(o.family_environment), design.n_families)
        noise = noise + shared[design.family()]
    quant = g + covariate_effect + noise
    if o.populations > 1 and o.population_shift:
        means = np.linspace(-o.population_shift / 2, o.population_shift / 2, o.populations)
        quant = quant + means[design.population()] * quant.std()
    threshold = np.quantile(quant, 1.0 - o.prevalence)
    binary = np.where(quant > threshold, 2, 1)

    if o.missing_rate > 0:
        # Blocks of variants keep the uniform draws small next to the int8 genotypes.
        for start in range(0, G.shape[1], 2048):
            block = G[:, start : start + 2048]
            block[rng.random(block.shape, dtype=np.float32) < o.missing_rate] = -127  # bed-reader

    fid = [f"fam{i + 1}" for i in design.family()]  # siblings share their FID
    iid = [f"ind{i + 1}" for i in range(o.n_samples)]
    paths = {s: Path(f"{prefix}.{s}") for s in ("bed", "bim", "fam", "pheno", "covar")}
    paths["truth"] = Path(f"{prefix}.truth.tsv")
    _write_plink(paths, G, bim, fid, iid, covar["sex"].to_numpy())
    ids = pd.DataFrame({"FID": fid, "IID": iid})
    pheno = ids.assign(quant=np.round(quant, 6), binary=binary)
    write_table(paths["pheno"], pheno)
    write_table(paths["covar"], pd.concat([ids, covar], axis=1))
    write_table(paths["truth"], truth)
    if o.populations > 1:
        paths["populations"] = write_table(
            Path(f"{prefix}.populations"),
            ids.assign(population=[f"pop{p + 1}" for p in design.population()]),
        )
    paths["prefix"] = prefix
    info = {
        "heritability": o.heritability,
        "h2_observed": float(np.var(g) / np.var(g + noise)),
        "prevalence": float(np.mean(binary == 2)),
        "missing_rate": float(np.mean(G == -127)),
    }
    return RunResult(prefix.parent, info, paths)


def _check_arguments(o: SimulateSettings) -> None:
    """Refuse sizes and shares the simulator cannot follow, naming the option as the user
    gave it (``--samples`` on the command line, ``n_samples=`` in Python)."""
    checks = (
        ("n_samples", "--samples", o.n_samples, o.n_samples >= 2, "2 or more samples"),
        ("n_variants", "--variants", o.n_variants, o.n_variants >= 1, "1 or more variants"),
        ("n_chromosomes", "--chromosomes", o.n_chromosomes, o.n_chromosomes >= 1, "1 or more"),
        ("maf_min", "--maf", o.maf_min, 0.0 <= o.maf_min < 0.5, "a frequency in [0, 0.5)"),
        (
            "missing_rate",
            "--missing",
            o.missing_rate,
            0.0 <= o.missing_rate < 1.0,
            "a share in [0, 1)",
        ),
        ("heritability", None, o.heritability, 0.0 <= o.heritability < 1.0, "a share in [0, 1)"),
        ("prevalence", None, o.prevalence, 0.0 < o.prevalence < 1.0, "a share in (0, 1)"),
    )
    for parameter, flag, value, valid, allowed in checks:
        if not valid:
            name = setting(parameter, flag=flag)
            raise InputError(f"{name} is {value}", where=name, fix=f"give {name} {allowed}")


def _check_epistatic_share(epistatic_share: float | None) -> None:
    if epistatic_share is not None and not 0.0 <= epistatic_share <= 1.0:
        raise InputError(
            f"epistatic_share is {epistatic_share}",
            where="epistatic_share",
            fix="give epistatic_share a share in [0, 1], or None",
        )


def _check_design(design: _Design, heritability: float, family_environment: float) -> None:
    """Refuse family and population options the simulator cannot follow."""
    if design.siblings < 0 or design.siblings == 1:
        raise InputError(
            f"--siblings is {design.siblings}",
            where="--siblings",
            fix="use 0 for unrelated samples, or 2 or more children per family",
        )
    if not 0.0 <= family_environment < 1.0 - heritability:
        raise InputError(
            f"--family-environment is {family_environment} with heritability {heritability}",
            where="--family-environment",
            fix=f"use a variance share in [0, {1.0 - heritability:g}) (1 - heritability)",
        )
    if family_environment > 0 and not design.siblings:
        raise InputError(
            "--family-environment needs families",
            where="--family-environment",
            fix="give --siblings 2 or more, or leave --family-environment at 0",
        )
    if design.populations < 1 or design.split_generations <= 0:
        raise InputError(
            f"--populations is {design.populations}, --split-generations "
            f"{design.split_generations:g}",
            where="--populations",
            fix="use 1 or more populations and a positive number of generations",
        )
    units = design.n_families if design.siblings else design.n_samples
    if units < design.populations:
        what = "families" if design.siblings else "samples"
        raise InputError(
            f"{units} {what} for {design.populations} populations",
            where="--populations",
            fix=f"use at most {units} populations, or more samples",
        )


def _genotypes(
    design: _Design, n_variants: int, n_chromosomes: int, maf_min: float, rng: np.random.Generator
) -> tuple[np.ndarray, pd.DataFrame]:
    """(samples, variants) int8 ALT counts without missing calls, and the .bim table."""
    per_chrom = [
        n_variants // n_chromosomes + (c < n_variants % n_chromosomes) for c in range(n_chromosomes)
    ]
    genotypes, bims = [], []
    for chrom, wanted in enumerate(per_chrom, start=1):
        if wanted == 0:
            continue
        g, bim = _simulate_chromosome(chrom, wanted, design, maf_min, rng)
        genotypes.append(g)
        bims.append(bim)
    return np.concatenate(genotypes, axis=1), pd.concat(bims, ignore_index=True)


def _ancestry(design: _Design, length: float, seed: int) -> object:
    """The msprime tree sequence of the founders (one population, or a split)."""
    import msprime

    common = {
        "ploidy": 2,
        "sequence_length": length,
        "recombination_rate": _RECOMBINATION_RATE,
        "random_seed": seed,
    }
    if design.populations == 1:
        return msprime.sim_ancestry(
            samples=design.n_founders, population_size=_POPULATION_SIZE, **common
        )
    demography = msprime.Demography()
    names = [f"pop{p + 1}" for p in range(design.populations)]
    for name in [*names, "ancestral"]:
        demography.add_population(name=name, initial_size=_POPULATION_SIZE)
    demography.add_population_split(
        time=design.split_generations, derived=names, ancestral="ancestral"
    )
    counts = np.bincount(design.founder_population(), minlength=design.populations)
    samples = [msprime.SampleSet(int(k), population=n) for n, k in zip(names, counts, strict=True)]
    return msprime.sim_ancestry(samples=samples, demography=demography, **common)


def _transmit(
    haplotypes: np.ndarray, positions: np.ndarray, design: _Design, rng: np.random.Generator
) -> np.ndarray:
    """Children's haplotypes (sites x 2 children) from the founders' (sites x 2 founders):
    child i of family f gets a gamete of founder 2f (haplotype 2i) and of 2f + 1 (2i + 1).
    A gamete starts on a random one of the parent's two haplotypes and switches at each
    crossover, a Poisson process of rate 1 per Morgan along the chromosome."""
    morgans = positions * _RECOMBINATION_RATE
    length = float(positions[-1] * _RECOMBINATION_RATE) if positions.size else 0.0
    family = design.family()
    children = np.empty((haplotypes.shape[0], 2 * design.n_samples), dtype=haplotypes.dtype)
    for i, f in enumerate(family):
        for side in (0, 1):
            parent = 2 * f + side
            crossovers = np.sort(rng.uniform(0.0, length, rng.poisson(length)))
            strand = (np.searchsorted(crossovers, morgans) + rng.integers(0, 2)) % 2
            source = np.where(strand == 0, 2 * parent, 2 * parent + 1)
            children[:, 2 * i + side] = haplotypes[np.arange(haplotypes.shape[0]), source]
    return children


def _simulate_chromosome(
    chrom: int, wanted: int, design: _Design, maf_min: float, rng: np.random.Generator
) -> tuple[np.ndarray, pd.DataFrame]:
    """``wanted`` biallelic SNPs with MAF >= maf_min on one chromosome, in position order."""
    import msprime

    n_samples = design.n_samples
    n_haplotypes = 2 * n_samples
    lo = max(1, math.ceil(maf_min * n_haplotypes))
    hi = min(n_haplotypes - 1, math.floor((1.0 - maf_min) * n_haplotypes))
    # Neutral SFS: E[sites with derived count i] = theta / i, so the expected number passing
    # the MAF filter per bp is 4 Ne mu * sum(1/i) over the allowed counts.
    length = float(max(1_000, wanted * _SNP_SPACING))
    harmonic = np.sum(1.0 / np.arange(lo, hi + 1))
    mutation_rate = _OVERSHOOT * wanted / (length * 4 * _POPULATION_SIZE * harmonic)
    ts = _ancestry(design, length, int(rng.integers(1, 2**31 - 1)))
    rate = mutation_rate
    for _ in range(8):
        mutated = msprime.sim_mutations(
            ts,
            rate=rate,
            model=msprime.BinaryMutationModel(),
            discrete_genome=False,
            random_seed=int(rng.integers(1, 2**31 - 1)),
        )
        haplotypes = mutated.genotype_matrix()  # (sites, haplotypes), 0 ancestral / 1 derived
        positions = np.floor(mutated.tables.sites.position).astype(np.int64) + 1
        if design.siblings:
            haplotypes = _transmit(haplotypes, positions, design, rng)
        counts = haplotypes.sum(axis=1, dtype=np.int64)
        keep = (counts >= lo) & (counts <= hi)
        # Two sites rounded to one bp: keep the first, PLINK cannot tell them apart by position.
        keep &= np.r_[True, positions[1:] != positions[:-1]]
        if keep.sum() >= wanted:
            break
        # Too few by chance (coalescent variance is large on short sequences): more mutations.
        rate *= 1.5 * wanted / max(int(keep.sum()), 1)
    else:
        raise RuntimeError(f"chromosome {chrom}: could not simulate {wanted} SNPs")
    candidates = np.flatnonzero(keep)
    chosen = np.sort(rng.choice(candidates, size=wanted, replace=False))
    h = haplotypes[chosen]
    # sim_ancestry puts individual i's two nodes at 2i and 2i + 1.
    genotypes = (h[:, 0::2] + h[:, 1::2]).T.astype(np.int8)
    ref = rng.integers(0, 4, wanted)
    alt = (ref + rng.integers(1, 4, wanted)) % 4
    pos = positions[chosen]
    bim = pd.DataFrame(
        {
            "chrom": str(chrom),
            "id": [f"snp{chrom}_{p}" for p in pos],
            "cm": pos * _RECOMBINATION_RATE * 100.0,
            "pos": pos,
            "a1": _BASES[alt],
            "a2": _BASES[ref],
        }
    )
    return np.ascontiguousarray(genotypes), bim


def _covariates(
    n_samples: int, n_covariates: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    effect = np.zeros(n_samples)
    for k in range(n_covariates):
        if k == 0:
            values = rng.integers(20, 80, n_samples).astype(np.float64)
            columns["age"] = values.astype(np.int64)
        elif k == 1:
            values = rng.integers(1, 3, n_samples).astype(np.float64)
            columns["sex"] = values.astype(np.int64)
        else:
            values = np.round(rng.normal(size=n_samples), 4)
            columns[f"cov{k + 1}"] = values
        sd = values.std()
        if sd > 0:
            effect += 0.2 * (values - values.mean()) / sd
    if "sex" not in columns:
        columns["sex"] = rng.integers(1, 3, n_samples)  # for the .fam only
        sex_only = True
    else:
        sex_only = False
    batch = rng.choice(np.array(["A", "B", "C"]), n_samples)
    effect += np.select([batch == "B", batch == "C"], [0.3, -0.3], 0.0)
    table = pd.DataFrame(columns)
    if sex_only:
        table = table.drop(columns="sex").assign(sex=columns["sex"])
    table["batch"] = batch
    return table, effect


def _genetic_value(
    G: np.ndarray,
    bim: pd.DataFrame,
    freq: np.ndarray,
    maf: np.ndarray,
    heritability: float,
    n_causal: int,
    epistatic_pairs: int,
    rng: np.random.Generator,
    epistatic_share: float | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    n_samples, n_variants = G.shape
    sd = np.sqrt(2.0 * freq * (1.0 - freq))
    sd[sd == 0] = 1.0
    used = np.zeros(n_variants, dtype=bool)
    rows = []
    terms = []
    chrom = bim["chrom"].to_numpy()

    def standardised(j: int) -> np.ndarray:
        return (G[:, j] - 2.0 * freq[j]) / sd[j]

    common = np.flatnonzero(maf >= 0.2)
    if len(common) < 2:
        common = np.argsort(-maf)[: max(2, n_variants // 10)]
    for pair in range(1, epistatic_pairs + 1):
        free = common[~used[common]]
        a = int(rng.choice(free))
        other = free[(chrom[free] != chrom[a]) & (free != a)]
        if len(other) == 0:  # one chromosome: take a variant far away instead
            distance = np.abs(bim["pos"].to_numpy()[free] - bim["pos"].iloc[a])
            other = free[distance >= np.quantile(distance, 0.9)]
            other = other[other != a]
        b = int(rng.choice(other))
        used[[a, b]] = True
        product = standardised(a) * standardised(b)
        centre, scale = product.mean(), product.std() or 1.0
        effect = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)
        terms.append(effect * (product - centre) / scale)
        # Per unit of (x_a - 2p_a)(x_b - 2p_b): undo both standardisations.
        for j in (a, b):
            rows.append((j, effect, effect / (scale * sd[a] * sd[b]), "epistatic", pair))
    free = np.flatnonzero(~used)
    causal = np.sort(rng.choice(free, size=min(n_causal, len(free)), replace=False))
    for j in causal:
        effect = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)
        terms.append(effect * standardised(j))
        rows.append((int(j), effect, effect / sd[j], "additive", 0))
    if epistatic_share is not None:
        _share_variance(terms, rows, epistatic_pairs, epistatic_share)
    g = np.sum(terms, axis=0) if terms else np.zeros(n_samples)
    variance = g.var()
    factor = math.sqrt(heritability / variance) if variance > 0 and heritability > 0 else 0.0
    g = (g - g.mean()) * factor
    truth = pd.DataFrame(rows, columns=["index", "std_effect", "effect", "kind", "pair"])
    truth = truth.sort_values(["index", "kind"], kind="stable").reset_index(drop=True)
    index = truth["index"].to_numpy(dtype=np.int64)  # int also when there is no causal row
    truth = pd.DataFrame(
        {
            "id": bim["id"].to_numpy()[index],
            "chrom": bim["chrom"].to_numpy()[index],
            "pos": bim["pos"].to_numpy()[index],
            "a1": bim["a1"].to_numpy()[index],
            "maf": np.round(maf[index], 6),
            "effect": truth["effect"].to_numpy() * factor,
            "std_effect": truth["std_effect"].to_numpy() * factor,
            "kind": truth["kind"].to_numpy(),
            "pair": pd.array([int(p) if p else None for p in truth["pair"]], dtype="Int64"),
        }
    )
    return g, truth


def _share_variance(terms: list, rows: list, n_pairs: int, share: float) -> None:
    """Scale the pair terms (the first ``n_pairs``) to variance ``share`` and the additive
    terms to ``1 - share``, in place; the truth rows' effects follow."""
    groups = {
        "epistatic": (slice(0, n_pairs), share),
        "additive": (slice(n_pairs, None), 1 - share),
    }
    for kind, (part, target) in groups.items():
        chosen = terms[part]
        if not chosen:
            continue
        variance = np.sum(chosen, axis=0).var()
        factor = math.sqrt(target / variance) if variance > 0 else 0.0
        for i in range(len(terms))[part]:
            terms[i] = terms[i] * factor
        for k, row in enumerate(rows):
            if row[3] == kind:
                rows[k] = (row[0], row[1] * factor, row[2] * factor, row[3], row[4])


def _write_plink(
    paths: dict[str, Path],
    G: np.ndarray,
    bim: pd.DataFrame,
    fid: list[str],
    iid: list[str],
    sex: np.ndarray,
) -> None:
    from bed_reader import to_bed

    n = len(fid)
    properties = {
        "fid": fid,
        "iid": iid,
        "father": ["0"] * n,
        "mother": ["0"] * n,
        "sex": np.asarray(sex, dtype=np.int32),
        "pheno": ["-9"] * n,
        "chromosome": bim["chrom"].to_numpy(),
        "sid": bim["id"].to_numpy(),
        "cm_position": bim["cm"].to_numpy(),
        "bp_position": bim["pos"].to_numpy(),
        "allele_1": bim["a1"].to_numpy(),
        "allele_2": bim["a2"].to_numpy(),
    }
    with ExitStack() as stack:
        bed, fam, bim_path = (
            stack.enter_context(atomic_path(paths[s])) for s in ("bed", "fam", "bim")
        )
        to_bed(
            bed, G, properties=properties, count_A1=True, fam_filepath=fam, bim_filepath=bim_path
        )
