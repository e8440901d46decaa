"""The GWAS simulator: sizes, filters, missing calls, truth table, PLINK compatibility."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from genoformer.engine.errors import InputError
from genoformer.gwas.io.genotypes import open_genotypes
from genoformer.gwas.io.phenotypes import (
    covariate_matrix,
    match_samples,
    phenotype_vector,
    read_table,
)
from genoformer.gwas.io.simulate import simulate


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("sim") / "toy"
    result = simulate(
        prefix,
        n_samples=300,
        n_variants=901,
        n_chromosomes=3,
        maf_min=0.05,
        missing_rate=0.02,
        n_causal=5,
        epistatic_pairs=1,
        n_covariates=3,
        seed=11,
    )
    return prefix, result


def test_sizes_maf_and_missing_rate(small):
    prefix, result = small
    assert set(result.outputs) >= {"bed", "bim", "fam", "pheno", "covar", "truth"}
    with open_genotypes(prefix) as source:
        assert (source.n_samples, source.n_variants) == (300, 901)
        assert source.variants["chrom"].value_counts().to_dict() == {"1": 301, "2": 300, "3": 300}
        for _, chrom in source.variants.groupby("chrom"):
            assert chrom["pos"].is_monotonic_increasing and chrom["pos"].is_unique
        G = source.read()
    assert set(np.unique(G[~np.isnan(G)]).tolist()) <= {0.0, 1.0, 2.0}
    missing = np.isnan(G).mean()
    assert 0.015 < missing < 0.025
    freq = np.nanmean(G, axis=0) / 2
    maf = np.minimum(freq, 1 - freq)
    # The filter is on the true genotypes; 2% missing calls move the observed MAF only a bit.
    assert maf.min() > 0.04 and np.mean(maf < 0.05) < 0.05


def test_phenotype_and_covariate_files(small):
    prefix, result = small
    with open_genotypes(prefix) as source:
        pheno = read_table(result.outputs["pheno"])
        index, aligned, dropped = match_samples(source.samples, pheno)
        assert dropped == 0 and len(index) == 300
        y, kind = phenotype_vector(aligned, "quant")
        assert kind == "quantitative" and not np.isnan(y).any()
        b, kind = phenotype_vector(aligned, "binary")
        assert kind == "binary" and abs(b.mean() - 0.3) < 0.01  # prevalence
        covar = read_table(result.outputs["covar"])
        assert covar.columns.tolist() == ["FID", "IID", "age", "sex", "cov3", "batch"]
        X, names = covariate_matrix(covar)
        assert names == ["age", "sex", "cov3", "batch=B", "batch=C"] and X.shape == (300, 5)
        assert (source.samples["sex"].to_numpy() == covar["sex"].to_numpy()).all()
    assert abs(result.metrics["h2_observed"] - 0.5) < 0.1


def test_truth_table(small):
    prefix, result = small
    truth = pd.read_csv(result.outputs["truth"], sep="\t", dtype={"chrom": str})
    assert truth.columns.tolist() == [
        "id",
        "chrom",
        "pos",
        "a1",
        "maf",
        "effect",
        "std_effect",
        "kind",
        "pair",
    ]
    assert (truth["kind"] == "additive").sum() == 5 and (truth["kind"] == "epistatic").sum() == 2
    pair = truth[truth["kind"] == "epistatic"]
    assert pair["pair"].nunique() == 1 and pair["chrom"].nunique() == 2  # unlinked
    assert truth[truth["kind"] == "additive"]["pair"].isna().all()
    bim = pd.read_csv(f"{prefix}.bim", sep=r"\s+", header=None, dtype={0: str})
    assert set(truth["id"]) <= set(bim[1])
    assert (truth["effect"].abs() > 0).all()


def test_deterministic_with_seed(tmp_path):
    a = simulate(tmp_path / "a", n_samples=50, n_variants=60, seed=4)
    b = simulate(tmp_path / "b", n_samples=50, n_variants=60, seed=4)
    c = simulate(tmp_path / "c", n_samples=50, n_variants=60, seed=5)
    for key in ("bed", "bim", "pheno", "covar", "truth"):
        assert a.outputs[key].read_bytes() == b.outputs[key].read_bytes()
    assert a.outputs["bed"].read_bytes() != c.outputs["bed"].read_bytes()


def test_plink2_reads_the_files(small, tmp_path):
    plink2 = shutil.which("plink2")
    if plink2 is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("plink2 not installed")
        pytest.skip("plink2 not installed")
    prefix, result = small
    out = tmp_path / "freq"
    run = subprocess.run(
        [plink2, "--bfile", str(prefix), "--freq", "--out", str(out), "--threads", "1"]
        + ["--pheno", str(result.outputs["pheno"]), "--covar", str(result.outputs["covar"])],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 binary, 1 quantitative" in run.stdout
    freq = pd.read_csv(f"{out}.afreq", sep="\t")
    assert len(freq) == 901
    with open_genotypes(prefix) as source:
        ours = np.nanmean(source.read(), axis=0) / 2
        # plink2's ALT is .bim column 5, the allele we count.
        assert (freq["ALT"].to_numpy() == source.variants["a1"].to_numpy()).all()
    np.testing.assert_allclose(freq["ALT_FREQS"].to_numpy(), ours, atol=1e-6)


def test_epistatic_pair_has_no_marginal_but_a_product_effect(tmp_path):
    result = simulate(
        tmp_path / "epi",
        n_samples=2000,
        n_variants=300,
        n_chromosomes=2,
        missing_rate=0.0,
        n_causal=0,
        epistatic_pairs=1,
        n_covariates=0,
        heritability=0.8,
        seed=2,
    )
    truth = pd.read_csv(result.outputs["truth"], sep="\t", dtype={"chrom": str})
    with open_genotypes(tmp_path / "epi") as source:
        columns = source.variants.index[source.variants["id"].isin(truth["id"])].to_numpy()
        G = source.read(variants=columns).astype(np.float64)
    y, _ = phenotype_vector(read_table(result.outputs["pheno"]), "quant")
    centred = G - G.mean(axis=0)
    marginal = [abs(np.corrcoef(centred[:, k], y)[0, 1]) for k in range(2)]
    product = np.corrcoef(centred[:, 0] * centred[:, 1], y)[0, 1]
    assert max(marginal) < 0.1
    assert abs(product) > 0.7
    assert np.sign(product) == np.sign(truth["effect"].iloc[0])


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="heritability is 1.5"):
        simulate(tmp_path / "x", n_samples=10, n_variants=10, heritability=1.5)
    with pytest.raises(InputError, match="prevalence"):
        simulate(tmp_path / "x", n_samples=10, n_variants=10, prevalence=0.0)


@pytest.mark.parametrize("share", [0.8, 0.0])
def test_epistatic_share_sets_the_pairs_share_of_genetic_variance(tmp_path, share):
    result = simulate(
        tmp_path / "share",
        n_samples=500,
        n_variants=400,
        n_chromosomes=2,
        missing_rate=0.0,
        n_causal=6,
        epistatic_pairs=2,
        epistatic_share=share,
        seed=7,
    )
    truth = pd.read_csv(result.outputs["truth"], sep="\t", dtype={"chrom": str})
    with open_genotypes(result.outputs["prefix"]) as source:
        index = source.variants.reset_index().set_index("id").loc[truth["id"], "index"]
        G = source.read(variants=np.sort(index.to_numpy()))
        position = {j: k for k, j in enumerate(np.sort(index.to_numpy()))}
    centred = {
        row.id: G[:, position[index[row.id]]] - G[:, position[index[row.id]]].mean()
        for row in truth.itertuples()
    }
    additive = sum(r.effect * centred[r.id] for r in truth.itertuples() if r.kind == "additive")
    pairs = 0.0
    for _, rows in truth[truth["kind"] == "epistatic"].groupby("pair"):
        a, b = rows["id"].tolist()
        pairs = pairs + rows["effect"].iloc[0] * centred[a] * centred[b]
    observed = np.var(pairs) / (np.var(pairs) + np.var(additive))
    assert abs(observed - share) < 0.05
    assert abs(np.var(additive + pairs) - 0.5) < 0.05  # h2 unchanged


def test_epistatic_share_must_be_a_share(tmp_path):
    with pytest.raises(InputError, match="epistatic_share"):
        simulate(tmp_path / "bad", n_samples=20, n_variants=10, epistatic_share=1.5)
