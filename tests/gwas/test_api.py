"""The gwas commands end to end: simulate, qc, pca, assoc, plot; and real HapMap3 genotypes
with a simulated phenotype."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from genoformer.cli import main
from genoformer.gwas import api
from genoformer.gwas.io.genotypes import open_genotypes
from tests.conftest import shared_data


def run_cli(*args) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, args)])
    assert exit_info.value.code in (0, None)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("gwas") / "cohort"
    run_cli("gwas", "simulate", "--out", prefix, "--samples", 600, "--variants", 1500,
            "--causal", 5, "--heritability", 0.6, "--seed", 3)  # fmt: skip
    return prefix


def test_cli_qc_pca_assoc_plot(cohort, tmp_path):
    run_cli("gwas", "qc", cohort, "--out", tmp_path / "qc", "--maf", 0.05, "--hwe", 1e-6)
    manifest = json.loads((tmp_path / "qc" / "manifest.json").read_text())
    removed = manifest["results"]["qc"]["removed"]
    kept = manifest["results"]["qc"]["variants_kept"]
    assert kept == 1500 - sum(removed.values()) and removed["maf"] > 0

    run_cli("gwas", "pca", cohort, "--out", tmp_path / "pca", "--components", 4)
    eigenvalues = np.loadtxt(tmp_path / "pca" / "pca.eigenval")
    assert eigenvalues.shape == (4,) and np.all(np.diff(eigenvalues) <= 0)
    assert (tmp_path / "pca" / "pca_pc1_pc2.png").stat().st_size > 0

    run_cli("gwas", "assoc", cohort, "--out", tmp_path / "assoc",
            "--pheno", f"{cohort}.pheno", "--pheno-name", "quant",
            "--covar", f"{cohort}.covar", "--pcs", 2, "--maf", 0.01)  # fmt: skip
    results = pd.read_csv(tmp_path / "assoc" / "assoc.tsv", sep="\t")
    assert list(results.columns[:7]) == ["#CHROM", "POS", "ID", "REF", "ALT", "A1", "TEST"]
    truth = pd.read_csv(f"{cohort}.truth.tsv", sep="\t")
    top = set(results.nsmallest(50, "P")["ID"])
    assert len(top & set(truth["id"])) >= 3, "causal variants should rank near the top"
    for name in ("adjust.tsv", "manhattan.png", "manhattan.html", "qq.png", "qq.html"):
        assert (tmp_path / "assoc" / name).stat().st_size > 0
    assert not (tmp_path / "assoc" / "manhattan.pdf").exists(), "PDF is drawn on request"

    run_cli("gwas", "plot", tmp_path / "assoc" / "assoc.parquet", "--out", tmp_path / "plots")
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {
        f"{name}.{fmt}" for name in ("manhattan", "qq") for fmt in ("png", "pdf", "html")
    }
    run_cli("gwas", "plot", tmp_path / "assoc" / "assoc.tsv", "--out", tmp_path / "svg",
            "--figures", "svg")  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "svg").iterdir()) == ["manhattan.svg", "qq.svg"]


def test_assoc_without_figures(cohort, tmp_path):
    result = api.assoc(cohort, out=tmp_path / "run", pheno=f"{cohort}.pheno", figures="none")
    assert not any(p.suffix in (".png", ".pdf", ".html") for p in (tmp_path / "run").iterdir())
    assert "manhattan" not in result.outputs and result.outputs["results"].exists()


def test_case_control_with_firth_fallback(cohort, tmp_path):
    result = api.assoc(
        cohort, out=tmp_path, pheno=f"{cohort}.pheno", pheno_name="binary",
        covar=f"{cohort}.covar",
    )  # fmt: skip
    table = pd.read_csv(result.outputs["results"], sep="\t")
    assert result.metrics["kind"] == "binary"
    assert {"OR", "LOG(OR)_SE", "Z_STAT", "FIRTH?"} <= set(table.columns)


def test_missing_phenotype_column_is_bad_input(cohort, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["gwas", "assoc", str(cohort), "--out", str(tmp_path),
              "--pheno", f"{cohort}.pheno", "--pheno-name", "height"])  # fmt: skip
    assert exit_info.value.code == 2
    assert "height" in capsys.readouterr().err


def test_hapmap3_with_a_simulated_phenotype(tmp_path):
    bed = shared_data("geno/hapmap3/HM3_thinned_autosomal_overlap.bed")
    with open_genotypes(bed) as source:
        samples = source.samples[["fid", "iid"]].rename(columns={"fid": "FID", "iid": "IID"})
        causal = np.arange(0, source.n_variants, 1409)[:10]
        G = source.read(variants=causal)
    rng = np.random.default_rng(0)
    G = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    signal = (G - G.mean(axis=0)) @ rng.normal(size=len(causal))
    samples["trait"] = signal / signal.std() + rng.normal(size=len(signal))
    result = api.assoc(bed, out=tmp_path, pheno=samples, pcs=4, maf=0.01)
    table = pd.read_parquet(result.outputs["results_parquet"])
    assert len(table) > 13_000
    with open_genotypes(bed) as source:
        causal_ids = set(source.variants["id"].iloc[causal])
    assert len(set(table.nsmallest(20, "P")["ID"]) & causal_ids) >= 5


@pytest.mark.parametrize(
    ("command", "option", "value"), [("pca", "--components", 0), ("assoc", "--pcs", 601)]
)
def test_more_components_than_samples_is_bad_input(
    cohort, tmp_path, capsys, command, option, value
):
    args = ["gwas", command, cohort, "--out", tmp_path / "run", option, value]
    if command == "assoc":
        args += ["--pheno", f"{cohort}.pheno"]
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, args)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{option} is {value}, and 600 samples pass QC" in err and "use 1 to 600" in err
    assert "failed:" in err and "Traceback" not in err


def test_qc_thresholds_of_zero_and_out_of_range(cohort, tmp_path, capsys):
    run_cli("gwas", "qc", cohort, "--out", tmp_path / "zero", "--geno", 0)
    removed = json.loads((tmp_path / "zero" / "manifest.json").read_text())["results"]["qc"]
    assert removed["removed"]["geno"] > 0  # --geno 0: every variant with a missing call
    with pytest.raises(SystemExit) as exit_info:
        main(["gwas", "qc", str(cohort), "--out", str(tmp_path / "bad"), "--maf", "2"])
    assert exit_info.value.code == 2
    assert "--maf is 2" in capsys.readouterr().err
