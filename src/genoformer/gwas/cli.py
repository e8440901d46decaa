"""``genoformer gwas ...``: thin commands over :mod:`genoformer.gwas.api`.

Each command hands its options to the API function of the same name (renamed where the API
names them otherwise) and ends with the summary table of the run. The API is imported when a
command runs (:func:`_run`), so that ``--help`` is quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from genoformer.engine.flags import Overwrite

if TYPE_CHECKING:
    from genoformer.engine.runs import RunResult

app = typer.Typer(no_args_is_help=True)

Genotypes = Annotated[Path, typer.Argument(help="PLINK .bed (or its prefix), or a VCF/BCF file.")]
Out = Annotated[Path, typer.Option(help="Run directory.")]
Maf = Annotated[float | None, typer.Option(help="Minimum minor allele frequency.")]
Geno = Annotated[float | None, typer.Option(help="Maximum missing rate per variant.")]
Mind = Annotated[float | None, typer.Option(help="Maximum missing rate per sample.")]
Hwe = Annotated[float | None, typer.Option(help="Hardy-Weinberg exact test p threshold.")]
Pheno = Annotated[Path, typer.Option(help="Phenotype file (FID IID columns...).")]
Covar = Annotated[Path | None, typer.Option(help="Covariate file.")]
CovarNames = Annotated[
    list[str] | None, typer.Option(help="Covariate column; repeatable (default all).")
]
TrainedRun = Annotated[Path, typer.Argument(help="Run directory of `genoformer gwas train`.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, npu or mps.")]
Seed = Annotated[int, typer.Option()]
Figures = Annotated[
    str, typer.Option(help="Figure files: comma-separated png, pdf, svg, html; or none.")
]


def _run(verb: str, options: dict[str, Any], **api_names: str) -> RunResult:
    """``genoformer.gwas.api``'s ``verb`` called with the command's ``options``, each under
    its API name: the one ``api_names`` gives it, else its own."""
    from genoformer.gwas import api

    function = getattr(api, verb)
    return function(**{api_names.get(name, name): value for name, value in options.items()})


def _report(verb: str, options: dict[str, Any], **api_names: str) -> None:
    """Run ``verb`` as :func:`_run` does and end with the summary table of its run."""
    from genoformer.engine.console import print_summary

    print_summary(f"gwas {verb}", _run(verb, options, **api_names))


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
    seed: Seed = 0,
    siblings: Annotated[
        int, typer.Option(help="Children per family (0: unrelated samples; siblings share FID).")
    ] = 0,
    family_environment: Annotated[
        float, typer.Option(help="Variance share of an environment siblings share.")
    ] = 0.0,
    populations: Annotated[int, typer.Option(help="Populations split from one ancestor.")] = 1,
    split_generations: Annotated[
        float, typer.Option(help="Generations since the populations split.")
    ] = 500.0,
    population_shift: Annotated[
        float, typer.Option(help="Trait mean difference, first to last population (SD).")
    ] = 0.0,
) -> None:
    """Simulate a cohort with msprime: genotypes with LD, phenotypes, covariates, truth."""
    options = dict(locals())
    from genoformer.engine.console import print_summary

    result = _run(
        "simulate",
        options,
        out="out_prefix",
        samples="n_samples",
        variants="n_variants",
        chromosomes="n_chromosomes",
        maf="maf_min",
        missing="missing_rate",
        causal="n_causal",
        covariates="n_covariates",
    )
    written = ", ".join(str(p) for p in result.outputs.values())
    print_summary("gwas simulate", result, f"written: {written}")


@app.command()
def qc(
    genotypes: Genotypes,
    out: Out,
    maf: Maf = None,
    geno: Geno = None,
    mind: Mind = None,
    hwe: Hwe = None,
    overwrite: Overwrite = False,
) -> None:
    """Quality control as plink2 does it: --mind, --geno, --hwe, --maf."""
    options = dict(locals())
    _report("qc", options)


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
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """Principal components of standardised genotypes (plink2 --pca)."""
    options = dict(locals())
    _report("pca", options, components="n_components")


@app.command()
def assoc(
    genotypes: Genotypes,
    out: Out,
    pheno: Pheno,
    pheno_name: Annotated[str | None, typer.Option(help="Phenotype column.")] = None,
    covar: Covar = None,
    covar_name: CovarNames = None,
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
    seed: Seed = 0,
    overwrite: Overwrite = False,
    wgr: Annotated[
        bool, typer.Option(help="Whole-genome regression first (regenie step 1), LOCO offsets.")
    ] = False,
    wgr_block_size: Annotated[int, typer.Option(help="--wgr: variants per block.")] = 200,
    wgr_folds: Annotated[int, typer.Option(help="--wgr: cross-validation folds.")] = 5,
    figures: Figures = "png,html",
) -> None:
    """Per-variant association (plink2 --glm columns), --adjust table, Manhattan and QQ."""
    options = {**locals(), "covar_name": covar_name or None}
    _report("assoc", options, covar_name="covar_names")


@app.command()
def epistasis(
    genotypes: Genotypes,
    out: Out,
    pheno: Pheno,
    pheno_name: Annotated[str | None, typer.Option(help="Phenotype column.")] = None,
    test: Annotated[
        str, typer.Option(help="auto, linear, logistic (plink1.9 --epistasis) or fast.")
    ] = "auto",
    threshold: Annotated[
        float, typer.Option(help="Write pairs with P below this (plink1.9 --epi1).")
    ] = 1e-4,
    summary_threshold: Annotated[
        float, typer.Option(help="P counted in the summary's N_SIG (plink1.9 --epi2).")
    ] = 0.01,
    against: Annotated[
        Path | None,
        typer.Option(help="File of variant IDs tested against every variant (set-by-all)."),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Threads (default: all cores).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Exhaustive pair scan for interaction (plink1.9 --epistasis / --fast-epistasis)."""
    options = dict(locals())
    _report("epistasis", options)


@app.command()
def plot(
    results: Annotated[Path, typer.Argument(help="assoc.tsv or assoc.parquet.")],
    out: Annotated[Path, typer.Option(help="Folder for the figures.")],
    figures: Figures = "png,pdf,html",
) -> None:
    """Manhattan and QQ plots, static and interactive, of association results."""
    _report("plot", dict(locals()))


@app.command()
def explain(
    run_dir: TrainedRun,
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
    device: Device = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """Variant importance (gradients, IG, substitution) with a decoy null, epistatic pairs."""
    options = {
        **locals(),
        "methods": methods.split(","),
        "substitution_budget": substitution_budget or None,
    }
    _report("explain", options)


@app.command()
def train(
    genotypes: Genotypes,
    out: Out,
    pheno: Pheno,
    trait: Annotated[str, typer.Option(help="Phenotype column to learn.")],
    covar: Covar = None,
    covar_name: CovarNames = None,
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
    seed: Seed = 0,
    device: Device = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Train the genotype transformer; test metrics beside ridge, boosting and MLP."""
    options = {**locals(), "covar_name": covar_name or None}
    _report(
        "train",
        options,
        covar_name="covar_names",
        layers="n_layers",
        heads="n_heads",
        init_range="initializer_range",
    )


@app.command()
def predict(
    run_dir: TrainedRun,
    genotypes: Genotypes,
    out: Out,
    covar: Covar = None,
    device: Device = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the decoy permutation.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Predict the phenotype of new samples with a trained genotype model."""
    options = dict(locals())
    _report("predict", options)
