"""PCA against plink2 --pca on simulated data, and on real HapMap3 genotypes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import silhouette_score

from genoformer.gwas.stats.pca import pca, read_pca, write_pca
from tests.conftest import shared_data

HAPMAP = "geno/hapmap3/HM3_thinned_autosomal_overlap.bed"
CONTINENT = {
    **dict.fromkeys(("YRI", "LWK", "MKK"), "Africa"),
    **dict.fromkeys(("CEU", "TSI"), "Europe"),
    **dict.fromkeys(("CHB", "JPT", "CHD"), "East Asia"),
}


def _plink2() -> str:
    exe = shutil.which("plink2")
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("plink2 not installed")
        pytest.skip("plink2 not installed")
    return exe


@pytest.fixture(scope="module")
def structured_bed(tmp_path_factory) -> Path:
    """300 samples from 3 populations (Balding-Nichols, F_ST 0.05) x 2,000 variants."""
    from bed_reader import to_bed

    rng = np.random.default_rng(7)
    n, m = 300, 2000
    pop = np.repeat([0, 1, 2], n // 3)
    ancestral = rng.uniform(0.05, 0.95, m)
    fst = 0.05
    a, b = ancestral * (1 - fst) / fst, (1 - ancestral) * (1 - fst) / fst
    freqs = np.clip(np.stack([rng.beta(a, b) for _ in range(3)]), 0.01, 0.99)
    G = rng.binomial(2, freqs[pop]).astype(np.float32)
    G[rng.random(G.shape) < 0.01] = np.nan
    G[:, 3] = 0  # monomorphic: plink2 counts it in the denominator
    path = tmp_path_factory.mktemp("pca") / "sim.bed"
    to_bed(
        path,
        G,
        properties={
            "fid": [f"F{i}" for i in range(n)],
            "iid": [f"I{i}" for i in range(n)],
            "chromosome": np.repeat(["1", "2"], m // 2),
            "sid": [f"rs{j}" for j in range(m)],
            "bp_position": np.tile(np.arange(1, m // 2 + 1) * 100, 2),
        },
    )
    return path


def _plink2_pca(bed: Path, out: Path, *extra: str) -> Path:
    prefix = out / ("ref_" + "_".join(extra or ("exact",)))
    subprocess.run(
        [_plink2(), "--bfile", str(bed.with_suffix("")), "--pca", "10", *extra]
        + ["--threads", "1", "--out", str(prefix)],
        check=True,
        capture_output=True,
    )
    return prefix


def _assert_same(ours, ref) -> None:
    rel = np.abs(ours.eigenvalues / ref.eigenvalues - 1)
    assert rel.max() < 1e-3, rel
    assert (ours.eigenvectors["IID"] == ref.eigenvectors["IID"]).all()
    # Unit vectors equal up to sign: |cosine| = 1.
    cos = np.abs((ours.components * ref.components).sum(axis=0))
    np.testing.assert_allclose(cos, 1.0, atol=1e-4)


@pytest.mark.parametrize(("method", "mode"), [("exact", ()), ("randomized", ("approx",))])
def test_pca_matches_plink2(structured_bed, tmp_path, method, mode):
    ref = read_pca(_plink2_pca(structured_bed, tmp_path, *mode))
    ours = pca(structured_bed, n_components=10, method=method, chunk_size=300)
    _assert_same(ours, ref)
    # Round trip through our own plink2-like files.
    write_pca(ours, tmp_path / "ours")
    header = (tmp_path / "ours.eigenvec").read_text().splitlines()[0].split("\t")
    assert header == ["#FID", "IID"] + [f"PC{i}" for i in range(1, 11)]
    _assert_same(read_pca(tmp_path / "ours"), ref)


def test_pca_exact_and_randomized_agree_without_missing(tmp_path):
    from bed_reader import to_bed

    rng = np.random.default_rng(3)
    G = rng.binomial(2, rng.uniform(0.1, 0.9, 500), size=(120, 500)).astype(np.float32)
    G[:60] = np.minimum(G[:60] + (rng.random((60, 500)) < 0.3), 2)  # two groups
    to_bed(tmp_path / "x.bed", G)
    exact = pca(tmp_path / "x.bed", n_components=5, method="exact")
    rand = pca(tmp_path / "x.bed", n_components=5, method="randomized", chunk_size=64, seed=1)
    np.testing.assert_allclose(rand.eigenvalues, exact.eigenvalues, rtol=1e-6)
    np.testing.assert_allclose(np.abs(rand.components), np.abs(exact.components), atol=1e-5)
    # Signs are fixed by convention, so the two methods give the same vectors.
    np.testing.assert_allclose(rand.components, exact.components, atol=1e-5)


def test_pca_subsets_and_loadings(structured_bed):
    keep = np.arange(0, 300, 2)
    variants = np.arange(0, 2000, 3)
    res = pca(
        structured_bed,
        n_components=3,
        samples=keep,
        variants=variants,
        method="randomized",
        loadings=True,
    )
    assert list(res.eigenvectors["IID"]) == [f"I{i}" for i in keep]
    assert res.n_variants == len(variants)
    assert list(res.loadings["ID"]) == [f"rs{j}" for j in variants]
    # Loadings are the unit right singular vectors of X / sqrt(M) (mean-imputed X).
    norms = (res.loadings[["PC1", "PC2", "PC3"]].to_numpy() ** 2).sum(axis=0)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)


def test_pca_rejects_bad_arguments(structured_bed):
    with pytest.raises(ValueError, match="n_components"):
        pca(structured_bed, n_components=0)
    with pytest.raises(ValueError, match="method"):
        pca(structured_bed, method="svd")


def test_hapmap3_pcs_separate_continents():
    bed = shared_data(HAPMAP)
    res = pca(bed, n_components=4, method="exact")
    pops = pd.read_csv(
        bed.parent / "relationships_w_pops_121708.txt", sep="\t", dtype=str
    ).drop_duplicates("IID")
    table = res.eigenvectors.merge(pops[["IID", "population"]], on="IID", how="inner")
    assert len(table) >= 950
    table["continent"] = table["population"].map(CONTINENT)
    table = table.dropna(subset=["continent"])
    xy = table[["PC1", "PC2"]].to_numpy()
    score = silhouette_score(xy, table["continent"])
    centroids = table.groupby("continent")[["PC1", "PC2"]].mean()
    nearest = centroids.index[
        np.argmin(((xy[:, None, :] - centroids.to_numpy()[None]) ** 2).sum(-1), axis=1)
    ]
    accuracy = float((nearest == table["continent"].to_numpy()).mean())
    assert score > 0.7, score
    assert accuracy > 0.95, accuracy
