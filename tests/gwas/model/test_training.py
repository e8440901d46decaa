"""gwas train / predict end to end: run layout, baselines, reproducible inputs, errors, CLI,
and real HapMap3 genotypes with a simulated trait."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from genoformer.cli import main
from genoformer.engine.errors import InputError
from genoformer.engine.training import predict_logits
from genoformer.gwas.io.genotypes import open_genotypes
from genoformer.gwas.io.simulate import simulate
from genoformer.gwas.model.inputs import GenotypeDataset
from genoformer.gwas.model.training import load_trained, predict, train
from tests.conftest import shared_data

FAST = dict(epochs=8, batch_size=32, learning_rate=3e-3, device="cpu", d_model=16, n_heads=2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("cohort") / "toy"
    simulate(
        prefix,
        n_samples=300,
        n_variants=200,
        n_chromosomes=2,
        heritability=0.8,
        n_causal=3,
        maf_min=0.1,
        seed=4,
    )
    return prefix


@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "quant"
    result = train(
        cohort,
        f"{cohort}.pheno",
        out=out,
        trait="quant",
        covar=f"{cohort}.covar",
        window=4,
        decoys=20,
        seed=1,
        **FAST,
    )
    return result


def test_run_layout_and_comparison(trained):
    run = trained.run_dir
    for name in ("model/config.json", "variants.tsv", "samples.tsv", "metrics.json",
                 "comparison.tsv", "comparison.png", "loss_curve.tsv", "test_parity.png",
                 "test_predictions.tsv", "manifest.json"):  # fmt: skip
        assert (run / name).exists(), name
    variants = pd.read_csv(run / "variants.tsv", sep="\t")
    assert len(variants) == 220 and variants["is_decoy"].sum() == 20
    assert variants["column"].tolist() == list(range(220))
    real, decoys = variants[~variants["is_decoy"]], variants[variants["is_decoy"]]
    assert real["source"].tolist() == list(range(200))
    assert set(decoys["source"]) <= set(real["source"])
    samples = pd.read_csv(run / "samples.tsv", sep="\t")
    assert samples["split"].value_counts().to_dict() == {"train": 210, "validation": 45, "test": 45}
    assert sorted(samples["decoy_row"]) == list(range(300))
    comparison = pd.read_csv(run / "comparison.tsv", sep="\t")
    # GBLUP over every variant of the file first (issue 15), then the baselines on the inputs
    assert comparison["model"].tolist() == ["transformer", "gblup", "ridge", "boosting", "mlp"]
    assert comparison["n"].eq(45).all() and comparison["r2"].notna().all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["tokens"] == 50 + 5 + 1  # 200 real variants on 2 chromosomes, 20 decoys
    assert metrics["test"]["transformer"]["pearson_r"] > 0.3  # 3 strong causal variants
    assert metrics["test"]["ridge"]["r2"] > 0.3
    assert metrics["test"]["gblup"]["r2"] > 0.2
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def test_load_trained_inputs_reproduce_training(trained):
    run = load_trained(trained.run_dir)
    assert not run.model.training
    test = run.inputs("test")
    assert test.genotypes.shape == (45, 220) and test.covariates.shape[0] == 45
    logits = predict_logits(run.model, GenotypeDataset(test), device="cpu")[:, 0]
    written = pd.read_csv(trained.run_dir / "test_predictions.tsv", sep="\t")
    np.testing.assert_allclose(logits, written["transformer"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(test.y, written["y"])
    train_inputs = run.inputs("train")
    # covariates were standardised with the training samples' statistics
    np.testing.assert_allclose(train_inputs.covariates.mean(axis=0), 0.0, atol=1e-5)
    # decoy columns are permuted copies of their source columns
    decoys = run.variants[run.variants["is_decoy"]]
    every = run.inputs("all")
    rows = run.samples["decoy_row"].to_numpy()
    column = int(decoys["column"].iloc[0])
    source = int(decoys["source"].iloc[0])
    np.testing.assert_array_equal(every.genotypes[:, column], every.genotypes[rows, source])


def test_predict_matches_the_test_predictions(trained, cohort, tmp_path):
    result = predict(trained.run_dir, cohort, out=tmp_path / "pred", covar=f"{cohort}.covar")
    table = pd.read_csv(result.outputs["predictions"], sep="\t", dtype={"fid": str, "iid": str})
    assert len(table) == 300 and result.metrics["left_out"] == 0
    written = pd.read_csv(trained.run_dir / "test_predictions.tsv", sep="\t", dtype=str)
    merged = written.merge(table, on=["fid", "iid"])
    # only the decoys' permutation differs from training: the model must not lean on them
    r = np.corrcoef(merged["transformer"].astype(float), merged["predicted"])[0, 1]
    assert r > 0.95


def test_predict_errors(trained, cohort, tmp_path):
    with pytest.raises(InputError, match="trained with covariates"):
        predict(trained.run_dir, cohort, out=tmp_path / "p1")
    other = tmp_path / "renamed"
    for suffix in (".bed", ".fam"):
        shutil.copy(f"{cohort}{suffix}", f"{other}{suffix}")
    bim = pd.read_csv(f"{cohort}.bim", sep="\t", header=None)
    bim.loc[5, 1] = "rs_other"
    bim.to_csv(f"{other}.bim", sep="\t", header=False, index=False)
    with pytest.raises(InputError, match="1 of the model's 200 variants are not in the genotypes"):
        predict(trained.run_dir, other, out=tmp_path / "p2", covar=f"{cohort}.covar")
    with pytest.raises(InputError, match="no trained model"):
        load_trained(tmp_path)


def test_swapped_alleles_are_flipped(trained, cohort, tmp_path):
    flipped = tmp_path / "flipped"
    with open_genotypes(cohort) as source:
        G = source.read()
        samples, variants = source.samples, source.variants
    from bed_reader import to_bed

    to_bed(
        f"{flipped}.bed",
        np.where(np.isnan(G), np.nan, 2.0 - G),
        properties={
            "fid": samples["fid"], "iid": samples["iid"], "sid": variants["id"],
            "chromosome": variants["chrom"], "bp_position": variants["pos"],
            "allele_1": variants["a2"], "allele_2": variants["a1"],
        },
        count_A1=True,
    )  # fmt: skip
    covar = f"{cohort}.covar"
    a = predict(trained.run_dir, cohort, out=tmp_path / "a", covar=covar)
    b = predict(trained.run_dir, flipped, out=tmp_path / "b", covar=covar)
    pa = pd.read_csv(a.outputs["predictions"], sep="\t")["predicted"]
    pb = pd.read_csv(b.outputs["predictions"], sep="\t")["predicted"]
    np.testing.assert_allclose(pa, pb, rtol=1e-4, atol=1e-4)


def test_input_errors(cohort, tmp_path):
    pheno = f"{cohort}.pheno"
    with pytest.raises(InputError, match="no phenotype column 'height'"):
        train(cohort, pheno, out=tmp_path / "a", trait="height", **FAST)
    with pytest.raises(InputError, match="window is 0"):
        train(cohort, pheno, out=tmp_path / "b", trait="quant", window=0, **FAST)
    strangers = pd.DataFrame({"FID": ["x", "y"], "IID": ["x", "y"], "quant": [1.0, 2.0]})
    with pytest.raises(InputError, match="no sample left"):
        train(cohort, strangers, out=tmp_path / "c", trait="quant", **FAST)
    with pytest.raises(InputError, match="unknown backbone"):
        train(cohort, pheno, out=tmp_path / "d", trait="quant", backbone="rnn", **FAST)
    with pytest.raises(InputError, match="preselect is 0"):
        train(cohort, pheno, out=tmp_path / "e", trait="quant", preselect=0, **FAST)


def test_cli_binary_bert_with_preselection_and_resume(cohort, tmp_path):
    out = tmp_path / "binary"
    args = ["gwas", "train", str(cohort), "--out", str(out), "--pheno", f"{cohort}.pheno",
            "--trait", "binary", "--backbone", "bert", "--preselect", "60", "--window", "2",
            "--preselect-by", "marginal+variance",
            "--decoys", "10", "--epochs", "3", "--d-model", "16", "--heads", "2",
            "--device", "cpu"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code in (0, None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "classification" and metrics["variants"] == 60
    for model in ("transformer", "ridge", "boosting", "mlp"):
        assert {"auroc", "auprc", "precision", "recall"} <= set(metrics["test"][model])
    assert (out / "test_roc_pr.png").exists()
    # the preselected variants are the strongest on the training samples: the causal ones
    variants = pd.read_csv(out / "variants.tsv", sep="\t")
    truth = pd.read_csv(f"{cohort}.truth.tsv", sep="\t")
    assert set(truth["id"]) <= set(variants["id"])
    # every variant's association on the training samples is kept for `gwas explain`
    association = pd.read_parquet(out / "association.parquet")
    assert len(association) == 200 and {"ID", "P", "P_VARIANCE"} <= set(association)
    # resuming a finished run continues from its checkpoint and ends at the same step
    with pytest.raises(SystemExit):
        main([*args, "--resume"])
    again = json.loads((out / "metrics.json").read_text())
    assert again["steps"] == metrics["steps"]

    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "gwas",
                "predict",
                str(out),
                str(cohort),
                "--out",
                str(tmp_path / "p"),
                "--device",
                "cpu",
            ]
        )
    assert exit_info.value.code in (0, None)
    table = pd.read_csv(tmp_path / "p" / "predictions.tsv", sep="\t")
    assert len(table) == 300 and table["p_case"].between(0, 1).all()


def test_hapmap3_with_a_simulated_trait(tmp_path):
    bed = shared_data("geno/hapmap3/HM3_thinned_autosomal_overlap.bed")
    with open_genotypes(bed) as source:
        samples = source.samples[["fid", "iid"]].rename(columns={"fid": "FID", "iid": "IID"})
        causal = np.arange(0, source.n_variants, 2011)[:5]
        G = source.read(variants=causal)
    rng = np.random.default_rng(0)
    G = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    signal = (G - G.mean(axis=0)) @ rng.choice([-1.0, 1.0], size=len(causal))
    samples["trait"] = signal / signal.std() + 0.6 * rng.normal(size=len(signal))
    torch.manual_seed(0)
    result = train(
        bed,
        samples,
        out=tmp_path,
        trait="trait",
        preselect=50,
        window=2,
        decoys=20,
        baselines_to_fit=("ridge",),
        **FAST,
    )
    test = result.metrics["test"]
    assert result.metrics["samples"]["test"] == round(957 * 0.15)
    assert test["ridge"]["r2"] > 0.3
    assert test["transformer"]["pearson_r"] > 0.5
    # ... and explains it: the causal variants lead the importance, decoys stay uncalled.
    from genoformer.gwas.model.explain import explain

    explained = explain(
        tmp_path, out=tmp_path / "explain", top_pairs=5, null_pairs=50, pair_samples=64,
        progress=False,
    )  # fmt: skip
    table = pd.read_csv(tmp_path / "explain" / "importance.tsv", sep="\t", dtype={"id": str})
    with open_genotypes(bed) as source:
        causal_ids = set(source.variants["id"].iloc[causal].astype(str))
    top = table[~table["is_decoy"]].nsmallest(10, "substitution_rank")
    assert len(causal_ids & set(top["id"])) >= 3
    assert explained.metrics["substitution"]["decoys_called"] <= 1
    assert (tmp_path / "explain" / "importance_substitution.html").exists()


def test_transformer_beats_ridge_on_an_epistatic_trait(tmp_path):
    # CI-size version of bench/bench_gwas_model.py: two epistatic pairs (no marginal effect)
    # carry the heritability; the variance screen keeps them, ridge cannot use a product,
    # and the explanation finds the pairs although their marginal p says nothing.
    from genoformer.gwas.model.explain import explain

    prefix = tmp_path / "epistatic"
    simulate(
        prefix,
        n_samples=1000,
        n_variants=300,
        n_chromosomes=3,
        heritability=0.8,
        n_causal=0,
        epistatic_pairs=2,
        epistatic_share=1.0,
        maf_min=0.05,
        seed=3,
    )
    result = train(
        prefix,
        f"{prefix}.pheno",
        out=tmp_path / "run",
        trait="quant",
        preselect=20,
        device="cpu",
        baselines_to_fit=("ridge",),
    )
    variants = pd.read_csv(tmp_path / "run" / "variants.tsv", sep="\t")
    truth = pd.read_csv(f"{prefix}.truth.tsv", sep="\t")
    assert set(truth["id"]) <= set(variants["id"])  # the screen keeps all four pair variants
    assert variants["is_decoy"].sum() == 20
    test = result.metrics["test"]
    assert test["ridge"]["r2"] < 0.05
    assert test["transformer"]["r2"] > 0.3
    explained = explain(
        tmp_path / "run", out=tmp_path / "explain", truth=f"{prefix}.truth.tsv",
        null_pairs=200, progress=False,
    )  # fmt: skip
    found = explained.metrics["truth"]
    assert found["substitution"]["epistatic_in_top"] == 4
    assert found["association"]["epistatic_in_top"] <= 1
    # At least one pair is called although neither of its variants has a marginal signal.
    called = [pair for pair in found["epistatic_pairs"] if pair.get("called")]
    assert called
    assert all(min(pair["assoc_p_a"], pair["assoc_p_b"]) > 0.01 for pair in called)
    assert explained.metrics["substitution"]["decoys_called"] <= 1
    assert explained.metrics["pairs"]["null_pairs_called_share"] <= 0.05
