"""Unit tests of association and correction on small data made in the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from genoformer.engine.errors import InputError
from genoformer.gwas.io.genotypes import open_genotypes
from genoformer.gwas.stats.adjust import adjust, genomic_control_lambda
from genoformer.gwas.stats.association import associate, write_results

bed_reader = pytest.importorskip("bed_reader")


def _source(tmp_path: Path, G: np.ndarray):
    n, m = G.shape
    bed_reader.to_bed(
        tmp_path / "g.bed",
        G.astype(np.float32),
        properties={
            "fid": [f"f{i}" for i in range(n)],
            "iid": [f"i{i}" for i in range(n)],
            "chromosome": ["2"] * m,
            "sid": [f"v{j}" for j in range(m)],
            "bp_position": np.arange(1, m + 1),
            "allele_1": ["T"] * m,
            "allele_2": ["C"] * m,
        },  # fmt: skip
    )
    return open_genotypes(str(tmp_path / "g"))


@pytest.fixture
def data(tmp_path: Path):
    rng = np.random.default_rng(7)
    n, m = 200, 25
    G = rng.binomial(2, rng.uniform(0.1, 0.5, m), (n, m)).astype(float)
    G[rng.random((n, m)) < 0.03] = np.nan
    G[:, 3] = np.where(np.isnan(G[:, 3]), np.nan, 1.0)  # constant (all heterozygous)
    C = rng.normal(size=(n, 2)) * [10.0, 0.01] + [100.0, 0.0]
    y = 0.5 * np.nan_to_num(G[:, 0]) + 0.02 * C[:, 0] + rng.normal(size=n)
    yb = (rng.random(n) < special.expit(np.nan_to_num(G[:, 0]) - 1)).astype(float)
    return _source(tmp_path, G), G, C, y, yb


def test_linear_equals_least_squares_per_variant(data) -> None:
    source, G, C, y, _ = data
    res = associate(source, y, covariates=C, a1="alt", chunk_size=10)
    for j in [0, 1, 7, 24]:
        ok = ~np.isnan(G[:, j])
        Z = np.column_stack([np.ones(ok.sum()), C[ok], G[ok, j]])
        coef, rss, *_ = np.linalg.lstsq(Z, y[ok], rcond=None)
        df = ok.sum() - Z.shape[1]
        se = np.sqrt(rss[0] / df * np.linalg.inv(Z.T @ Z)[-1, -1])
        row = res.iloc[j]
        assert row["OBS_CT"] == ok.sum()
        assert row["BETA"] == pytest.approx(coef[-1], rel=1e-9)
        assert row["SE"] == pytest.approx(se, rel=1e-9)
        assert row["P"] == pytest.approx(2 * stats.t.sf(abs(coef[-1] / se), df), rel=1e-9)
    assert res.loc[3, "ERRCODE"] == "CONST_OMITTED_ALLELE"
    assert np.isnan(res.loc[3, "BETA"])


def test_a1_choice_and_chunking(data) -> None:
    source, G, C, y, _ = data
    alt = associate(source, y, covariates=C, a1="alt")
    ref = associate(source, y, covariates=C, a1="ref", chunk_size=4)
    assert (alt["A1"] == "T").all() and (ref["A1"] == "C").all()
    np.testing.assert_allclose(alt["BETA"], -ref["BETA"], rtol=1e-10)
    np.testing.assert_allclose(alt["P"], ref["P"], rtol=1e-10)
    minor = associate(source, y, covariates=C)  # plink2's default: the minor allele
    freq = np.nanmean(G, axis=0) / 2
    assert list(minor["A1"]) == ["C" if f > 0.5 else "T" for f in freq]


def test_minor_allele_counted_over_founders(tmp_path: Path) -> None:
    # founders: ALT frequency 0.4; the 20 non-founders are all ALT/ALT (0.7 over everyone)
    g = np.r_[np.repeat([0.0, 1.0, 2.0], [8, 8, 4]), np.full(20, 2.0)]
    G = np.column_stack([g, g[::-1]])
    bed_reader.to_bed(
        tmp_path / "f.bed",
        G,
        properties={
            "iid": [f"i{i}" for i in range(40)],
            "father": ["0"] * 20 + ["i0"] * 20,  # a parent id makes a non-founder (plink2)
            "chromosome": ["1", "1"],
            "sid": ["a", "b"],
            "bp_position": [1, 2],
            "allele_1": ["T", "T"],
            "allele_2": ["C", "C"],
        },  # fmt: skip
    )
    res = associate(str(tmp_path / "f"), np.arange(40.0), test="linear")
    assert list(res["A1"]) == ["T", "C"]


def test_logistic_equals_newton_per_variant(data) -> None:
    source, G, C, _, yb = data
    res = associate(source, yb, covariates=C, a1="alt", firth="never")
    assert "FIRTH?" not in res  # as plink2: the column comes with firth="fallback" only
    for j in [0, 5]:
        ok = ~np.isnan(G[:, j])
        Z = np.column_stack([np.ones(ok.sum()), (C[ok] - C.mean(0)) / C.std(0), G[ok, j]])
        b = np.zeros(Z.shape[1])
        for _ in range(30):
            p = special.expit(Z @ b)
            H = Z.T @ (Z * (p * (1 - p))[:, None])
            b += np.linalg.solve(H, Z.T @ (yb[ok] - p))
        se = np.sqrt(np.linalg.inv(H)[-1, -1])
        assert res.loc[j, "OR"] == pytest.approx(np.exp(b[-1]), rel=1e-8)
        assert res.loc[j, "LOG(OR)_SE"] == pytest.approx(se, rel=1e-6)


def test_firth_always_and_separation(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 300
    y = (rng.random(n) < 0.4).astype(float)
    g = np.zeros(n)
    g[np.flatnonzero(y)[:4]] = 1.0  # carriers are all cases: separation
    G = np.column_stack([g, rng.binomial(2, 0.3, n)])
    source = _source(tmp_path, G)
    fallback = associate(source, y + 1)  # 1/2 coding as in PLINK
    assert list(fallback["FIRTH?"]) == ["Y", "N"]
    assert np.isfinite(fallback.loc[0, "OR"]) and fallback.loc[0, "OR"] > 1
    always = associate(source, y, firth="always")
    assert "FIRTH?" not in always and always["ERRCODE"].eq(".").all()
    assert always.loc[1, "OR"] == pytest.approx(fallback.loc[1, "OR"], rel=0.05)
    never = associate(source, y, firth="never")
    assert never.loc[0, "ERRCODE"] == "SEPARATION"  # plink2 no-firth: no fit tried


def test_bad_input(data) -> None:
    source, _, C, y, yb = data
    with pytest.raises(InputError, match="phenotype has 3 values"):
        associate(source, [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="case/control"):
        associate(source, y, test="logistic")
    with pytest.raises(InputError, match="covariates have"):
        associate(source, y, covariates=C[:5])
    with pytest.raises(InputError, match="no sample left"):
        associate(source, np.full(len(y), np.nan), test="linear")


def test_samples_and_missing_covariates(data) -> None:
    source, G, C, y, _ = data
    C = C.copy()
    C[:10, 0] = np.nan
    res = associate(source, y, covariates=C, samples=np.arange(100), a1="alt")
    assert res.loc[1, "OBS_CT"] == (~np.isnan(G[10:100, 1])).sum()


def test_write_results_tsv_and_parquet(data, tmp_path: Path) -> None:
    source, _, C, y, _ = data
    res = associate(source, y, covariates=C)
    tsv = write_results(res, tmp_path / "r.tsv")
    back = pd.read_csv(tsv, sep="\t", na_values="NA", keep_default_na=False)
    assert list(back.columns)[0] == "#CHROM" and back.loc[3, "ERRCODE"] == "CONST_OMITTED_ALLELE"
    pq = pytest.importorskip("pyarrow")
    assert pq is not None
    back = pd.read_parquet(write_results(res, tmp_path / "r.parquet"))
    pd.testing.assert_frame_equal(back, res)


def test_adjust_columns_by_hand() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    res = pd.DataFrame({"#CHROM": "1", "ID": list("abcde"), "A1": "A", "P": p})
    table = adjust(res)
    assert list(table["ID"]) == ["a", "c", "b", "d"]
    np.testing.assert_allclose(table["BONF"], [0.04, 0.12, 0.16, 1.0])
    np.testing.assert_allclose(table["HOLM"], [0.04, 0.09, 0.09, 0.5])
    bh = np.array([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    np.testing.assert_allclose(table["FDR_BH"], bh)
    np.testing.assert_allclose(table["SIDAK_SS"], 1 - (1 - np.array([0.01, 0.03, 0.04, 0.5])) ** 4)
    h = 1 + 1 / 2 + 1 / 3 + 1 / 4
    np.testing.assert_allclose(table["FDR_BY"], np.minimum(bh * h, 1))


def test_lambda_of_null_p_is_one() -> None:
    p = (np.arange(10_001) + 0.5) / 10_001  # exact uniform quantiles
    median = stats.chi2.ppf(0.5, 1)
    assert genomic_control_lambda(p) == pytest.approx(median / 0.456, rel=1e-6)
    inflated = stats.chi2.sf(stats.chi2.isf(p, 1) * 1.2, 1)
    assert genomic_control_lambda(inflated) == pytest.approx(1.2 * median / 0.456, rel=1e-6)
