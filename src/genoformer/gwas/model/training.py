"""Train the genotype-to-phenotype transformer, compare it with baselines, predict with it.

A trained run directory holds:

- ``model/``: the :class:`~genoformer.gwas.model.network.GenotypeModel` (``save_pretrained``);
- ``variants.tsv``: the model's input columns in model order: ``column id chrom pos a1 a2
  is_decoy source`` (``source``: the variant's index in the genotype file; for a decoy, the
  index of the variant it is a permuted copy of);
- ``samples.tsv``: ``fid iid split y decoy_row`` and the raw covariates: every sample used,
  its split (train, validation, test), its phenotype (0/1 for case/control) and the row of
  this table whose genotypes fill its decoy columns;
- ``association.parquet`` (with ``preselect``): every variant's association test on the
  training samples, which chose the model's variants;
- ``metrics.json`` (test metrics of the transformer and of every baseline),
  ``comparison.tsv`` and ``comparison.png`` (one row / bar per model),
  ``test_predictions.tsv``, a parity plot or ROC/PR curves, the loss curve, checkpoints and
  ``manifest.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genoformer.engine.checkpoints import load_pretrained
from genoformer.engine.errors import InputError
from genoformer.engine.metrics import classification_metrics, regression_metrics, softmax
from genoformer.engine.options import with_overrides
from genoformer.engine.paths import require_path
from genoformer.engine.plots import comparison_bar, parity_plot, roc_pr_curves
from genoformer.engine.runs import RunDir, RunResult, read_manifest, write_json, write_table
from genoformer.engine.training import TrainSettings, predict_logits, train_model
from genoformer.gwas.io.genotypes import GenotypeSource, open_genotypes
from genoformer.gwas.io.phenotypes import (
    match_samples,
    phenotype_vector,
    read_table,
    sample_covariates,
)
from genoformer.gwas.model import baselines
from genoformer.gwas.model.inputs import (
    CohortInputs,
    GenotypeDataset,
    choose_decoys,
    covariate_scaling,
    decoy_permutation,
    preselect_variants,
    split_missing,
    standardise_covariates,
    window_layout,
    with_decoys,
)
from genoformer.gwas.model.network import GenotypeModel, GenotypeModelConfig
from genoformer.gwas.stats.association import write_results

__all__ = [
    "CohortInputs",
    "GenotypeTrainSettings",
    "RunResult",
    "TrainedRun",
    "load_trained",
    "predict",
    "train",
]

SPLITS = ("train", "validation", "test")
#: Default number of decoy columns: as many as the real inputs, at most this many.
MAX_DECOYS = 1000
#: Model defaults, tuned on simulated cohorts (bench/bench_gwas_model.py). The wider
#: initialisation than BERT's 0.02 shortens the plateau before the model picks up
#: interactions: at 0.02 some seeds stop early, having never left it.
MODEL_DEFAULTS: dict[str, Any] = {
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 4,
    "dropout": 0.0,
    "initializer_range": 0.1,
}


# ------------------------------------------------------------------------------ samples


@dataclass
class _Cohort:
    index: np.ndarray  # rows of the genotype file, in file order
    y: np.ndarray  # phenotype per used sample (NaN for prediction without phenotype)
    kind: str
    covariates: np.ndarray | None  # raw covariates per used sample
    covariate_names: list[str]
    covariate_columns: list[str]


def _cohort(
    source: GenotypeSource,
    pheno: Any,
    trait: str,
    covar: Any,
    covar_names: Sequence[str] | None,
) -> _Cohort:
    table = read_table(pheno)
    if trait not in table.columns:
        values = [c for c in table.columns if c not in ("FID", "IID")]
        raise InputError(
            f"no phenotype column '{trait}' (columns: {', '.join(values)})",
            file=table.attrs.get("path") or "phenotype table",
            fix="name a column of the phenotype file with --trait",
        )
    index, aligned, _ = match_samples(source.samples, table)
    values, kind = phenotype_vector(aligned, trait)
    y = np.full(source.n_samples, np.nan)
    y[index] = values
    use = np.isfinite(y)
    X, names, columns = None, [], []
    if covar is not None:
        X, names, columns = sample_covariates(source.samples, covar, covar_names)
        use &= np.isfinite(X).all(axis=1)
    chosen = np.flatnonzero(use)
    if chosen.size == 0:
        raise InputError(
            f"no sample left with genotypes, a '{trait}' value and every covariate",
            file=table.attrs.get("path") or "phenotype table",
            fix="check that the phenotype and covariate FID/IID match the genotype file",
        )
    return _Cohort(chosen, y[chosen], kind, None if X is None else X[chosen], names, columns)


def _split(n: int, validation: float, test: float, seed: int) -> np.ndarray:
    """Split name per sample: a seeded random partition by sample."""
    if not (0 < validation < 1 and 0 < test < 1 and validation + test < 1):
        raise InputError(
            f"validation {validation} and test {test} shares",
            where="--validation / --test",
            fix="use shares in (0, 1) that add up to less than 1",
        )
    n_val, n_test = round(n * validation), round(n * test)
    if n - n_val - n_test < 2 or n_val < 1 or n_test < 1:
        raise InputError(
            f"{n} samples are too few to split into train, validation and test",
            fix="give more samples with a phenotype (at least about 20)",
        )
    order = np.random.default_rng([seed, 3]).permutation(n)
    split = np.empty(n, dtype=object)
    split[order[:n_val]] = "validation"
    split[order[n_val : n_val + n_test]] = "test"
    split[order[n_val + n_test :]] = "train"
    return split


# --------------------------------------------------------------------------------- train


def _variants_table(
    source: GenotypeSource, columns: np.ndarray, decoy_source: np.ndarray
) -> pd.DataFrame:
    real = source.variants.iloc[columns]
    decoys = source.variants.iloc[columns[decoy_source]]
    table = pd.DataFrame(
        {
            "id": np.r_[real["id"].to_numpy(), [f"{v}_decoy" for v in decoys["id"]]],
            "chrom": np.r_[real["chrom"].to_numpy(), decoys["chrom"].to_numpy()].astype(str),
            "pos": np.r_[real["pos"].to_numpy(), decoys["pos"].to_numpy()].astype(np.int64),
            "a1": np.r_[real["a1"].to_numpy(), decoys["a1"].to_numpy()],
            "a2": np.r_[real["a2"].to_numpy(), decoys["a2"].to_numpy()],
            "is_decoy": np.r_[np.zeros(len(real), bool), np.ones(len(decoys), bool)],
            "source": np.r_[columns, columns[decoy_source]].astype(np.int64),
        }
    )
    table.insert(0, "column", np.arange(len(table)))
    return table


def _evaluate(task: str, y: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    if task == "regression":
        return regression_metrics(y, predicted)
    return classification_metrics(y.astype(np.int64), predicted, classes=["control", "case"])


def _comparison(results: dict[str, dict[str, Any]], task: str) -> pd.DataFrame:
    keys = (
        ("r2", "pearson_r", "spearman_r", "mse", "mae", "n")
        if task == "regression"
        else ("auroc", "auprc", "precision", "recall", "accuracy", "macro_f1", "n")
    )
    rows = [{"model": name, **{k: m.get(k) for k in keys}} for name, m in results.items()]
    return pd.DataFrame(rows, columns=["model", *keys])


@dataclass(frozen=True)
class GenotypeTrainSettings:
    """The model :func:`train` builds, its inputs and its fitting; each is also a keyword
    argument of :func:`train` and a CLI flag.

    Attributes
    ----------
    backbone
        ``bert`` (an encoder) or ``gptj`` (a causal decoder).
    window
        Variants per token.
    pooling
        ``bert``: ``cls`` or ``mean`` (None: the backbone's default).
    additive
        A linear term on the standardised genotypes beside the backbone (see
        :mod:`genoformer.gwas.model.network`).
    d_model, n_layers, n_heads, dropout, initializer_range
        Token width, layers, attention heads, dropout and weight initialisation std (None:
        ``MODEL_DEFAULTS``).
    preselect, preselect_by
        Keep only the ``preselect`` variants with the smallest p on the training samples
        (None: every variant): marginal association p, or with ``"marginal+variance"`` the
        smaller of it and Levene's test of unequal phenotype variance across genotypes
        (which sees variants of epistatic pairs).
    decoys
        Permuted copies of real variants appended as inputs (None: as many as the real
        inputs, at most 1,000).
    validation, test
        Shares of the samples (split by sample, seeded) for validation and testing.
    epochs, batch_size, learning_rate, weight_decay
        AdamW at a constant learning rate, for at most ``epochs`` epochs.
    patience, eval_every, keep_checkpoints
        Stop after ``patience`` evaluations without a lower validation loss; evaluate and
        checkpoint every ``eval_every`` steps (None: once per epoch); keep at most
        ``keep_checkpoints`` checkpoints (and the best).
    baselines_to_fit
        Baselines scored beside the transformer: any of ``gblup`` (over every variant of
        the genotype file), and on the model's input columns ``ridge``, ``boosting``,
        ``mlp``.
    seed
        Seed of the split, the decoys, the initial weights and the batches.
    device
        ``auto``, ``cpu``, ``cuda``, ``npu`` or ``mps``.
    resume
        Continue the run in ``out`` from its last complete checkpoint.
    overwrite
        Replace what an earlier run wrote to ``out`` (without it, such an ``out`` is refused).
    """

    backbone: str = "bert"
    window: int = 8
    pooling: str | None = None
    additive: bool = True
    d_model: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    dropout: float | None = None
    initializer_range: float | None = None
    preselect: int | None = None
    preselect_by: str = "marginal+variance"
    decoys: int | None = None
    validation: float = 0.15
    test: float = 0.15
    epochs: float = 100
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    patience: int = 20
    eval_every: int | None = None
    keep_checkpoints: int = 2
    baselines_to_fit: Sequence[str] = baselines.BASELINES
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False


#: The settings that shape the network (the rest of its configuration is the data's).
_ARCHITECTURE = (
    "backbone", "window", "pooling", "additive", "d_model", "n_layers", "n_heads", "dropout",
    "initializer_range",
)  # fmt: skip


def train(
    genotypes: str | os.PathLike,
    pheno: str | os.PathLike | pd.DataFrame,
    *,
    out: str | os.PathLike,
    trait: str,
    covar: str | os.PathLike | pd.DataFrame | None = None,
    covar_names: Sequence[str] | None = None,
    settings: GenotypeTrainSettings | None = None,
    **overrides: Any,
) -> RunResult:
    """Train the genotype transformer on a phenotype and compare it with baselines.

    Samples with genotypes, a value of ``trait`` and every covariate are split by sample
    (seeded) into train, validation and test. Optionally only the ``preselect`` variants
    with the smallest p on the training samples are used, and ``decoys`` permuted copies of
    real variants are appended as inputs. The model trains with early stopping on
    validation loss; the transformer and the baselines (ridge/GBLUP, gradient-boosted
    trees, MLP) are scored on the test samples. See the module docstring for the run
    directory.

    Parameters
    ----------
    genotypes
        PLINK .bed (or its prefix), or a VCF/BCF file.
    pheno, trait
        The phenotype table (a file in PLINK's layout, or a DataFrame with FID and IID) and
        its column to learn.
    out
        The run directory.
    covar, covar_names
        Covariates (a file or a DataFrame) and the columns used (default: all).
    settings, **overrides
        How to build and train the model: a :class:`GenotypeTrainSettings`, and/or any of
        its fields by name (``epochs=30, preselect=500``).
    """
    options = with_overrides(GenotypeTrainSettings, settings, overrides, "train")
    arguments = {
        k: (v if not isinstance(v, pd.DataFrame) else "<DataFrame>")
        for k, v in {
            "genotypes": genotypes, "pheno": pheno, "out": out, "trait": trait, "covar": covar,
            "covar_names": covar_names, **asdict(options),
        }.items()
    }  # fmt: skip
    # Absolute, so that load_trained finds the genotypes from any working directory.
    arguments["genotypes"] = str(Path(genotypes).absolute())
    if options.window < 1:
        raise InputError(
            f"window is {options.window}", where="--window", fix="use 1 or more variants"
        )
    seed = options.seed
    control = {"seed": seed, "resume": options.resume, "overwrite": options.overwrite}
    run = RunDir(out, command="gwas train", arguments=arguments, **control)
    with run.step("prepare"), open_genotypes(genotypes) as source:
        cohort = _cohort(source, pheno, trait, covar, covar_names)
        split = _split(len(cohort.index), options.validation, options.test, seed)
        columns = _model_variants(run, source, cohort, split, options)
        G = source.read(samples=cohort.index, variants=columns)
        layout = _layout(source, cohort, split, columns, options.decoys, seed)
        task = "regression" if cohort.kind == "quantitative" else "classification"
        whole_genome = {}
        if "gblup" in options.baselines_to_fit:  # every variant, read while the file is open
            whole_genome["gblup"] = baselines.gblup_all_variants(
                source, cohort.index, split, cohort.y, cohort.covariates, task=task
            )
    run.record_output("variants", write_table(run.file("variants.tsv"), layout.variants))
    run.record_output("samples", write_table(run.file("samples.tsv"), layout.samples))
    parts, scaling = _model_inputs(G, layout, cohort, split, task=task, trait=trait)
    del G
    architecture = {key: getattr(options, key) for key in _ARCHITECTURE}
    config = _model_config(architecture, task, parts, cohort, layout.variants, scaling)
    torch.manual_seed(seed)
    network = GenotypeModel(config)
    with run.step("train"):
        trained = _fit(run, network, parts, task, _train_settings(options), resume=options.resume)
    with run.step("evaluate"):
        results, outputs = _compare(
            run, trained.model, parts, layout.samples[split == "test"], task=task, trait=trait,
            baselines_to_fit=options.baselines_to_fit, whole_genome=whole_genome, seed=seed,
            device=options.device,
        )  # fmt: skip
    summary = _summary(trait, task, config, parts, layout, trained, results)
    outputs["metrics"] = write_json(run.file("metrics.json"), summary)
    run.record_outputs(outputs)
    run.record_results("test", {name: _headline(m, task) for name, m in results.items()})
    run.finish()
    return RunResult(run.path, summary, {**trained.outputs, **outputs})


def _summary(
    trait: str,
    task: str,
    config: GenotypeModelConfig,
    parts: dict[str, CohortInputs],
    layout: _Layout,
    trained: Any,
    results: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """``metrics.json``: the data, the model and its training, every model's test metrics."""
    return {
        "trait": trait,
        "task": task,
        "backbone": config.backbone,
        "samples": {name: len(parts[name]) for name in SPLITS},
        "variants": int((~layout.variants["is_decoy"]).sum()),
        "decoys": int(len(layout.decoy_source)),
        "tokens": config.n_tokens,
        "n_parameters": int(sum(p.numel() for p in trained.model.parameters())),
        "best_validation_loss": trained.best_eval_loss,
        "steps": trained.global_step,
        "test": results,
    }


def _model_variants(
    run: RunDir,
    source: GenotypeSource,
    cohort: _Cohort,
    split: np.ndarray,
    options: GenotypeTrainSettings,
) -> np.ndarray:
    """The variants the model takes, in file order: every one, or the ``preselect`` chosen on
    the training samples (see :func:`~genoformer.gwas.model.inputs.preselect_variants`)."""
    if options.preselect is None:
        return np.arange(source.n_variants)
    train_rows = np.flatnonzero(split == "train")
    columns, association = preselect_variants(
        source,
        cohort.index,
        cohort.y,
        cohort.covariates,
        train_rows,
        options.preselect,
        options.preselect_by,
    )
    # Every variant's test on the training samples: `gwas explain` draws the
    # Manhattan panel and the association ranking from it.
    run.record_output("association", write_results(association, run.file("association.parquet")))
    return columns


@dataclass
class _Layout:
    """The model's columns and samples, as ``variants.tsv`` and ``samples.tsv`` hold them."""

    decoy_source: np.ndarray  # the real column each decoy copies
    permutation: np.ndarray  # the sample row whose genotypes fill each sample's decoys
    variants: pd.DataFrame
    samples: pd.DataFrame


def _layout(
    source: GenotypeSource,
    cohort: _Cohort,
    split: np.ndarray,
    columns: np.ndarray,
    decoys: int | None,
    seed: int,
) -> _Layout:
    """Decoys chosen for the model's variants, and the variants and samples tables."""
    n_decoys = min(MAX_DECOYS, len(columns)) if decoys is None else decoys
    decoy_source = choose_decoys(len(columns), n_decoys, seed)
    permutation = decoy_permutation(len(cohort.index), seed)
    variants = _variants_table(source, columns, decoy_source)
    samples = source.samples.iloc[cohort.index][["fid", "iid"]].reset_index(drop=True)
    samples["split"] = split
    samples["y"] = cohort.y
    samples["decoy_row"] = permutation
    if cohort.covariates is not None:
        for j, name in enumerate(cohort.covariate_names):
            samples[f"covar:{name}"] = cohort.covariates[:, j]
    return _Layout(decoy_source, permutation, variants, samples)


def _model_inputs(
    G: np.ndarray, layout: _Layout, cohort: _Cohort, split: np.ndarray, *, task: str, trait: str
) -> tuple[dict[str, CohortInputs], tuple[list[float], list[float]]]:
    """The model inputs of each split (decoys appended, covariates standardised with the
    training samples' statistics) and those statistics (empty without covariates)."""
    values, missing = split_missing(with_decoys(G, layout.decoy_source, layout.permutation))
    scaling: tuple[list[float], list[float]] = ([], [])
    covariates = None
    if cohort.covariates is not None and cohort.covariates.shape[1]:
        scaling = covariate_scaling(cohort.covariates[split == "train"])
        covariates = standardise_covariates(cohort.covariates, *scaling)
    inputs = CohortInputs(values, missing, covariates, cohort.y)
    parts = {name: inputs.subset(np.flatnonzero(split == name)) for name in SPLITS}
    if task == "classification" and len(np.unique(parts["train"].y)) < 2:
        raise InputError(
            f"the training samples of '{trait}' are all one class",
            fix="give a case/control phenotype with both cases and controls",
        )
    return parts, scaling


def _model_config(
    architecture: dict[str, Any],
    task: str,
    parts: dict[str, CohortInputs],
    cohort: _Cohort,
    variants: pd.DataFrame,
    scaling: tuple[list[float], list[float]],
) -> GenotypeModelConfig:
    """The model's configuration: ``architecture`` (``MODEL_DEFAULTS`` where None) and what
    the data decide (sizes, token layout, genotype, target and covariate scaling)."""
    architecture = {
        key: MODEL_DEFAULTS[key] if value is None and key in MODEL_DEFAULTS else value
        for key, value in architecture.items()
    }
    train_part = parts["train"]
    y_train = train_part.y
    column_scaling = baselines.Features(train_part)
    window = architecture.pop("window")
    return GenotypeModelConfig(
        n_variants=train_part.genotypes.shape[1],
        n_covariates=0 if train_part.covariates is None else train_part.covariates.shape[1],
        task=task,
        num_labels=1 if task == "regression" else 2,
        window=window,
        token_of_column=window_layout(variants["chrom"], variants["is_decoy"], window).tolist(),
        genotype_mean=column_scaling.mean.tolist(),
        genotype_std=column_scaling.std.tolist(),
        target_mean=float(np.mean(y_train)) if task == "regression" else 0.0,
        target_std=(float(np.std(y_train)) or 1.0) if task == "regression" else 1.0,
        covariate_names=cohort.covariate_names,
        covariate_columns=cohort.covariate_columns,
        covariate_mean=scaling[0],
        covariate_std=scaling[1],
        classes=None if task == "regression" else ["control", "case"],
        **architecture,
    )


def _train_settings(options: GenotypeTrainSettings) -> TrainSettings:
    """The Trainer's settings: constant learning rate, evaluated every epoch by default."""
    return TrainSettings(
        epochs=options.epochs,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        weight_decay=options.weight_decay,
        warmup=0.0,
        scheduler="constant",
        eval_every=options.eval_every,
        keep_checkpoints=options.keep_checkpoints,
        patience=options.patience,
        seed=options.seed,
        device=options.device,
    )


def _fit(
    run: RunDir,
    network: GenotypeModel,
    parts: dict[str, CohortInputs],
    task: str,
    settings: TrainSettings,
    *,
    resume: bool,
) -> Any:
    """Train with early stopping on the validation samples; the Trainer's outputs recorded."""
    trained = train_model(
        network,
        GenotypeDataset(parts["train"], task=task),
        GenotypeDataset(parts["validation"], task=task),
        run.path,
        settings,
        resume=resume,
    )
    for key, path in trained.outputs.items():
        run.record_output(key, path)
    return trained


def _compare(
    run: RunDir,
    model: GenotypeModel,
    parts: dict[str, CohortInputs],
    test_samples: pd.DataFrame,
    *,
    task: str,
    trait: str,
    baselines_to_fit: Sequence[str],
    whole_genome: dict[str, np.ndarray],
    seed: int,
    device: str,
) -> tuple[dict[str, dict[str, Any]], dict[str, Path]]:
    """The transformer and the baselines scored on the test samples (``whole_genome``: the
    test predictions of the baselines over every variant, first): metrics per model, and the
    predictions, comparison table and figures written."""
    test_part = parts["test"]
    logits = predict_logits(model, GenotypeDataset(test_part, task=task), device=device)
    predictions = {"transformer": logits[:, 0] if task == "regression" else softmax(logits)}
    predictions.update(whole_genome)
    fitted, at_mean = baselines.fit_predict(
        parts["train"],
        test_part,
        task=task,
        names=[name for name in baselines_to_fit if name != "gblup"],
        seed=seed,
        validation=parts["validation"],
    )
    predictions.update(fitted)
    results = {name: _evaluate(task, test_part.y, p) for name, p in predictions.items()}
    for name in at_mean:  # worse than the training mean on validation: predicts the mean
        results[name]["predicts_training_mean"] = True
    outputs = _write_evaluation(run, test_samples, test_part.y, predictions, task)
    outputs["comparison"] = write_table(run.file("comparison.tsv"), _comparison(results, task))
    metric = "r2" if task == "regression" else "auroc"
    outputs["comparison_figure"] = comparison_bar(
        results, metric, run.file("comparison.png"), title=f"test {metric}: {trait}"
    )[0]
    return results, outputs


def _headline(metrics: dict[str, Any], task: str) -> dict[str, Any]:
    keys = (
        ("r2", "pearson_r") if task == "regression" else ("auroc", "auprc", "precision", "recall")
    )
    return {k: metrics[k] for k in keys}


def _write_evaluation(
    run: RunDir,
    samples: pd.DataFrame,
    y: np.ndarray,
    predictions: dict[str, np.ndarray],
    task: str,
) -> dict[str, Path]:
    table = samples[["fid", "iid"]].reset_index(drop=True)
    table["y"] = y
    for name, p in predictions.items():
        table[name] = p if task == "regression" else p[:, 1]
    outputs = {"test_predictions": write_table(run.file("test_predictions.tsv"), table)}
    if task == "regression":
        outputs["parity"] = parity_plot(
            y, predictions["transformer"], run.file("test_parity.png"), title="transformer, test"
        )[0]
    else:
        outputs["roc_pr"] = roc_pr_curves(
            y.astype(np.int64),
            predictions["transformer"],
            run.file("test_roc_pr.png"),
            classes=["control", "case"],
        )[0]
    return outputs


# ------------------------------------------------------------------------- load, predict


@dataclass
class TrainedRun:
    """A trained run: the model (eval mode), its input columns and its samples."""

    run_dir: Path
    model: GenotypeModel
    variants: pd.DataFrame
    samples: pd.DataFrame
    genotypes: str | None

    def inputs(
        self, split: str = "test", *, genotypes: str | os.PathLike | None = None
    ) -> CohortInputs:
        """The model inputs of one split (or ``"all"``) exactly as in training: genotypes
        read again from the genotype file, decoys permuted as in training, covariates
        standardised with the training statistics."""
        if split != "all" and split not in SPLITS:
            raise InputError(f"unknown split '{split}'", fix="use train, validation, test or all")
        path = genotypes or self.genotypes
        if path is None:
            raise InputError(
                "the run does not say where its genotypes are",
                file=self.run_dir / "manifest.json",
                fix="give the genotype file the model was trained on (--genotypes, genotypes=)",
            )
        with open_genotypes(path) as source:
            index, _, _ = match_samples(
                source.samples,
                self.samples.rename(columns={"fid": "FID", "iid": "IID"})[["FID", "IID"]],
            )
            if len(index) != len(self.samples):
                raise InputError(
                    f"{len(self.samples) - len(index)} of the run's samples are not in the file",
                    file=path,
                    fix="give the genotype file the model was trained on",
                )
            columns = self._real_columns(source)
            order = _file_order(source, self.samples)
            G = source.read(samples=order, variants=columns)
        real = self.variants[~self.variants["is_decoy"]]
        G = G[:, np.argsort(np.argsort(real["source"].to_numpy()))] if len(real) else G
        decoys = self.variants[self.variants["is_decoy"]]
        position = {s: i for i, s in enumerate(real["source"].to_numpy())}
        decoy_source = np.array([position[s] for s in decoys["source"]], dtype=np.int64)
        permutation = self.samples["decoy_row"].to_numpy()
        values, missing = split_missing(with_decoys(G, decoy_source, permutation))
        config = self.model.config
        covariates = None
        if config.n_covariates:
            raw = self.samples[[f"covar:{n}" for n in config.covariate_names]].to_numpy(float)
            covariates = standardise_covariates(raw, config.covariate_mean, config.covariate_std)
        inputs = CohortInputs(values, missing, covariates, self.samples["y"].to_numpy(float))
        if split == "all":
            return inputs
        return inputs.subset(np.flatnonzero(self.samples["split"].to_numpy() == split))

    def _real_columns(self, source: GenotypeSource) -> np.ndarray:
        real = self.variants[~self.variants["is_decoy"]]
        return np.sort(real["source"].to_numpy())


def _file_order(source: GenotypeSource, samples: pd.DataFrame) -> np.ndarray:
    """Rows of the genotype file of each sample of ``samples``, in the table's order."""
    key = source.samples["fid"].astype(str) + "\t" + source.samples["iid"].astype(str)
    wanted = samples["fid"].astype(str) + "\t" + samples["iid"].astype(str)
    return pd.Index(key.to_numpy()).get_indexer(wanted.to_numpy())


def load_trained(run_dir: str | os.PathLike) -> TrainedRun:
    """A trained run directory: the model in eval mode, ``variants.tsv``, ``samples.tsv``."""
    path = Path(run_dir)
    model_dir = path / "model"
    # The run first: a stopped one has no model yet, and should be named as stopped.
    manifest = read_manifest(path, what="training run")
    require_path(
        model_dir / "config.json",
        "no trained model here (model/config.json missing)",
        file=path,
        fix="give the run directory that `genoformer gwas train` wrote",
    )
    model = load_pretrained(GenotypeModel, model_dir).eval()
    variants = pd.read_csv(path / "variants.tsv", sep="\t", dtype={"chrom": str, "id": str})
    variants["is_decoy"] = variants["is_decoy"].astype(str).str.lower().isin(["true", "1"])
    samples = pd.read_csv(path / "samples.tsv", sep="\t", dtype={"fid": str, "iid": str})
    genotypes = manifest.get("arguments", {}).get("genotypes")
    return TrainedRun(path, model, variants, samples, genotypes)


def _match_variants(
    source: GenotypeSource, variants: pd.DataFrame, path: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the model's real variants in ``source`` (by id) and which need 2 - x
    (alleles swapped)."""
    real = variants[~variants["is_decoy"]]
    found = pd.Index(source.variants["id"].astype(str)).get_indexer(real["id"].astype(str))
    if (found < 0).any():
        absent = real["id"].to_numpy()[found < 0]
        raise InputError(
            f"{len(absent)} of the model's {len(real)} variants are not in the genotypes "
            f"(e.g. {absent[0]})",
            file=path,
            fix="give genotypes with the variants the model was trained on (same ids)",
        )
    a1 = source.variants["a1"].to_numpy()[found]
    a2 = source.variants["a2"].to_numpy()[found]
    same = (a1 == real["a1"].to_numpy()) & (a2 == real["a2"].to_numpy())
    swapped = (a1 == real["a2"].to_numpy()) & (a2 == real["a1"].to_numpy())
    bad = ~(same | swapped)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"variant {real['id'].iloc[j]} has alleles {a1[j]}/{a2[j]}; the model's are "
            f"{real['a1'].iloc[j]}/{real['a2'].iloc[j]}",
            file=path,
            fix="use genotypes on the same alleles as the training data",
        )
    return found, swapped


def predict(
    run_dir: str | os.PathLike,
    genotypes: str | os.PathLike,
    *,
    out: str | os.PathLike,
    covar: str | os.PathLike | pd.DataFrame | None = None,
    device: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
) -> RunResult:
    """Predictions of a trained genotype model for the samples of a genotype file.

    The model's variants are found by id (alleles swapped are flipped); covariates, when
    the model has them, are matched on FID/IID and standardised as in training (samples
    without every covariate are left out). Writes ``predictions.tsv`` (``fid iid`` and
    ``predicted``, or ``p_case`` and ``log_odds``) into the run directory ``out``.
    """
    trained = load_trained(run_dir)
    config = trained.model.config
    arguments = {"run_dir": run_dir, "genotypes": genotypes, "covar": covar, "seed": seed}
    arguments = {
        k: v if not isinstance(v, pd.DataFrame) else "<DataFrame>" for k, v in arguments.items()
    }
    run = RunDir(out, command="gwas predict", arguments=arguments, seed=seed, overwrite=overwrite)
    with open_genotypes(genotypes) as source:
        rows, swapped = _match_variants(source, trained.variants, genotypes)
        keep = np.arange(source.n_samples)
        covariates = None
        if config.n_covariates:
            if covar is None:
                raise InputError(
                    f"the model was trained with covariates ({', '.join(config.covariate_names)})",
                    where="--covar",
                    fix="give the covariate file",
                )
            X, names, _ = sample_covariates(source.samples, covar, config.covariate_columns)
            if names != config.covariate_names:
                raise InputError(
                    f"covariates {', '.join(names)}; the model was trained on "
                    f"{', '.join(config.covariate_names)}",
                    file=str(covar) if not isinstance(covar, pd.DataFrame) else None,
                    fix="give the same covariate columns (and categorical levels) as in training",
                )
            keep = np.flatnonzero(np.isfinite(X).all(axis=1))
            if keep.size == 0:
                raise InputError(
                    "no sample has every covariate",
                    file=str(covar) if not isinstance(covar, pd.DataFrame) else None,
                    fix="check that the covariate FID/IID match the genotype file",
                )
            covariates = standardise_covariates(
                X[keep], config.covariate_mean, config.covariate_std
            )
        order = np.argsort(rows, kind="stable")
        G = np.empty((len(keep), len(rows)), dtype=np.float32)
        G[:, order] = source.read(samples=keep, variants=rows[order])
        G[:, swapped] = 2.0 - G[:, swapped]
        ids = source.samples.iloc[keep][["fid", "iid"]].reset_index(drop=True)
    real = trained.variants[~trained.variants["is_decoy"]]
    position = {s: i for i, s in enumerate(real["source"].to_numpy())}
    decoys = trained.variants[trained.variants["is_decoy"]]
    decoy_source = np.array([position[s] for s in decoys["source"]], dtype=np.int64)
    values, missing = split_missing(
        with_decoys(G, decoy_source, decoy_permutation(len(keep), seed))
    )
    inputs = CohortInputs(values, missing, covariates, np.full(len(keep), np.nan))
    logits = predict_logits(trained.model, GenotypeDataset(inputs), device=device)
    table = ids
    if config.task == "regression":
        table["predicted"] = logits[:, 0]
    else:
        table["p_case"] = softmax(logits)[:, 1]
        table["log_odds"] = logits[:, 1] - logits[:, 0]
    path = write_table(run.file("predictions.tsv"), table)
    run.record_output("predictions", path)
    metrics = {"samples": int(len(table)), "left_out": int(source.n_samples - len(keep))}
    run.record_results("predict", metrics)
    run.finish()
    return RunResult(run.path, metrics, {"predictions": path})
