"""Conformance with plink2 --glm/--adjust/QC and plink1.9 --assoc on simulated data.

The data: 500 samples x 300 variants, 3 covariates, 1% missing calls, 20 rare variants
(Firth fallback), two constant variants, a Hardy-Weinberg violator, five samples and one
variant with many missing calls, one sample with a missing quantitative phenotype. A second
covariate file adds C4 = C1 + 0.3 * (variant 30) + noise: the covariates alone pass plink2's
VIF check, but with variant 30 in the model C1's VIF exceeds 50 (the genotype's stays near 5).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

bed_reader = pytest.importorskip("bed_reader")

from genoformer.gwas.io.genotypes import open_genotypes  # noqa: E402
from genoformer.gwas.stats.adjust import adjust  # noqa: E402
from genoformer.gwas.stats.association import associate  # noqa: E402
from genoformer.gwas.stats.qc import qc  # noqa: E402


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} not installed (apt-get install {name.replace('1.9', '')})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _simulate(prefix: Path) -> None:
    rng = np.random.default_rng(1)
    n, m = 500, 300
    freq = rng.uniform(0.05, 0.5, m)
    freq[:20] = rng.uniform(0.002, 0.01, 20)
    G = rng.binomial(2, freq, (n, m)).astype(np.float32)
    G[:, 20] = 0
    G[:, 21] = 2
    G[:, 22] = rng.choice([0, 2], n)
    G[rng.random((n, m)) < 0.01] = np.nan
    G[:5] = np.where(rng.random((5, m)) < 0.3, np.nan, G[:5])
    G[:, 23] = np.where(rng.random(n) < 0.2, np.nan, G[:, 23])
    cov = rng.normal(size=(n, 3))
    g0 = np.nan_to_num(G[:, 30], nan=1)
    yq = 0.3 * g0 + cov @ [0.5, -0.2, 0.1] + rng.normal(size=n)
    yb = (rng.random(n) < 1 / (1 + np.exp(0.5 - 0.5 * g0 - 0.3 * cov[:, 0]))).astype(int) + 1
    fid = [f"F{i}" for i in range(n)]
    iid = [f"I{i}" for i in range(n)]
    bed_reader.to_bed(
        f"{prefix}.bed",
        G,
        properties={
            "fid": fid,
            "iid": iid,
            "chromosome": ["1"] * m,
            "sid": [f"rs{j}" for j in range(m)],
            "bp_position": np.arange(m) * 100 + 1,
            "allele_1": ["A"] * m,
            "allele_2": ["G"] * m,
        },  # fmt: skip
    )
    q = [f"{v:.6f}" for v in yq]
    q[7] = "NA"
    pd.DataFrame({"FID": fid, "IID": iid, "Q": q, "B": yb}).to_csv(
        f"{prefix}.pheno", sep="\t", index=False
    )
    covar = pd.DataFrame(np.round(cov, 6), columns=["C1", "C2", "C3"])
    covar.insert(0, "IID", iid)
    covar.insert(0, "FID", fid)
    covar.to_csv(f"{prefix}.covar", sep="\t", index=False)
    g30 = np.nan_to_num(G[:, 30], nan=1.0)
    c4 = cov[:, 0] + 0.3 * (g30 - g30.mean()) / g30.std() + 0.1 * rng.normal(size=n)
    covar.assign(C4=np.round(c4, 6)).to_csv(f"{prefix}.vif.covar", sep="\t", index=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    plink2 = _tool("plink2")
    plink19 = _tool("plink1.9")
    d = tmp_path_factory.mktemp("plink")
    prefix = d / "d"
    _simulate(prefix)
    common = ["--bfile", str(prefix), "--threads", "1"]
    subprocess.run(
        [plink2, *common, "--glm", "firth-fallback", "hide-covar", "--pheno", f"{prefix}.pheno",
         "--covar", f"{prefix}.covar", "--adjust", "--out", str(d / "o")],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [plink2, *common, "--glm", "firth", "hide-covar", "--pheno", f"{prefix}.pheno",
         "--pheno-name", "B", "--covar", f"{prefix}.covar", "--out", str(d / "f")],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [plink2, *common, "--glm", "firth-fallback", "hide-covar", "--pheno", f"{prefix}.pheno",
         "--covar", f"{prefix}.vif.covar", "--out", str(d / "v")],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [plink2, *common, "--maf", "0.01", "--geno", "0.05", "--mind", "0.1", "--hwe", "1e-6",
         "--make-just-fam", "--out", str(d / "q")],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [plink19, "--bfile", str(prefix), "--pheno", f"{prefix}.pheno", "--pheno-name", "B",
         "--assoc", "--allow-no-sex", "--out", str(d / "a")],
        check=True, capture_output=True,
    )  # fmt: skip
    pheno = pd.read_csv(f"{prefix}.pheno", sep="\t")
    covar = pd.read_csv(f"{prefix}.covar", sep="\t")[["C1", "C2", "C3"]]
    vif_covar = pd.read_csv(f"{prefix}.vif.covar", sep="\t")[["C1", "C2", "C3", "C4"]]
    return {
        "dir": d, "source": open_genotypes(str(prefix)), "pheno": pheno, "covar": covar,
        "vif_covar": vif_covar,
    }  # fmt: skip


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=r"\s+", na_values="NA", keep_default_na=False)


def _close(ours: pd.Series, theirs: pd.Series, rtol: float, floor: float = 0.0) -> float:
    """Largest relative difference; asserts NA where plink has NA."""
    a = ours.to_numpy(dtype=float)
    b = theirs.to_numpy(dtype=float)
    assert np.array_equal(np.isnan(a), np.isnan(b)), "NA rows differ"
    ok = ~np.isnan(b)
    a, b = a[ok], b[ok]
    both_tiny = (np.abs(a) < floor) & (np.abs(b) < floor)
    rel = np.where(both_tiny, 0.0, np.abs(a - b) / np.maximum(np.abs(b), 1e-300))
    assert rel.max(initial=0.0) <= rtol, (rel.max(), np.argmax(rel))
    return float(rel.max(initial=0.0))


def _lambda_from_log(log: str, n: int) -> list[float]:
    return [float(x) for x in re.findall(r"lambda \(based on median chisq\) = ([0-9.e+-]+)\.", log)]


def test_linear_matches_plink2(run: dict) -> None:
    ours = associate(run["source"], run["pheno"]["Q"], covariates=run["covar"])
    ref = _read(run["dir"] / "o.Q.glm.linear")
    assert list(ours.columns) == list(ref.columns)
    for col in ["ID", "REF", "ALT", "A1", "TEST", "OBS_CT", "ERRCODE"]:
        assert (ours[col].astype(str).to_numpy() == ref[col].astype(str).to_numpy()).all(), col
    assert (ref["ERRCODE"] == "CONST_OMITTED_ALLELE").sum() == 2
    assert (ref["A1"] != ref["ALT"]).any()  # some variants report REF as the minor allele
    _close(ours["BETA"], ref["BETA"], 1e-4)
    _close(ours["SE"], ref["SE"], 1e-4)
    _close(ours["T_STAT"], ref["T_STAT"], 1e-4)
    _close(ours["P"], ref["P"], 1e-3, floor=1e-300)


def test_logistic_firth_fallback_matches_plink2(run: dict) -> None:
    ours = associate(run["source"], run["pheno"]["B"], covariates=run["covar"])
    ref = _read(run["dir"] / "o.B.glm.logistic.hybrid")
    assert list(ours.columns) == list(ref.columns)
    for col in ["ID", "A1", "FIRTH?", "OBS_CT", "ERRCODE"]:
        assert (ours[col].astype(str).to_numpy() == ref[col].astype(str).to_numpy()).all(), col
    firth = (ref["FIRTH?"] == "Y").to_numpy()
    assert firth.sum() >= 3
    # plain logistic rows: to plink2's printed precision
    _close(ours["OR"][~firth], ref["OR"][~firth], 1e-4)
    _close(ours["LOG(OR)_SE"][~firth], ref["LOG(OR)_SE"][~firth], 1e-4)
    _close(ours["P"][~firth], ref["P"][~firth], 1e-3, floor=1e-300)
    # Firth rows: the same algorithm as plink2 a3.5 (start, step cap, halvings, stopping
    # rule); plink2's stopping iterate also depends on float32 rounding of its penalised
    # log-likelihood, so a slowly converging fit can stop a step or two away from ours.
    _close(ours["OR"][firth], ref["OR"][firth], 1e-3)
    _close(ours["LOG(OR)_SE"][firth], ref["LOG(OR)_SE"][firth], 5e-4)
    _close(ours["P"][firth], ref["P"][firth], 1e-3)


def test_firth_always_matches_plink2(run: dict) -> None:
    ours = associate(run["source"], run["pheno"]["B"], covariates=run["covar"], firth="always")
    ref = _read(run["dir"] / "f.B.glm.firth")
    assert list(ours.columns) == list(ref.columns)  # no FIRTH? column, as plink2
    for col in ["ID", "A1", "OBS_CT", "ERRCODE"]:
        assert (ours[col].astype(str).to_numpy() == ref[col].astype(str).to_numpy()).all(), col
    ok = ref["OR"].notna().to_numpy()
    assert ok.sum() == 298
    rel = np.abs(ours["OR"][ok] / ref["OR"][ok] - 1.0)
    # common variants converge in a few steps: the same iterate as plink2's
    assert np.median(rel) < 1e-5 and (rel < 1e-4).mean() >= 0.95
    _close(ours["OR"][ok], ref["OR"][ok], 1e-3)
    _close(ours["LOG(OR)_SE"][ok], ref["LOG(OR)_SE"][ok], 5e-4)
    _close(ours["P"][ok], ref["P"][ok], 1e-3)


@pytest.mark.parametrize("pheno, suffix", [("Q", "linear"), ("B", "logistic.hybrid")])
def test_every_predictors_vif_checked_as_plink2(run: dict, pheno: str, suffix: str) -> None:
    ours = associate(run["source"], run["pheno"][pheno], covariates=run["vif_covar"])
    ref = _read(run["dir"] / f"v.{pheno}.glm.{suffix}")
    assert ref.loc[30, "ERRCODE"] == "VIF_TOO_HIGH"  # C1's VIF, not the genotype's
    assert (ours["ERRCODE"].astype(str).to_numpy() == ref["ERRCODE"].astype(str).to_numpy()).all()
    effect = "BETA" if pheno == "Q" else "OR"
    firth = (ref["FIRTH?"] == "Y").to_numpy() if pheno == "B" else np.zeros(len(ref), bool)
    _close(ours[effect][~firth], ref[effect][~firth], 1e-4)


def test_adjust_matches_plink2(run: dict) -> None:
    log = (run["dir"] / "o.log").read_text()
    logged = _lambda_from_log(log, 2)
    for name, pheno, lam_logged in [("Q.glm.linear", "Q", logged[0]),
                                    ("B.glm.logistic.hybrid", "B", logged[1])]:  # fmt: skip
        ours = adjust(associate(run["source"], run["pheno"][pheno], covariates=run["covar"]))
        ref = _read(run["dir"] / f"o.{name}.adjusted")
        assert list(ours.columns) == list(ref.columns)
        assert (ours["ID"].to_numpy() == ref["ID"].to_numpy()).all()
        # plink2 a3.5 logs max(lambda, 1)
        assert max(ours.attrs["lambda"], 1.0) == pytest.approx(lam_logged, rel=1e-4)
        tol = 1e-4 if pheno == "Q" else 1e-3  # logistic p carry the Firth rows' differences
        for col in ["UNADJ", "GC", "BONF", "HOLM", "SIDAK_SS", "SIDAK_SD", "FDR_BH", "FDR_BY"]:
            _close(ours[col], ref[col], tol)


def test_assoc_matches_plink19(run: dict) -> None:
    ours = associate(run["source"], run["pheno"]["B"], test="chisq")
    ref = _read(run["dir"] / "a.assoc")
    assert list(ours.columns) == list(ref.columns)
    for col in ["SNP", "A1", "A2"]:
        assert (ours[col].to_numpy() == ref[col].to_numpy()).all(), col
    # plink1.9 prints 4 significant digits
    for col in ["F_A", "F_U", "CHISQ", "P"]:
        _close(ours[col], ref[col], 1.5e-3)
    ok = ref["OR"].notna() & ours["OR"].notna()
    _close(ours["OR"][ok], ref["OR"][ok], 1.5e-3)


def test_qc_counts_match_plink2(run: dict) -> None:
    result = qc(run["source"], maf=0.01, geno=0.05, mind=0.1, hwe=1e-6)
    log = (run["dir"] / "q.log").read_text()
    mind = int(re.search(r"(\d+) samples? removed due to missing genotype data", log)[1])
    geno = int(re.search(r"--geno: (\d+) variants? removed", log)[1])
    hwe = int(re.search(r"--hwe: (\d+) variants? removed", log)[1])
    maf = int(re.search(r"(\d+) variants? removed due to allele frequency", log)[1])
    assert result.removed == {"mind": mind, "geno": geno, "hwe": hwe, "maf": maf}
    assert (mind, geno, hwe) == (5, 1, 1)
    kept = pd.read_csv(run["dir"] / "q.fam", sep=r"\s+", header=None)[1]
    iids = run["source"].samples["iid"].to_numpy()[result.samples]
    assert list(iids) == list(kept)


def test_hwe_p_matches_plink2_hardy(run: dict, tmp_path: Path) -> None:
    plink2 = _tool("plink2")
    prefix = str(run["dir"] / "d")
    for midp, col in [(False, "P"), (True, "MIDP")]:
        args = ["--hardy", "midp"] if midp else ["--hardy"]
        subprocess.run(
            [plink2, "--bfile", prefix, *args, "--threads", "1", "--out", str(tmp_path / "h")],
            check=True,
            capture_output=True,
        )
        ref = _read(tmp_path / "h.hardy")
        ours = qc(run["source"], hwe_midp=midp).variant_stats["HWE_P"]
        _close(ours, ref[col], 1e-4)
