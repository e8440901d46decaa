"""Whole-genome regression (regenie step 1) and association with its LOCO offsets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import special

from genoformer.cli import main
from genoformer.engine.errors import InputError
from genoformer.gwas import api
from genoformer.gwas.io.genotypes import ArrayGenotypes, open_genotypes
from genoformer.gwas.io.phenotypes import read_table
from genoformer.gwas.io.simulate import simulate
from genoformer.gwas.stats.adjust import genomic_control_lambda
from genoformer.gwas.stats.association import associate
from genoformer.gwas.stats.wgr import WGRSettings, associate_loco, fit_wgr
from tests.conftest import shared_data


def _cohort(tmp_path_factory, name: str, **options):
    prefix = tmp_path_factory.mktemp(name) / name
    result = simulate(prefix, n_samples=600, n_variants=2400, seed=options.pop("seed"), **options)
    pheno = read_table(result.outputs["pheno"])
    truth = pd.read_csv(result.outputs["truth"], sep="\t", dtype={"chrom": str})
    return prefix, pheno, truth


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """Sibships of 4, a trait of 3 causal variants on 8 chromosomes."""
    return _cohort(
        tmp_path_factory, "fam", siblings=4, n_chromosomes=8, n_causal=3, heritability=0.8, seed=2
    )


@pytest.fixture(scope="module")
def populations(tmp_path_factory):
    """Two populations whose trait means are 1 SD apart."""
    return _cohort(
        tmp_path_factory, "pop", populations=2, population_shift=1.0, n_chromosomes=4,
        n_causal=5, seed=3,
    )  # fmt: skip


def _lambdas(prefix, y, null_of) -> tuple[float, float]:
    with open_genotypes(prefix) as source:
        null = null_of(source.variants)
        plain = associate(source, y)
        loco = associate_loco(source, y, fit_wgr(source, y))
    return tuple(genomic_control_lambda(t.loc[null, "P"].to_numpy()) for t in (plain, loco))


def test_wgr_deflates_lambda_under_relatedness(families):
    prefix, pheno, truth = families
    # Siblings share whole chromosomes here (a few Mb each): the null variants are those of
    # the chromosomes without a causal variant.
    plain, wgr = _lambdas(
        prefix, pheno["quant"].to_numpy(float), lambda v: ~v["chrom"].isin(truth["chrom"])
    )
    assert plain > 1.25
    assert abs(wgr - 1.0) < 0.12 and wgr < plain - 0.2


def test_wgr_deflates_lambda_under_population_structure(populations):
    prefix, pheno, truth = populations

    def far(v: pd.DataFrame) -> np.ndarray:
        near = np.zeros(len(v), dtype=bool)
        for chrom, pos in zip(truth["chrom"], truth["pos"], strict=True):
            near |= (v["chrom"] == chrom).to_numpy() & (np.abs(v["pos"] - pos) < 300_000).to_numpy()
        return ~near

    plain, wgr = _lambdas(prefix, pheno["quant"].to_numpy(float), far)
    assert plain > 1.3
    assert abs(wgr - 1.0) < 0.1


def test_step_2_uses_the_loco_offset(families):
    prefix, pheno, _ = families
    y = pheno["quant"].to_numpy(float)
    binary = pheno["binary"].to_numpy(float)
    with open_genotypes(prefix) as source:
        fit = fit_wgr(source, y, settings=WGRSettings(block_size=150))
        assert fit.chromosomes == [str(c) for c in range(1, 9)]
        assert fit.loco.shape == (600, 8) and np.isfinite(fit.loco).all()
        # each chromosome's prediction comes without its own blocks: they differ
        assert np.corrcoef(fit.offset("1"), fit.offset("2"))[0, 1] < 0.999
        table = associate_loco(source, y, fit)
        index = np.flatnonzero(source.variants["chrom"] == "2")
        direct = associate(source, y - fit.offset("2"), variants=index)
        rows = table[table["#CHROM"] == "2"].reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, direct)

        logistic = fit_wgr(source, binary, settings=WGRSettings(block_size=150))
        assert logistic.test == "logistic"
        table = associate_loco(source, binary, logistic)
        direct = associate(source, binary, variants=index, offset=logistic.offset("2"))
        rows = table[table["#CHROM"] == "2"].reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, direct)
        G = source.read(variants=index[:3])
    # the offset enters the logistic fit's linear predictor: an independent Newton fit
    offset = logistic.offset("2")
    for j in range(3):
        g = G[:, j].astype(float)
        a1_is_alt = direct["A1"].iloc[j] == source.variants["a1"].iloc[index[j]]
        g = g if a1_is_alt else 2.0 - g
        ok = ~np.isnan(g)
        X = np.column_stack([np.ones(ok.sum()), g[ok]])
        b = np.zeros(2)
        for _ in range(50):
            p = special.expit(offset[ok] + X @ b)
            H = X.T @ (X * (p * (1 - p))[:, None])
            b += np.linalg.solve(H, X.T @ (binary[ok] - 1 - p))
        se = np.sqrt(np.linalg.inv(H)[1, 1])
        assert direct["OR"].iloc[j] == pytest.approx(np.exp(b[1]), rel=1e-6)
        assert direct["LOG(OR)_SE"].iloc[j] == pytest.approx(se, rel=1e-5)


def test_assoc_wgr_writes_loco_predictions(families, tmp_path):
    prefix, _, _ = families
    with pytest.raises(SystemExit) as exit_info:
        main(["gwas", "assoc", str(prefix), "--out", str(tmp_path / "run"), "--pheno",
              f"{prefix}.pheno", "--pheno-name", "quant", "--covar", f"{prefix}.covar", "--wgr",
              "--wgr-block-size", "300"])  # fmt: skip
    assert exit_info.value.code in (0, None)
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert {"wgr_loco", "wgr_pred_list", "results"} <= set(manifest["outputs"])
    assert manifest["results"]["wgr"]["blocks"] == 8  # 300 variants per chromosome
    loco = pd.read_csv(run / "wgr.loco", sep="\t")
    assert loco["FID_IID"].astype(str).tolist() == [str(c) for c in range(1, 9)]
    assert loco.columns[1] == "fam1_ind1" and loco.shape == (8, 601)
    assert (run / "wgr_pred.list").read_text().split()[0] == "quant"
    results = pd.read_csv(run / "assoc.tsv", sep="\t")
    assert len(results) == 2400 and results["P"].notna().all()


def test_hapmap3_population_structure():
    """Real genotypes of 957 samples of 11 HapMap3 populations, a trait whose mean differs
    by population (and no causal variant): plain regression inflates, --wgr does not."""
    bed = shared_data("geno/hapmap3/HM3_thinned_autosomal_overlap.bed")
    labels = pd.read_csv(bed.with_name("relationships_w_pops_121708.txt"), sep="\t")
    with open_genotypes(bed) as source:
        population = source.samples.merge(labels, left_on="iid", right_on="IID", how="left")
        names = sorted(population["population"].unique())
        means = dict(zip(names, np.linspace(-0.5, 0.5, len(names)), strict=True))
        rng = np.random.default_rng(0)
        y = population["population"].map(means).to_numpy() + rng.normal(size=source.n_samples)
        plain = associate(source, y)
        wgr = associate_loco(source, y, fit_wgr(source, y))
    lam = [genomic_control_lambda(t["P"].to_numpy()) for t in (plain, wgr)]
    assert lam[0] > 1.3 and abs(lam[1] - 1.0) < 0.05


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"folds": 1}, "--wgr-folds is 1"),
        ({"block_size": 0}, "--wgr-block-size is 0"),
        ({"h2_grid": (0.5, 1.0)}, "strictly between 0 and 1"),
    ],
)
def test_bad_settings(families, options, message):
    prefix, pheno, _ = families
    with open_genotypes(prefix) as source, pytest.raises(InputError, match=message):
        fit_wgr(source, pheno["quant"].to_numpy(float), settings=WGRSettings(**options))


def test_one_chromosome_and_chisq_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    G = rng.integers(0, 3, (40, 30)).astype(np.float32)
    variants = pd.DataFrame({"chrom": "1", "id": [f"v{i}" for i in range(30)], "cm": 0.0,
                             "pos": np.arange(30) + 1, "a1": "A", "a2": "G"})  # fmt: skip
    samples = pd.DataFrame(
        {"fid": [f"f{i}" for i in range(40)], "iid": [f"i{i}" for i in range(40)]}
    )
    source = ArrayGenotypes(G, variants, samples)
    y = rng.normal(size=40)
    with pytest.raises(InputError, match="at least 2 chromosomes, found 1"):
        fit_wgr(source, y)
    with pytest.raises(InputError, match="not chisq"):
        fit_wgr(source, (y > 0).astype(float), test="chisq")
    with pytest.raises(InputError, match="chi-square test takes no offset"):
        associate(source, (y > 0).astype(float), test="chisq", offset=y)
    with pytest.raises(InputError, match="offset has 3 values"):
        associate(source, y, offset=y[:3])


def test_cli_answers_one_line(tmp_path, capsys):
    prefix = tmp_path / "one"
    simulate(prefix, n_samples=60, n_variants=80, n_chromosomes=1, seed=1)
    with pytest.raises(SystemExit) as exit_info:
        api_args = ["gwas", "assoc", str(prefix), "--out", str(tmp_path / "run"), "--pheno",
                    f"{prefix}.pheno", "--wgr"]  # fmt: skip
        main(api_args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--wgr needs variants on at least 2 chromosomes, found 1 (1)" in err
    assert api.assoc is not None
