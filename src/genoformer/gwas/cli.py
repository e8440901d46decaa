"""``genoformer gwas ...``: thin commands over :mod:`genoformer.gwas.api`.

The API is imported inside each command, so that ``--help`` is quick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True)
_console = Console()

Genotypes = Annotated[Path, typer.Argument(help="PLINK .bed (or its prefix), or a VCF/BCF file.")]
Out = Annotated[Path, typer.Option(help="Run directory.")]
Maf = Annotated[float | None, typer.Option(help="Minimum minor allele frequency.")]
Geno = Annotated[float | None, typer.Option(help="Maximum missing rate per variant.")]
Mind = Annotated[float | None, typer.Option(help="Maximum missing rate per sample.")]
Hwe = Annotated[float | None, typer.Option(help="Hardy-Weinberg exact test p threshold.")]


def _show(metrics: dict) -> None:
    _console.print_json(json.dumps(metrics, default=str))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Prefix of the files written (.bed/.bim/.fam ...).")],
    samples: Annotated[int, typer.Option(help="Diploid samples.")] = 2000,
    variants: Annotated[int, typer.Option(help="SNPs after the MAF filter.")] = 20_000,
    chromosomes: Annotated[int, typer.Option(help="Chromosomes.")] = 3,
    maf: Annotated[float, typer.Option(help="Minimum minor allele frequency.")] = 0.01,
    missing: Annotated[float, typer.Option(help="Share of missing calls.")] = 0.01,
    heritability: Annotated[float, typer.Option(help="Heritability of the trait.")] = 0.5,
    causal: Annotated[int, typer.Option(help="Additive causal variants.")] = 10,
    epistatic_pairs: Annotated[int, typer.Option(help="Epistatic pairs.")] = 0,
    covariates: Annotated[int, typer.Option(help="Numeric covariates.")] = 2,
    prevalence: Annotated[float, typer.Option(help="Share of cases.")] = 0.3,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Simulate a cohort with msprime: genotypes with LD, phenotypes, covariates, truth."""
    from genoformer.gwas.api import simulate as run

    result = run(
        out,
        n_samples=samples,
        n_variants=variants,
        n_chromosomes=chromosomes,
        maf_min=maf,
        missing_rate=missing,
        heritability=heritability,
        n_causal=causal,
        epistatic_pairs=epistatic_pairs,
        n_covariates=covariates,
        prevalence=prevalence,
        seed=seed,
    )
    _console.print(f"written: {', '.join(str(p) for p in result.paths.values())}")


@app.command()
def qc(
    genotypes: Genotypes,
    out: Out,
    maf: Maf = None,
    geno: Geno = None,
    mind: Mind = None,
    hwe: Hwe = None,
) -> None:
    """Quality control as plink2 does it: --mind, --geno, --hwe, --maf."""
    from genoformer.gwas.api import qc as run

    _show(run(genotypes, out=out, maf=maf, geno=geno, mind=mind, hwe=hwe).metrics)


@app.command()
def pca(
    genotypes: Genotypes,
    out: Out,
    components: Annotated[int, typer.Option(help="Principal components.")] = 10,
    method: Annotated[str, typer.Option(help="auto, exact or randomized.")] = "auto",
    maf: Maf = None,
    geno: Geno = None,
    mind: Mind = None,
    hwe: Hwe = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Principal components of standardised genotypes (plink2 --pca)."""
    from genoformer.gwas.api import pca as run

    result = run(
        genotypes,
        out=out,
        n_components=components,
        method=method,
        seed=seed,
        maf=maf,
        geno=geno,
        mind=mind,
        hwe=hwe,
    )
    _show(result.metrics)


@app.command()
def assoc(
    genotypes: Genotypes,
    out: Out,
    pheno: Annotated[Path, typer.Option(help="Phenotype file (FID IID columns...).")],
    pheno_name: Annotated[str | None, typer.Option(help="Phenotype column.")] = None,
    covar: Annotated[Path | None, typer.Option(help="Covariate file.")] = None,
    covar_name: Annotated[
        list[str] | None, typer.Option(help="Covariate column; repeatable (default all).")
    ] = None,
    pcs: Annotated[int, typer.Option(help="Principal components added as covariates.")] = 0,
    test: Annotated[str, typer.Option(help="auto, linear, logistic or chisq.")] = "auto",
    firth: Annotated[str, typer.Option(help="fallback, always or never.")] = "fallback",
    a1: Annotated[str, typer.Option(help="Counted allele: minor (plink2), alt or ref.")] = "minor",
    maf: Maf = None,
    geno: Geno = None,
    mind: Mind = None,
    hwe: Hwe = None,
    chunk_size: Annotated[int, typer.Option(help="Variants per chunk.")] = 4096,
    engine: Annotated[str, typer.Option(help="numpy or dask.")] = "numpy",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Per-variant association (plink2 --glm columns), --adjust table, Manhattan and QQ."""
    from genoformer.gwas.api import assoc as run

    result = run(
        genotypes,
        out=out,
        pheno=pheno,
        pheno_name=pheno_name,
        covar=covar,
        covar_names=covar_name or None,
        pcs=pcs,
        test=test,
        firth=firth,
        a1=a1,
        maf=maf,
        geno=geno,
        mind=mind,
        hwe=hwe,
        chunk_size=chunk_size,
        engine=engine,
        scheduler=scheduler,
        seed=seed,
    )
    _show(result.metrics)


@app.command()
def plot(
    results: Annotated[Path, typer.Argument(help="assoc.tsv or assoc.parquet.")],
    out: Annotated[Path, typer.Option(help="Folder for the figures.")],
) -> None:
    """Manhattan and QQ plots, static and interactive, of association results."""
    from genoformer.gwas.api import plot as run

    result = run(results, out=out)
    _console.print(f"figures in {result.run_dir}")


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `genoformer gwas train`.")],
    out: Out,
    truth: Annotated[
        Path | None, typer.Option(help="Simulator's .truth.tsv: report recall of causal variants.")
    ] = None,
    methods: Annotated[
        str, typer.Option(help="Comma-separated: saliency, gradient_x_input, ig, substitution.")
    ] = "ig,substitution",
    genotypes: Annotated[
        Path | None, typer.Option(help="Genotype file, if moved since training.")
    ] = None,
    top_pairs: Annotated[int, typer.Option(help="Top variants whose pairs are scanned.")] = 20,
    null_pairs: Annotated[int, typer.Option(help="Null pairs (with a decoy) scored.")] = 500,
    split: Annotated[
        str, typer.Option(help="Samples explained: test, validation or train.")
    ] = "test",
    max_samples: Annotated[int, typer.Option(help="Samples for the per-variant methods.")] = 1000,
    pair_samples: Annotated[int, typer.Option(help="Samples for the pair scan.")] = 256,
    substitution_budget: Annotated[
        int, typer.Option(help="Columns substituted (top by a gradient method; 0: all).")
    ] = 1000,
    ig_steps: Annotated[int, typer.Option(help="Integrated gradients path points.")] = 32,
    smoothgrad: Annotated[int, typer.Option(help="SmoothGrad samples over IG (0: off).")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, mps, npu or auto.")] = "cpu",
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Variant importance (gradients, IG, substitution) with a decoy null, epistatic pairs."""
    from genoformer.gwas.model.explain import explain as run

    result = run(
        run_dir,
        out=out,
        genotypes=genotypes,
        methods=methods.split(","),
        truth=truth,
        top_pairs=top_pairs,
        null_pairs=null_pairs,
        split=split,
        max_samples=max_samples,
        pair_samples=pair_samples,
        substitution_budget=substitution_budget or None,
        ig_steps=ig_steps,
        smoothgrad=smoothgrad,
        device=device,
        seed=seed,
    )
    _show(result.metrics)


@app.command()
def train(
    genotypes: Genotypes,
    out: Out,
    pheno: Annotated[Path, typer.Option(help="Phenotype file (FID IID columns...).")],
    trait: Annotated[str, typer.Option(help="Phenotype column to learn.")],
    covar: Annotated[Path | None, typer.Option(help="Covariate file.")] = None,
    covar_name: Annotated[
        list[str] | None, typer.Option(help="Covariate column; repeatable (default all).")
    ] = None,
    backbone: Annotated[str, typer.Option(help="bert or gptj (causal decoder).")] = "bert",
    window: Annotated[int, typer.Option(help="Variants per token.")] = 8,
    preselect: Annotated[
        int | None, typer.Option(help="Keep the top variants by association p (training samples).")
    ] = None,
    preselect_by: Annotated[
        str, typer.Option(help="marginal+variance (keeps epistatic pairs), or marginal.")
    ] = "marginal+variance",
    decoys: Annotated[
        int | None,
        typer.Option(help="Permuted decoy columns (default: as many as variants, <= 1000)."),
    ] = None,
    pooling: Annotated[str | None, typer.Option(help="bert: cls or mean.")] = None,
    additive: Annotated[
        bool, typer.Option(help="A linear term on the genotypes beside the transformer.")
    ] = True,
    d_model: Annotated[int | None, typer.Option(help="Token width.")] = None,
    layers: Annotated[int | None, typer.Option(help="Transformer layers.")] = None,
    heads: Annotated[int | None, typer.Option(help="Attention heads.")] = None,
    dropout: Annotated[float | None, typer.Option(help="Dropout.")] = None,
    init_range: Annotated[float | None, typer.Option(help="Weight initialisation std.")] = None,
    validation: Annotated[float, typer.Option(help="Share of samples for validation.")] = 0.15,
    test: Annotated[float, typer.Option(help="Share of samples for testing.")] = 0.15,
    epochs: Annotated[float, typer.Option(help="Maximum number of epochs.")] = 100,
    batch_size: Annotated[int, typer.Option()] = 64,
    learning_rate: Annotated[float, typer.Option()] = 3e-3,
    weight_decay: Annotated[float, typer.Option()] = 0.01,
    patience: Annotated[int, typer.Option(help="Evaluations without improvement.")] = 20,
    eval_every: Annotated[int | None, typer.Option(help="Steps (default: one epoch).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, npu or mps.")] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
) -> None:
    """Train the genotype transformer; test metrics beside ridge, boosting and MLP."""
    from genoformer.gwas.api import train as run

    result = run(
        genotypes,
        pheno,
        out=out,
        trait=trait,
        covar=covar,
        covar_names=covar_name or None,
        backbone=backbone,
        window=window,
        preselect=preselect,
        preselect_by=preselect_by,
        decoys=decoys,
        pooling=pooling,
        additive=additive,
        d_model=d_model,
        n_layers=layers,
        n_heads=heads,
        dropout=dropout,
        initializer_range=init_range,
        validation=validation,
        test=test,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        patience=patience,
        eval_every=eval_every,
        seed=seed,
        device=device,
        resume=resume,
    )
    _show(result.metrics["test"])


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `genoformer gwas train`.")],
    genotypes: Genotypes,
    out: Out,
    covar: Annotated[Path | None, typer.Option(help="Covariate file.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, npu or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the decoy permutation.")] = 0,
) -> None:
    """Predict the phenotype of new samples with a trained genotype model."""
    from genoformer.gwas.api import predict as run

    result = run(run_dir, genotypes, out=out, covar=covar, device=device, seed=seed)
    _show(result.metrics)
