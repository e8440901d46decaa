"""The pair scan against plink1.9 --epistasis / --fast-epistasis on a simulated cohort with two
planted pairs (500 samples x 80 variants, 1% missing calls), and its bad-input messages.

plink1.9 prints STAT to 6 significant digits and P to 4; its P is the normal tail by an
approximation (Abramowitz & Stegun 26.2.17) that is up to 0.1% off near P = 1e-6 and more
below: genoformer's P is the exact tail of the same STAT, so the tests compare STAT, and P
through plink's own formula.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest

from genoformer.cli import main
from genoformer.engine.errors import InputError
from genoformer.gwas import api
from genoformer.gwas.io.genotypes import open_genotypes
from genoformer.gwas.io.phenotypes import phenotype_vector, read_table
from genoformer.gwas.io.simulate import simulate
from genoformer.gwas.stats import epistasis as E
from tests.gwas.stats.test_association_plink import _tool

PLINK_RUNS = {
    "linear": ("quant", "--epistasis", "epi.qt"),
    "logistic": ("binary", "--epistasis", "epi.cc"),
    "fast": ("binary", "--fast-epistasis", "epi.cc"),
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("epi")
    prefix = d / "c"
    simulate(prefix, n_samples=500, n_variants=80, n_chromosomes=2, n_causal=2,
             epistatic_pairs=2, epistatic_share=0.9, heritability=0.7, prevalence=0.4,
             seed=5)  # fmt: skip
    return {"dir": d, "prefix": prefix, "truth": pd.read_csv(f"{prefix}.truth.tsv", sep="\t")}


@pytest.fixture(scope="module")
def plink(cohort) -> dict:
    plink19 = _tool("plink1.9")
    out = {}
    for test, (column, flag, suffix) in PLINK_RUNS.items():
        stem = cohort["dir"] / f"plink_{test}"
        subprocess.run(
            [plink19, "--bfile", str(cohort["prefix"]), "--pheno", f"{cohort['prefix']}.pheno",
             "--pheno-name", column, flag, "--epi1", "0.05", "--allow-no-sex", "--threads", "1",
             "--out", str(stem)],
            check=True, capture_output=True,
        )  # fmt: skip
        out[test] = (
            pd.read_csv(f"{stem}.{suffix}", sep=r"\s+"),
            pd.read_csv(f"{stem}.{suffix}.summary", sep=r"\s+"),
        )
    return out


def _scan(cohort, test: str, **settings) -> E.ScanResult:
    column = PLINK_RUNS[test][0]
    y, kind = phenotype_vector(read_table(f"{cohort['prefix']}.pheno"), column)
    with open_genotypes(cohort["prefix"]) as source:
        return E.scan_pairs(source, y, kind, E.ScanSettings(test=test, threads=2, **settings))


def _plink_p(stat: np.ndarray) -> np.ndarray:
    """plink1.9's normdist(-sqrt(stat)) * 2."""
    z = np.sqrt(stat)
    t = 1.0 / (1.0 + 0.2316419 * z)
    poly = t * (
        0.31938153 + t * (-0.356563782 + t * (1.781477937 + t * (-1.821255978 + 1.330274429 * t)))
    )
    return 2.0 * np.exp(-0.5 * z * z) / 2.50662827463 * poly


@pytest.mark.parametrize("test", list(PLINK_RUNS))
def test_pairs_match_plink19(cohort, plink, test):
    ours = _scan(cohort, test, threshold=0.05)
    ref, ref_summary = plink[test]
    pairs = ours.pairs
    assert len(ref) > 20
    assert list(zip(pairs.SNP1, pairs.SNP2, strict=True)) == list(
        zip(ref.SNP1, ref.SNP2, strict=True)
    )
    # plink1.9 fits the logistic model in single precision
    tolerance = 2e-4 if test == "logistic" else 1e-5
    np.testing.assert_allclose(pairs.STAT, ref.STAT, rtol=tolerance)
    np.testing.assert_allclose(_plink_p(pairs.STAT.to_numpy()), ref.P, rtol=1e-3)
    from scipy import special

    np.testing.assert_allclose(pairs.P, 2 * special.ndtr(-np.sqrt(pairs.STAT)), rtol=1e-12)
    coefficient = {"linear": "BETA_INT", "logistic": "OR_INT"}.get(test)
    if coefficient:
        np.testing.assert_allclose(pairs[coefficient], ref[coefficient], rtol=tolerance)
    assert list(ours.summary.columns) == E.SUMMARY_COLUMNS
    assert (ours.summary.SNP.to_numpy() == ref_summary.SNP.to_numpy()).all()
    assert (ours.summary.N_SIG.to_numpy() == ref_summary.N_SIG.to_numpy()).all()
    if test != "logistic":  # plink's single-precision fit fails a few more or fewer pairs
        assert (ours.summary.N_TOT.to_numpy() == ref_summary.N_TOT.to_numpy()).all()
        np.testing.assert_allclose(ours.summary.BEST_CHISQ, ref_summary.BEST_CHISQ, rtol=1e-3)


@pytest.mark.parametrize("test", ["linear", "logistic", "fast"])
def test_planted_pairs_found(cohort, test):
    pairs = _scan(cohort, test).pairs
    truth = cohort["truth"]
    planted = truth[truth.kind == "epistatic"].groupby("pair")["id"].apply(tuple)
    found = set(zip(pairs.SNP1, pairs.SNP2, strict=True))
    assert all(pair in found for pair in planted), (planted.tolist(), pairs.head())


def test_blocks_agree_with_the_one_pair_path(cohort):
    """The fast path (bit planes, block features, single-precision product) gives the
    statistic of the direct per-pair path on every pair."""
    y, kind = phenotype_vector(read_table(f"{cohort['prefix']}.pheno"), "quant")
    with open_genotypes(cohort["prefix"]) as source:
        for test in ("linear", "fast"):
            yy = y if test == "linear" else phenotype_vector(
                read_table(f"{cohort['prefix']}.pheno"), "binary")[0]  # fmt: skip
            geno = E._prepare(source, yy, test)
            n = geno.index.size
            # alpha1 = -inf: every pair is a candidate
            job = E._Job(E.TESTS.index(test), geno, np.zeros(0, np.bool_), 50.0, -np.inf, 1.0)
            r, c, pa, pb, stat, *_ = job.tile((np.arange(n), np.arange(n)))
            pair = stat > -1.5  # -2: not a pair of the scan (b <= a)
            pa, pb, stat = pa[pair], pb[pair], stat[pair]
            exact, coef = np.empty(pa.size), np.empty(pa.size)
            E._exact_kernel(job.code, pa.astype(np.int64), pb.astype(np.int64), geno.data, 50.0,
                            exact, coef)  # fmt: skip
            assert pa.size == n * (n - 1) // 2
            tested = exact >= 0
            assert ((stat >= 0) == tested).all()
            np.testing.assert_allclose(stat[tested], exact[tested], rtol=1e-5, atol=1e-5)


def test_against_a_set_is_the_all_pairs_rows_of_that_set(cohort, tmp_path):
    everything = _scan(cohort, "linear", threshold=0.05).pairs
    with open_genotypes(cohort["prefix"]) as source:
        ids = source.variants["id"].to_numpy()
    chosen = [ids[3], ids[50]]
    against = [int(np.flatnonzero(ids == v)[0]) for v in chosen]
    subset = _scan(cohort, "linear", threshold=0.05, against=against).pairs
    expected = everything[everything.SNP1.isin(chosen) | everything.SNP2.isin(chosen)]
    key = lambda f: {frozenset(p) for p in zip(f.SNP1, f.SNP2, strict=True)}  # noqa: E731
    assert key(subset) == key(expected) and len(subset) == len(expected)
    assert set(subset.SNP1) <= set(chosen)


def test_command_writes_a_run(cohort, tmp_path):
    out = tmp_path / "run"
    args = ["gwas", "epistasis", str(cohort["prefix"]), "--out", str(out), "--pheno",
            f"{cohort['prefix']}.pheno", "--pheno-name", "quant", "--threads", "2"]  # fmt: skip
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code in (0, None)
    table = pd.read_csv(out / "epistasis.tsv", sep="\t")
    assert list(table.columns) == E.QT_COLUMNS and (table.P < 1e-4).all() and len(table) >= 2
    summary = pd.read_csv(out / "epistasis.summary.tsv", sep="\t")
    assert list(summary.columns) == E.SUMMARY_COLUMNS
    with pytest.raises(InputError, match="holds a run"):
        api.epistasis(cohort["prefix"], out=out, pheno=f"{cohort['prefix']}.pheno")
    result = api.epistasis(cohort["prefix"], out=out, pheno=f"{cohort['prefix']}.pheno",
                           pheno_name="binary", test="fast", overwrite=True)  # fmt: skip
    assert result.metrics["test"] == "fast"
    assert list(pd.read_csv(out / "epistasis.tsv", sep="\t").columns) == E.FAST_COLUMNS


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold": 0.0}, r"--threshold: 0.0 is not a P-value threshold"),
        ({"threshold": 1.5}, r"--threshold: 1.5 is not a P-value threshold"),
        ({"summary_threshold": float("nan")}, r"--summary-threshold: nan is not a P-value"),
        ({"test": "boost"}, r"--test: unknown test 'boost'"),
        ({"test": "fast"}, r"test 'fast' needs a case/control phenotype"),
        ({"test": "logistic"}, r"test 'logistic' needs a case/control phenotype"),
        ({"threads": 0}, r"--threads: --threads is 0"),
    ],
)
def test_bad_settings(cohort, tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        api.epistasis(cohort["prefix"], out=tmp_path / "r", pheno=f"{cohort['prefix']}.pheno",
                      pheno_name="quant", **options)  # fmt: skip


def test_linear_on_case_control_is_refused(cohort, tmp_path):
    with pytest.raises(InputError, match=r"test 'linear' on a case/control phenotype"):
        api.epistasis(cohort["prefix"], out=tmp_path / "r", pheno=f"{cohort['prefix']}.pheno",
                      pheno_name="binary", test="linear")  # fmt: skip


def test_variant_list_errors(cohort, tmp_path):
    pheno = f"{cohort['prefix']}.pheno"
    with open_genotypes(cohort["prefix"]) as source:
        first = source.variants["id"].iloc[0]
    listed = tmp_path / "set.txt"
    listed.write_text(f"{first}\n\nrs_nowhere\n")
    with pytest.raises(InputError, match=r"set.txt line 3: variant 'rs_nowhere' is not in"):
        api.epistasis(cohort["prefix"], out=tmp_path / "a", pheno=pheno, against=listed)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(InputError, match=r"empty.txt: no variant IDs in the list"):
        api.epistasis(cohort["prefix"], out=tmp_path / "b", pheno=pheno, against=empty)
    with pytest.raises(InputError, match=r"absent.txt: no such variant list"):
        api.epistasis(cohort["prefix"], out=tmp_path / "c", pheno=pheno,
                      against=tmp_path / "absent.txt")  # fmt: skip


def test_degenerate_data_refused(cohort, tmp_path):
    with open_genotypes(cohort["prefix"]) as source:
        n = source.n_samples
        constant = np.ones(n)
        with pytest.raises(InputError, match="the phenotype is constant"):
            E.scan_pairs(source, constant, "quantitative", E.ScanSettings())
        few = np.zeros(n)
        few[0] = 1.0
        with pytest.raises(InputError, match="1 cases and .* controls"):
            E.scan_pairs(source, few, "binary", E.ScanSettings())
        from genoformer.gwas.io.genotypes import ArrayGenotypes

        flat = ArrayGenotypes(
            np.zeros((n, 3), np.float32), source.variants.iloc[:3], source.samples
        )
        with pytest.raises(InputError, match=r"0 variants left to scan \(3 monomorphic"):
            E.scan_pairs(flat, np.arange(n, dtype=float), "quantitative", E.ScanSettings())
