"""The simulator's families (sibships, Mendelian transmission) and divergent populations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genoformer.engine.errors import InputError
from genoformer.gwas.io.genotypes import open_genotypes
from genoformer.gwas.io.simulate import simulate


def _relatedness(G: np.ndarray) -> np.ndarray:
    """The genetic relatedness matrix of standardised genotypes (2 x kinship)."""
    freq = np.nanmean(G, axis=0) / 2
    Z = np.nan_to_num((G - 2 * freq) / np.sqrt(2 * freq * (1 - freq)))
    return Z @ Z.T / Z.shape[1]


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("fam") / "fam"
    result = simulate(
        prefix, n_samples=302, n_variants=1500, siblings=3, family_environment=0.3,
        heritability=0.4, n_causal=0, seed=5,
    )  # fmt: skip
    return prefix, result


def test_siblings_share_fid_and_half_their_genome(families):
    prefix, _ = families
    with open_genotypes(prefix) as source:
        fam = source.samples
        G = source.read()
    sizes = fam.groupby("fid").size()
    assert len(sizes) == 101 and sizes.max() == 3 and sizes.min() == 2  # 302 = 100 x 3 + 2
    assert fam["iid"].is_unique and (fam["father"] == "0").all()
    K = _relatedness(G)
    fid = fam["fid"].to_numpy()
    sibs = (fid[:, None] == fid[None, :]) & ~np.eye(len(fid), dtype=bool)
    others = fid[:, None] != fid[None, :]
    # kinship 0.25 between full siblings: relatedness 0.5 (noisy: a few crossovers here)
    assert K[sibs].mean() == pytest.approx(0.5, abs=0.06)
    assert abs(K[others].mean()) < 0.02
    freq = np.nanmean(G, axis=0) / 2
    assert np.minimum(freq, 1 - freq).min() > 0.008  # the MAF filter is on the children


def test_family_environment_is_shared_by_siblings(families):
    prefix, result = families
    pheno = pd.read_csv(result.outputs["pheno"], sep="\t")
    # no causal variant: the sibling correlation is the family environment's share alone
    centred = pheno["quant"] - pheno["quant"].mean()
    first = pheno.groupby("FID")["quant"].transform("first") - pheno["quant"].mean()
    pairs = pheno.groupby("FID").cumcount() > 0
    r = np.corrcoef(centred[pairs], first[pairs])[0, 1]
    assert 0.1 < r < 0.5


def test_populations_diverge_and_their_trait_means_differ(tmp_path):
    result = simulate(
        tmp_path / "pop", n_samples=300, n_variants=1200, populations=3,
        split_generations=2000, population_shift=1.5, seed=2,
    )  # fmt: skip
    table = pd.read_csv(result.outputs["populations"], sep="\t")
    assert table.columns.tolist() == ["FID", "IID", "population"]
    assert table["population"].value_counts().to_dict() == {"pop1": 100, "pop2": 100, "pop3": 100}
    pheno = pd.read_csv(result.outputs["pheno"], sep="\t")
    means = pheno.groupby(table["population"])["quant"].mean()
    assert means["pop1"] < means["pop2"] < means["pop3"]
    with open_genotypes(tmp_path / "pop") as source:
        G = source.read()
    K = _relatedness(G)
    pop = table["population"].to_numpy()
    within = (pop[:, None] == pop[None, :]) & ~np.eye(len(pop), dtype=bool)
    assert K[within].mean() > K[pop[:, None] != pop[None, :]].mean() + 0.05


def test_default_cohort_has_neither(tmp_path):
    result = simulate(tmp_path / "plain", n_samples=40, n_variants=50, seed=1)
    assert "populations" not in result.outputs
    fam = pd.read_csv(result.outputs["fam"], sep=r"\s+", header=None)
    assert fam[0].is_unique


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"siblings": 1}, "--siblings is 1"),
        ({"family_environment": 0.2}, "--family-environment needs families"),
        ({"siblings": 2, "family_environment": 0.6}, "--family-environment is 0.6"),
        ({"populations": 0}, "--populations is 0"),
        ({"populations": 30}, "20 samples for 30 populations"),
        ({"siblings": 4, "populations": 6}, "5 families for 6 populations"),
    ],
)
def test_bad_options(tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        simulate(tmp_path / "x", n_samples=20, n_variants=10, **options)
