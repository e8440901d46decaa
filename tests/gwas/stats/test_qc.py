"""Unit tests of QC: the exact Hardy-Weinberg test and plink2's filter order."""

from __future__ import annotations

import subprocess
from math import comb
from pathlib import Path

import numpy as np
import pytest

from genoformer.engine.errors import InputError
from genoformer.gwas.api import qc as genoformer_qc
from genoformer.gwas.io.genotypes import open_genotypes
from genoformer.gwas.stats.qc import hwe_exact, qc

bed_reader = pytest.importorskip("bed_reader")


def _brute_force(het: int, hom1: int, hom2: int, midp: bool = False) -> float:
    n = het + hom1 + hom2
    rare = min(2 * hom1 + het, 2 * hom2 + het)
    probs = {}
    for h in range(rare % 2, rare + 1, 2):
        hr = (rare - h) // 2
        ways = comb(n, h) * comb(n - h, hr) * 2**h
        probs[h] = ways / comb(2 * n, rare)
    obs = probs[het]
    p = sum(v for v in probs.values() if v <= obs * (1 + 1e-7))
    return p - obs / 2 if midp else p


@pytest.mark.parametrize("counts", [(10, 80, 10), (0, 50, 50), (57, 14, 29), (1, 0, 99), (3, 1, 0)])
def test_hwe_exact_equals_enumeration(counts) -> None:
    het, hom1, hom2 = counts
    for midp in (False, True):
        got = hwe_exact(np.array([het]), np.array([hom1]), np.array([hom2]), midp=midp)[0]
        assert got == pytest.approx(_brute_force(het, hom1, hom2, midp), rel=1e-9)


def test_hwe_exact_monomorphic() -> None:
    assert hwe_exact(np.array([0]), np.array([40]), np.array([0]))[0] == 1.0
    assert hwe_exact(np.array([0]), np.array([40]), np.array([0]), midp=True)[0] == 0.5


def test_filter_order_mind_before_geno(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n, m = 100, 40
    G = rng.binomial(2, 0.3, (n, m)).astype(np.float32)
    # sample 0 misses half its calls: those calls alone push variants over --geno 0.005
    G[0, :20] = np.nan
    G[:, 39] = 0  # monomorphic: --maf
    bed_reader.to_bed(tmp_path / "g.bed", G)
    source = open_genotypes(str(tmp_path / "g"))
    result = qc(source, mind=0.2, geno=0.005, maf=0.01)
    # with sample 0 gone first, --geno has nothing left to remove
    assert result.removed == {"mind": 1, "geno": 0, "maf": 1}
    assert 0 not in result.samples and result.variants.size == 39
    no_mind = qc(source, geno=0.005)
    assert no_mind.removed == {"geno": 20}
    stats = result.variant_stats
    assert stats.loc[39, "MAF"] == 0 and not stats.loc[39, "KEPT"]


def _with_missing(tmp_path: Path) -> str:
    rng = np.random.default_rng(7)
    G = rng.binomial(2, 0.3, (60, 30)).astype(np.float32)
    G[rng.random(G.shape) < 0.01] = np.nan
    bed_reader.to_bed(tmp_path / "g.bed", G)
    return str(tmp_path / "g")


def test_zero_thresholds_filter_as_plink2_does(tmp_path: Path) -> None:
    """``--geno 0`` and ``--mind 0`` are thresholds (any missing call goes), not "off"."""
    from tests.gwas.stats.test_association_plink import _tool

    prefix = _with_missing(tmp_path)
    plink2 = _tool("plink2")
    for flag in ("geno", "mind"):
        out = tmp_path / flag
        subprocess.run(
            [plink2, "--bfile", prefix, f"--{flag}", "0", "--make-just-bim", "--make-just-fam",
             "--out", str(out)],
            check=True, capture_output=True,
        )  # fmt: skip
        kept_variants = len(Path(f"{out}.bim").read_text().splitlines())
        kept_samples = len(Path(f"{out}.fam").read_text().splitlines())
        ours = qc(open_genotypes(prefix), **{flag: 0.0})
        assert (ours.variants.size, ours.samples.size) == (kept_variants, kept_samples)
        assert ours.removed[flag] > 0
        # ... and the command keeps the filter too (it once dropped a 0 as "no filter").
        result = genoformer_qc(prefix, out=tmp_path / f"run_{flag}", **{flag: 0.0})
        assert result.metrics["variants_kept"] == kept_variants


@pytest.mark.parametrize(
    ("name", "value"), [("maf", 2.0), ("maf", -1.0), ("geno", 1.5), ("mind", -0.1), ("hwe", 2.0)]
)
def test_thresholds_out_of_range_are_refused(tmp_path: Path, name: str, value: float) -> None:
    prefix = _with_missing(tmp_path)
    with pytest.raises(InputError, match=f"--{name} is {value:g}") as error:
        qc(open_genotypes(prefix), **{name: value})
    assert error.value.where == f"--{name}"
    with pytest.raises(InputError, match=f"--{name} is {value:g}"):
        genoformer_qc(prefix, out=tmp_path / "run", **{name: value})


def test_covariates_checked_as_plink2_glm_does():
    from genoformer.gwas.stats.qc import usable_covariates

    rng = np.random.default_rng(1)
    age = rng.normal(50, 10, 80)
    sex = rng.integers(1, 3, 80).astype(float)
    use = np.ones(80, dtype=bool)
    use[:5] = False  # not analysed (no phenotype): there the covariate varies
    site = np.where(use, 3.0, rng.normal(size=80))
    with pytest.warns(UserWarning, match="covariate 'site' is constant over the 75 analysed"):
        keep = usable_covariates(np.column_stack([age, site, sex]), ["age", "site", "sex"], use)
    assert keep.tolist() == [True, False, True]
    C = np.column_stack([age, sex, 2 * age + 1])
    with pytest.raises(InputError, match="'age', 'age2' are collinear.*CORR_TOO_HIGH"):
        usable_covariates(C, ["age", "sex", "age2"], use, file="c.covar")
    near = age + 10 * sex + rng.normal(0, 0.5, 80)  # |r| < 0.999 with each, VIF far above 50
    with pytest.raises(InputError, match="VIF_TOO_HIGH") as error:
        usable_covariates(np.column_stack([age, sex, near]), ["age", "sex", "near"], use)
    assert "near" in error.value.problem
    # the checks pass covariates that are merely correlated
    mild = age + rng.normal(0, 10, 80)
    assert usable_covariates(np.column_stack([age, mild]), ["age", "mild"], use).all()
