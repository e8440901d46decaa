"""``genoformer demo``: the main job end to end on data the package generates.

- seq: the teaching task (random 8-mers scored by base values plus TAT/GCG motif effects):
  a linear model and the small CNN trained on the same split, compared on held-out
  sequences, and the CNN's filters read back as motif logos.
- gwas: a cohort simulated with msprime (LD, covariates, 1% missing calls, 10 additive
  causal variants and two epistatic pairs with no marginal effect that carry 80% of the
  heritability), QC, association with covariates
  and principal components, Manhattan and QQ plots; then the genotype transformer trained on
  the same cohort beside GBLUP over all variants, and ridge, boosting and an MLP on its
  inputs, and explained: variant importance
  calibrated by decoys beside the Manhattan plot, and the pairs it found.
- sc: single cells simulated with known cell types, a gene median dictionary built from them,
  rank value tokenization, a tiny Geneformer-style model pretrained briefly by masked-gene
  prediction, cell embeddings and their UMAP coloured by cell type.
- one interactive page over all of these runs (report.html, genoformer.report), its path
  printed last.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from genoformer.engine.plots import comparison_bar
from genoformer.engine.runs import RunDir
from genoformer.gwas import api as gwas_api
from genoformer.report import write_report
from genoformer.seq import api
from genoformer.seq.tasks import teaching_task

DEMO_MODELS = ("linear", "cnn")


def run_demo(
    out: str | os.PathLike = "runs/demo",
    *,
    quick: bool = False,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the demo into ``out`` (``overwrite``: replacing an earlier demo there); return
    the test metrics of each model.

    ``quick`` uses 6,000 sequences and two epochs (for tests); the full demo uses 50,000
    sequences and takes a few minutes on two CPU cores.
    """
    console = Console()
    out = Path(out)
    n, epochs = (6_000, 2) if quick else (50_000, 6)
    run = RunDir(out, command="demo", arguments={"quick": quick}, seed=seed, overwrite=overwrite)
    data = teaching_task(n, seed=seed)
    metrics: dict[str, dict[str, Any]] = {}
    for model in DEMO_MODELS:
        console.rule(f"seq teaching task: {model}")
        with run.step(f"seq_{model}"):
            result = api.train(
                data,
                out=out / "seq" / model,
                model=model,
                epochs=epochs,
                batch_size=256,
                eval_every=100 if quick else 300,
                patience=3,
                seed=seed,
            )
        metrics[model] = result.metrics
    with run.step("seq_interpret"):
        api.interpret(out / "seq" / "cnn", n_sequences=4, match_jaspar=False)
    figure = comparison_bar(metrics, "r2", out / "seq" / "comparison_r2.png")[0]
    run.record_output("seq_comparison", figure)
    summary = {m: {k: metrics[m][k] for k in ("r2", "pearson_r", "mse")} for m in metrics}
    run.record_results("seq_teaching_task", summary)
    gwas_summary = _gwas_demo(out / "gwas", quick=quick, seed=seed, run=run, console=console)
    sc_summary = _sc_demo(out / "sc", quick=quick, seed=seed, run=run, console=console)
    run.finish()
    # The report reads complete runs only, so it is written once the demo's run is complete.
    console.rule("report")
    page = write_report(out, out=out / "report.html", title="genoformer demo")
    run.record_output("report", page)

    table = Table(title="seq teaching task, held-out sequences")
    for column in ("model", "R2", "Pearson r", "MSE"):
        table.add_column(column)
    for model, values in summary.items():
        table.add_row(model, *(f"{values[k]:.3f}" for k in ("r2", "pearson_r", "mse")))
    console.print(table)
    console.print(
        f"results in {out}: seq/<model>/ (loss curves, parity plots, worst predictions), "
        "seq/cnn/interpretation/ (filter logos, ISM and gradient x input logos), "
        "gwas/assoc/ (plink2-style results, Manhattan and QQ plots, interactive HTML), "
        "gwas/model/ and gwas/explain/ (genotype transformer vs baselines, importance track "
        "beside the Manhattan plot, epistatic pairs), "
        "sc/ (corpus, pretraining loss curve, cell embeddings, UMAP)"
    )
    console.print(f"report of every run (open it in a browser): {page}", highlight=False)
    return {"seq": summary, "gwas": gwas_summary, "sc": sc_summary}


def _gwas_demo(
    out: Path, *, quick: bool, seed: int, run: RunDir, console: Console
) -> dict[str, Any]:
    """Simulate a cohort, QC it and test every variant; return what the demo reports."""
    n_samples, n_variants = (400, 1_000) if quick else (2_000, 10_000)
    console.rule(f"gwas: {n_samples} samples x {n_variants} variants (msprime)")
    with run.step("gwas_simulate"):
        cohort = gwas_api.simulate(
            out / "cohort",
            n_samples=n_samples,
            n_variants=n_variants,
            epistatic_pairs=2,
            epistatic_share=0.8,
            seed=seed,
        )
    prefix = cohort.outputs["prefix"]
    with run.step("gwas_assoc"):
        result = gwas_api.assoc(
            prefix,
            out=out / "assoc",
            pheno=cohort.outputs["pheno"],
            pheno_name="quant",
            covar=cohort.outputs["covar"],
            pcs=2,
            maf=0.01,
            geno=0.05,
            hwe=1e-6,
            seed=seed,
        )
    results = pd.read_parquet(result.outputs["results_parquet"])
    causal = set(pd.read_csv(cohort.outputs["truth"], sep="\t", dtype={"id": str})["id"])
    top = results.nsmallest(len(causal), "P")
    summary = {
        "variants_tested": result.metrics["variants_tested"],
        "lambda_gc": result.metrics["lambda_gc"],
        "genome_wide_hits": int((results["P"] < 5e-8).sum()),
        "causal_in_top": int(top["ID"].isin(causal).sum()),
        "n_causal": len(causal),
    }
    run.record_results("gwas", summary)
    console.print(
        f"gwas: {summary['variants_tested']} variants tested, lambda {summary['lambda_gc']:.3f}, "
        f"{summary['genome_wide_hits']} genome-wide hits, {summary['causal_in_top']} of the "
        f"{summary['n_causal']} causal variants among the {summary['n_causal']} smallest p"
    )
    summary["model"] = _genotype_model_demo(out, cohort, quick=quick, seed=seed, run=run)
    _print_genotype_model(summary["model"], console)
    return summary


def _genotype_model_demo(
    out: Path, cohort: Any, *, quick: bool, seed: int, run: RunDir
) -> dict[str, Any]:
    """Train the genotype transformer on the demo cohort, explain it against the truth."""
    paths = cohort.outputs
    with run.step("gwas_train"):
        trained = gwas_api.train(
            paths["prefix"],
            paths["pheno"],
            out=out / "model",
            trait="quant",
            covar=paths["covar"],
            preselect=20 if quick else 40,
            epochs=5 if quick else 100,
            seed=seed,
            device="cpu",
        )
    with run.step("gwas_explain"):
        explained = gwas_api.explain(
            out / "model",
            out=out / "explain",
            truth=paths["truth"],
            null_pairs=200 if quick else 1000,
            seed=seed,
            device="cpu",
            progress=False,
        )
    test, truth = trained.metrics["test"], explained.metrics["truth"]
    summary = {
        "test_r2": {name: metrics["r2"] for name, metrics in test.items()},
        "causal": truth["causal"],
        "top": truth["top"],
        "causal_in_top": {
            name: truth[name]["causal_in_top"] for name in ("substitution", "ig", "association")
        },
        "epistatic_in_top": {
            name: truth[name]["epistatic_in_top"] for name in ("substitution", "association")
        },
        "pairs_called": [
            (pair["id_a"], pair["id_b"]) for pair in truth["epistatic_pairs"] if pair.get("called")
        ],
        "decoys_called": explained.metrics["substitution"]["decoys_called"],
        "decoys": explained.metrics["substitution"]["n_decoys"],
    }
    run.record_results("gwas_model", summary)
    return summary


def _print_genotype_model(summary: dict[str, Any], console: Console) -> None:
    table = Table(title="gwas genotype model, test samples")
    table.add_column("model")
    table.add_column("R2")
    for name, r2 in summary["test_r2"].items():
        table.add_row(name, f"{r2:.3f}")
    console.print(table)
    found = summary["causal_in_top"]
    console.print(
        f"gwas model: causal variants among the top {summary['top']}: "
        f"{found['substitution']} of {summary['causal']} by in silico substitution, "
        f"{found['ig']} by integrated gradients, {found['association']} by association p "
        f"(epistatic ones: {summary['epistatic_in_top']['substitution']} vs "
        f"{summary['epistatic_in_top']['association']}); epistatic pairs called at FDR 5%: "
        f"{len(summary['pairs_called'])} of 2; decoys called {summary['decoys_called']} of "
        f"{summary['decoys']}"
    )


def _sc_demo(out: Path, *, quick: bool, seed: int, run: RunDir, console: Console) -> dict[str, Any]:
    """Simulate cells, tokenize, pretrain a tiny model, embed; return what the demo reports."""
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from genoformer import sc
    from genoformer.sc.embeddings import embedding_matrix
    from genoformer.sc.simulate import simulate_cells

    n_cells, n_genes, steps = (600, 400, 60) if quick else (3_000, 1_000, 600)
    console.rule(f"sc: {n_cells} simulated cells x {n_genes} genes, 5 cell types")
    cells = simulate_cells(n_cells, n_genes, n_types=5, seed=seed)
    with run.step("sc_tokenize"):
        # The demo's own dictionary: its genes' medians, 256 tokens per cell at most.
        vocabulary = sc.gene_medians(cells, out=out / "vocabulary", name="demo", input_size=256)
        sc.tokenize(
            cells,
            out=out / "corpus",
            vocabulary=vocabulary,
            cell_attributes=["cell_type"],
            progress=False,
        )
    with run.step("sc_pretrain"):
        trained = sc.pretrain(
            out / "corpus",
            out=out / "pretrain",
            model="tiny",
            vocabulary=vocabulary,
            max_steps=steps,
            batch_size=16,
            eval_every=max(steps // 4, 1),
            held_out=0.1,
            seed=seed,
        )
    with run.step("sc_embed"):
        embedded = sc.embed(
            trained.outputs["model"],
            out / "corpus",
            out=out / "embed",
            vocabulary=vocabulary,
            label="cell_type",
            progress=False,
        )
    table = embedded.table("cells")
    vectors = embedding_matrix(table)
    knn = KNeighborsClassifier(n_neighbors=10)
    accuracy = cross_val_score(knn, vectors, table["cell_type"].astype(str), cv=5).mean()
    metrics = trained.metrics
    summary = {
        "cells": n_cells,
        "heldout_loss": metrics["heldout_loss"],
        "frequency_loss": metrics["frequency_loss"],
        "heldout_accuracy": metrics["heldout_accuracy"],
        "cell_type_knn_accuracy": float(accuracy),
    }
    run.record_results("sc", summary)
    console.print(
        f"sc: held-out masked-gene loss {summary['heldout_loss']:.3f} vs "
        f"{summary['frequency_loss']:.3f} by gene frequency; cell types from embeddings "
        f"(10-NN, 5-fold) {accuracy:.1%} right"
    )
    return summary
