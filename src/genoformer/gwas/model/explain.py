"""Explain a trained genotype model: which variants it uses, which pairs it combines.

:func:`explain` loads a training run (``genoformer.gwas.model.training.load_trained``), scores every
model column on the held-out samples with the chosen attribution methods
(:mod:`genoformer.gwas.model.attribution`), calibrates each against the decoy columns, scans the
top variants for pairwise interactions (:mod:`genoformer.gwas.model.epistasis`), sets the result
beside the per-variant association test on the training samples, and writes tables and
figures into a run directory. With the simulator's truth table it also reports how many
causal variants each ranking finds.

Cost, so that it runs on thousands of samples and variants on a CPU: gradient methods take
one (saliency, gradient x input) or ``ig_steps`` (integrated gradients) forward and backward
passes per sample; substitution and the pair scan take one forward pass per changed
(sample, variant, level), so substitution runs on the ``substitution_budget`` columns ranked
highest by a gradient method, decoys and real variants screened alike (see
:func:`genoformer.gwas.model.attribution.screen`), and both run on at most ``max_samples`` /
``pair_samples`` samples.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genoformer.engine.errors import InputError
from genoformer.engine.options import with_overrides
from genoformer.engine.paths import require_path
from genoformer.engine.runs import RunDir, RunResult, write_table
from genoformer.gwas.io.genotypes import ArrayGenotypes
from genoformer.gwas.model import attribution
from genoformer.gwas.model.attribution import ScoreFunction
from genoformer.gwas.model.epistasis import PairScanOptions, pair_scan
from genoformer.gwas.model.inputs import CohortInputs
from genoformer.gwas.plots import importance as plots

__all__ = ["ASSOCIATION_FILES", "ExplainSettings", "explain", "truth_recall"]

#: Association tables a training run may have written, read instead of testing again.
ASSOCIATION_FILES = ("assoc.parquet", "assoc.tsv", "association.parquet", "association.tsv")
#: Rank cut of the recall report: causal variants among the top this many.
TOP_N = 20
_LABELS = {
    "saliency": "mean |saliency|",
    "gradient_x_input": "mean |gradient x input|",
    "ig": "mean |integrated gradients|",
    "substitution": "mean |substitution change|",
}


@dataclass(frozen=True)
class ExplainSettings:
    """How :func:`explain` explains a model: each is also a keyword argument of it, most
    are CLI flags too.

    Attributes
    ----------
    methods
        Any of ``saliency``, ``gradient_x_input``, ``ig``, ``substitution`` (or one
        comma-separated string of them).
    top_pairs
        Real variants (by importance) whose pairs are scanned for interaction.
    null_pairs
        Null pairs (with a decoy) scored for the pairs' calibration.
    pair_levels
        The two dosages of the interaction contrast (see :mod:`genoformer.gwas.model.epistasis`).
    split
        The samples explained (``test`` by default; the association always uses ``train``).
    max_samples, pair_samples
        At most this many samples (drawn with ``seed``) for the per-variant methods and for
        the pair scan; ``None`` for all.
    substitution_budget
        Columns (real and decoy) substituted: the top ones by the first gradient method in
        ``methods`` (gradient x input when there is none); ``None`` for every column.
    ig_steps, baseline, smoothgrad
        Integrated gradients: path points, baseline (``zero`` or ``mean``), SmoothGrad
        samples (0: off).
    alpha
        FDR level of the calls.
    batch_size
        Samples per forward pass (``None``: from a memory budget).
    device
        ``cpu``, ``cuda``, ``auto`` ...
    seed
        Seed of the sample draws and the SmoothGrad noise.
    progress
        Show progress bars.
    overwrite
        Replace what an earlier run wrote to ``out`` (without it, such an ``out`` is refused).
    """

    methods: Sequence[str] = ("ig", "substitution")
    top_pairs: int = 20
    null_pairs: int = 500
    pair_levels: tuple[float, float] = (0.0, 2.0)
    split: str = "test"
    max_samples: int | None = 1000
    pair_samples: int = 256
    substitution_budget: int | None = 1000
    ig_steps: int = 32
    baseline: str = "zero"
    smoothgrad: int = 0
    alpha: float = 0.05
    batch_size: int | None = None
    device: str = "auto"
    seed: int = 0
    progress: bool = True
    overwrite: bool = False


def explain(
    run_dir: str | os.PathLike,
    *,
    out: str | os.PathLike,
    genotypes: str | os.PathLike | None = None,
    truth: str | os.PathLike | None = None,
    settings: ExplainSettings | None = None,
    **overrides: Any,
) -> RunResult:
    """Attribution, calibration, epistasis and figures for a trained genotype model.

    Every model column is scored on the ``split`` samples by each of ``methods`` and
    calibrated against the decoys; the top variants' pairs are scanned for interaction; the
    association test on the training samples is set beside them (see the module docstring).

    Parameters
    ----------
    run_dir
        Run directory of ``genoformer gwas train``.
    out
        Run directory to write: ``importance.tsv``, ``pairs.tsv``, ``association.tsv`` (when
        computed here), figures, ``manifest.json``.
    genotypes
        The genotype file, when it is no longer where the training run read it.
    truth
        The simulator's ``.truth.tsv``: adds the recall of causal variants and of epistatic
        pairs to the metrics.
    settings, **overrides
        How to explain: an :class:`ExplainSettings`, and/or any of its fields by name
        (``methods=["ig"], top_pairs=10``).

    Returns
    -------
    RunResult
        Run directory, metrics (variants called per method, decoys called, pairs called,
        recall with ``truth``) and the files written.
    """
    options = with_overrides(ExplainSettings, settings, overrides, "explain")
    options = replace(options, methods=_check_methods(options.methods))
    _check_sizes(options)
    truth_table = _read_truth(truth) if truth is not None else None
    trained = _load(run_dir, genotypes)
    given = {"run_dir": run_dir, "genotypes": genotypes, "methods": options.methods}
    arguments = {**given, "truth": truth, **{k: getattr(options, k) for k in _RECORDED}}
    control = {"seed": options.seed, "overwrite": options.overwrite}
    run = RunDir(out, command="gwas explain", arguments=arguments, **control)
    variants = trained.variants.reset_index(drop=True)
    f, dev = _score_function(trained.model, options.device)
    with run.step("inputs"):
        cohort, x = _explained_samples(trained, options, dev, run_dir)
    table, scores, metrics = _importance(run, options, f, x, dev, variants)
    assoc, assoc_source = _association_columns(run, run_dir, trained, variants, table, metrics)
    primary = _primary(options)
    table[f"{primary}_rank"] = _rank(table[primary].to_numpy(), _is_decoy(variants))
    with run.step("pairs"):
        pairs, n_pair_samples = _scan_pairs(
            f, cohort, scores[primary], variants, table, options, dev
        )
    levels = list(options.pair_levels)
    metrics["pairs"] = {**pairs.attrs, "samples": n_pair_samples, "levels": levels}
    outputs = _write_outputs(run, options, table, pairs, assoc, assoc_source, metrics)
    if truth_table is not None:
        metrics["truth"] = truth_recall(
            table, pairs, truth_table, methods=options.methods, association=assoc, top=TOP_N
        )
    return _finish(run, metrics, outputs)


#: The settings the manifest records (after ``methods``), as it recorded them before they
#: were grouped: not the seed, the progress bars or ``overwrite``.
_RECORDED = (
    "top_pairs", "null_pairs", "pair_levels", "split", "max_samples", "pair_samples",
    "substitution_budget", "ig_steps", "baseline", "smoothgrad", "alpha", "batch_size", "device",
)  # fmt: skip


def _primary(options: ExplainSettings) -> str:
    """The method that ranks the variants and chooses the pairs scanned."""
    return "substitution" if "substitution" in options.methods else options.methods[0]


def _check_sizes(options: ExplainSettings) -> None:
    top_pairs, null_pairs = options.top_pairs, options.null_pairs
    max_samples, substitution_budget = options.max_samples, options.substitution_budget
    pair_samples = options.pair_samples
    if top_pairs < 2:
        raise InputError(
            f"top_pairs is {top_pairs}: a pair needs 2 variants",
            where="--top-pairs",
            fix="use 2 or more",
        )
    if null_pairs < 1:
        raise InputError(
            f"null_pairs is {null_pairs}: the pair scan needs a null",
            where="--null-pairs",
            fix="use 1 or more (500 by default)",
        )
    for name, value in (("max_samples", max_samples), ("substitution_budget", substitution_budget)):
        if value is not None and value < 1:
            raise InputError(
                f"{name} is {value}",
                where=f"--{name.replace('_', '-')}",
                fix="use 1 or more, or leave it unset",
            )
    if pair_samples < 1:
        raise InputError(
            f"pair_samples is {pair_samples}", where="--pair-samples", fix="use 1 or more"
        )


def _score_function(model: Any, device: str) -> tuple[ScoreFunction, torch.device]:
    """The model, in eval mode on ``device``, as a score function; and the device."""
    from genoformer.gwas.model.network import score

    dev = _device(device)
    model.to(dev).eval()
    return functools.partial(score, model), dev


def _is_decoy(variants: pd.DataFrame) -> np.ndarray:
    """Which model columns are decoys, from ``variants.tsv``'s rows (or the importance table)."""
    return variants["is_decoy"].astype(bool).to_numpy()


def _explained_samples(
    trained: Any, options: ExplainSettings, dev: torch.device, run_dir: str | os.PathLike
) -> tuple[CohortInputs, Any]:
    """The model inputs of the explained split, and of the samples drawn from it for the
    per-variant methods (on ``dev``)."""
    cohort = trained.inputs(options.split)
    if len(cohort) == 0:
        raise InputError(
            f"no {options.split} samples in the run", file=run_dir, fix="explain another split"
        )
    chosen = _draw(len(cohort), options.max_samples, np.random.default_rng(options.seed))
    x = attribution.as_inputs(
        cohort.genotypes[chosen], cohort.missing[chosen],
        None if cohort.covariates is None else cohort.covariates[chosen], device=dev,
    )  # fmt: skip
    return cohort, x


def _importance(
    run: RunDir,
    options: ExplainSettings,
    f: ScoreFunction,
    x: Any,
    dev: torch.device,
    variants: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, Any]]:
    """Every method's score per model column, calibrated against the decoys.

    Returns the importance table (one row per model column), the raw scores per method and
    the run's metrics so far.
    """
    is_decoy = _is_decoy(variants)
    table = variants[
        [c for c in ("column", "id", "chrom", "pos", "a1", "a2", "is_decoy") if c in variants]
    ].copy()
    metrics: dict[str, Any] = {"split": options.split, "samples": int(x.n), "columns": int(x.m),
                               "real_variants": int((~is_decoy).sum()), "decoys": int(is_decoy.sum())}  # fmt: skip
    scores = _gradient_scores(run, options, f, x, dev, table)
    if "substitution" in options.methods:
        with run.step("substitution"):
            scores["substitution"] = _substitution_scores(
                options, f, x, dev, scores, table, metrics
            )
    for method in options.methods:
        calibrated = attribution.calibrate(scores[method], is_decoy, alpha=options.alpha)
        table[method] = calibrated["score"].to_numpy()
        table[f"{method}_p"] = calibrated["p"].to_numpy()
        table[f"{method}_q"] = calibrated["q"].to_numpy()
        metrics[method] = {
            **calibrated.attrs,
            "decoy_max": float(np.nanmax(np.where(is_decoy, scores[method], np.nan)))
            if np.isfinite(scores[method][is_decoy]).any() else None,
        }  # fmt: skip
    return table, scores, metrics


def _gradient_scores(
    run: RunDir,
    options: ExplainSettings,
    f: ScoreFunction,
    x: Any,
    dev: torch.device,
    table: pd.DataFrame,
) -> dict[str, np.ndarray]:
    """Mean absolute attribution per column of each gradient method of ``options``; the
    mean signed attribution goes into ``table`` (``<method>_signed``)."""
    scores: dict[str, np.ndarray] = {}
    common = {"batch_size": options.batch_size or 64, "device": dev}
    for method in (m for m in options.methods if m in attribution.GRADIENT_METHODS):
        with run.step(method):
            if method == "ig":
                per_sample = attribution.integrated_gradients(
                    f, x.genotypes, x.missing, x.covariates, baseline=options.baseline,
                    n_steps=options.ig_steps, smoothgrad_samples=options.smoothgrad,
                    seed=options.seed, **common,
                )  # fmt: skip
            else:
                function = getattr(attribution, method)
                per_sample = function(f, x.genotypes, x.missing, x.covariates, **common)
            scores[method] = attribution.mean_absolute(per_sample)
            table[f"{method}_signed"] = per_sample.mean(axis=0)
    return scores


def _substitution_scores(
    options: ExplainSettings,
    f: ScoreFunction,
    x: Any,
    dev: torch.device,
    scores: dict[str, np.ndarray],
    table: pd.DataFrame,
    metrics: dict[str, Any],
) -> np.ndarray:
    """In silico substitution importance per column (NaN for columns not substituted): of the
    ``substitution_budget`` columns ranked highest by the first gradient method of
    ``scores`` (gradient x input when there is none), or of every column. The mean effect
    goes into ``table`` (``substitution_effect``), the screen into ``metrics``."""
    columns = None
    if options.substitution_budget is not None and options.substitution_budget < x.m:
        screen_by = next((m for m in options.methods if m in scores), None)
        if screen_by is None:
            screen_by = "gradient_x_input"
            common = {"batch_size": options.batch_size or 64, "device": dev}
            scores_gxi = attribution.mean_absolute(
                attribution.gradient_x_input(f, x.genotypes, x.missing, x.covariates, **common)
            )
        else:
            scores_gxi = scores[screen_by]
        columns = attribution.screen(scores_gxi, options.substitution_budget)
        metrics["substitution_screen"] = {"by": screen_by, "columns": int(len(columns))}
    result = attribution.substitution(
        f, x.genotypes, x.missing, x.covariates, columns=columns,
        batch_size=options.batch_size, device=dev, progress=options.progress,
    )  # fmt: skip
    full = np.full(x.m, np.nan)
    full[result.columns] = result.importance
    effect = np.full(x.m, np.nan)
    effect[result.columns] = result.effect
    table["substitution_effect"] = effect
    return full


def _association_columns(
    run: RunDir,
    run_dir: str | os.PathLike,
    trained: Any,
    variants: pd.DataFrame,
    table: pd.DataFrame,
    metrics: dict[str, Any],
) -> tuple[pd.DataFrame, str]:
    """The association table (see :func:`_association`) and where it came from; every real
    variant's association p goes into ``table`` (``assoc_p``)."""
    is_decoy = _is_decoy(variants)
    with run.step("association"):
        assoc, assoc_source = _association(run_dir, trained, variants, is_decoy)
    metrics["association"] = {"source": assoc_source, "variants": int(len(assoc))}
    p_by_id = pd.Series(
        pd.to_numeric(assoc["P"], errors="coerce").to_numpy(), index=assoc["ID"].astype(str)
    )
    p_by_id = p_by_id[~p_by_id.index.duplicated()]
    table["assoc_p"] = np.where(
        is_decoy, np.nan, table["id"].astype(str).map(p_by_id).to_numpy(dtype=float)
    )
    return assoc, assoc_source


def _scan_pairs(
    f: ScoreFunction,
    cohort: CohortInputs,
    importance: np.ndarray,
    variants: pd.DataFrame,
    table: pd.DataFrame,
    options: ExplainSettings,
    dev: torch.device,
) -> tuple[pd.DataFrame, int]:
    """The pair scan on ``pair_samples`` samples drawn from the explained split, with the ids,
    places and association p of both variants (``attrs`` holds its counts); and the number
    of samples it ran on."""
    pair_rows = _draw(len(cohort), options.pair_samples, np.random.default_rng([options.seed, 1]))
    pairs = pair_scan(
        f,
        cohort.genotypes[pair_rows],
        cohort.missing[pair_rows],
        None if cohort.covariates is None else cohort.covariates[pair_rows],
        importance=np.nan_to_num(importance, nan=-np.inf),
        is_decoy=_is_decoy(variants),
        top=options.top_pairs,
        null_pairs=options.null_pairs,
        options=PairScanOptions(
            levels=options.pair_levels,
            alpha=options.alpha,
            batch_size=options.batch_size,
            device=dev,
            progress=options.progress,
        ),
    )
    return _pair_table(pairs, variants, table), int(len(pair_rows))


def _write_outputs(
    run: RunDir,
    options: ExplainSettings,
    table: pd.DataFrame,
    pairs: pd.DataFrame,
    assoc: pd.DataFrame,
    assoc_source: str,
    metrics: dict[str, Any],
) -> dict[str, Path]:
    """The association table (when computed here), ``importance.tsv``, ``pairs.tsv`` and the
    figures: an importance track per method and the pair heatmap."""
    outputs: dict[str, Path] = {}
    if assoc_source == "computed":
        from genoformer.gwas.stats.association import write_results

        outputs["association"] = write_results(assoc, run.file("association.tsv"))
    outputs["importance"] = write_table(run.file("importance.tsv"), table)
    outputs["pairs"] = write_table(run.file("pairs.tsv"), pairs)
    with run.step("figures"):
        for method in options.methods:
            decoy_max = metrics[method]["decoy_max"]
            common_plot = {"score": method, "label": _LABELS[method], "null_max": decoy_max}
            outputs[f"importance_{method}"] = plots.importance_track(
                table, assoc, run.file(f"importance_{method}.png"), **common_plot
            )[0]
            outputs[f"importance_{method}_html"] = plots.importance_track_html(
                table, assoc, run.file(f"importance_{method}.html"), **common_plot
            )
        rank = f"{_primary(options)}_rank"
        order = table.sort_values(rank, kind="stable")["id"].astype(str).tolist()
        outputs["pairs_heatmap"] = plots.pair_heatmap(
            pairs, run.file("pairs_heatmap.png"), order=order
        )[0]
        outputs["pairs_heatmap_html"] = plots.pair_heatmap_html(
            pairs, run.file("pairs_heatmap.html"), order=order
        )
    return outputs


def _finish(run: RunDir, metrics: dict[str, Any], outputs: dict[str, Path]) -> RunResult:
    """Record the outputs and metrics, close the run directory: the run's result."""
    for key, path in outputs.items():
        run.record_output(key, path)
    run.record_results("explain", metrics)
    run.finish()
    return RunResult(run.path, metrics, outputs)


def _check_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in attribution.METHODS]
    if unknown or not methods:
        raise InputError(
            f"unknown attribution method {unknown[0]!r}" if unknown else "no attribution method",
            where="--methods",
            fix=f"use one or more of {', '.join(attribution.METHODS)}",
        )
    return methods


def _load(run_dir: str | os.PathLike, genotypes: str | os.PathLike | None) -> Any:
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(
            "no such run directory", file=path, fix="give the --out of `genoformer gwas train`"
        )
    if not (path / "model").is_dir() or not (path / "variants.tsv").exists():
        raise InputError(
            "no trained model here (model/ and variants.tsv are missing)",
            file=path,
            fix="give the run directory of a finished `genoformer gwas train`",
        )
    from genoformer.gwas.model.training import load_trained

    trained = load_trained(path)
    if genotypes is not None:
        trained.genotypes = str(genotypes)
    return trained


def _device(device: str) -> torch.device:
    from genoformer.engine.device import pick_device

    return torch.device(pick_device(device))


def _draw(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` of ``n`` rows, drawn at random, in their original order."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _rank(scores: np.ndarray, is_decoy: np.ndarray) -> np.ndarray:
    """Rank (1 = most important) among the real variants; decoys and unscored: NaN."""
    rank = np.full(scores.size, np.nan)
    real = np.flatnonzero(~is_decoy & np.isfinite(scores))
    order = real[np.lexsort((real, -scores[real]))]
    rank[order] = np.arange(1, order.size + 1)
    return rank


def _association(
    run_dir: str | os.PathLike, trained: Any, variants: pd.DataFrame, is_decoy: np.ndarray
) -> tuple[pd.DataFrame, str]:
    """Association of the real model columns on the training samples: the run's own table
    when it covers them, otherwise tested here (A1 = the allele the model counts)."""
    real_ids = set(variants.loc[~is_decoy, "id"].astype(str))
    for name in ASSOCIATION_FILES:
        path = Path(run_dir) / name
        if not path.exists():
            continue
        table = (
            pd.read_parquet(path)
            if path.suffix == ".parquet"
            else pd.read_csv(path, sep="\t", na_values=["NA"])
        )
        if "ID" in table and "P" in table and real_ids <= set(table["ID"].astype(str)):
            if "TEST" in table:
                table = table[table["TEST"].astype(str) == "ADD"]
            return table.reset_index(drop=True), str(path)
    from genoformer.gwas.stats.association import associate

    train = trained.inputs("train")
    real = np.flatnonzero(~is_decoy)
    G = np.where(train.missing[:, real], np.nan, train.genotypes[:, real])
    table = variants.iloc[real][["chrom", "id", "pos", "a1", "a2"]].copy()
    table["cm"] = 0.0
    samples = pd.DataFrame({"fid": [f"s{i}" for i in range(len(G))]}).assign(iid=lambda t: t["fid"])
    source = ArrayGenotypes(G, table, samples)
    results = associate(source, train.y, covariates=train.covariates, a1="alt")
    return results, "computed"


def _pair_table(pairs: pd.DataFrame, variants: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Pair scan rows with the ids, places and association p of both variants."""
    out = pairs.copy()
    for side in ("a", "b"):
        rows = variants.iloc[out[side].to_numpy()]
        out[f"id_{side}"] = rows["id"].astype(str).to_numpy()
        out[f"chrom_{side}"] = rows["chrom"].astype(str).to_numpy()
        out[f"pos_{side}"] = rows["pos"].to_numpy()
        out[f"decoy_{side}"] = rows["is_decoy"].astype(bool).to_numpy()
        out[f"assoc_p_{side}"] = table["assoc_p"].to_numpy()[out[side].to_numpy()]
    out = out.rename(columns={"a": "column_a", "b": "column_b"})
    first = ["id_a", "id_b", "null", "interaction", "score", "p", "q", "called"]
    return out[first + [c for c in out.columns if c not in first]]


def _read_truth(path: str | os.PathLike) -> pd.DataFrame:
    path = require_path(
        path, "no such truth table", fix="give the .truth.tsv of `genoformer gwas simulate`"
    )
    truth = pd.read_csv(path, sep="\t", dtype={"id": str, "chrom": str})
    missing = {"id", "kind"} - set(truth.columns)
    if missing:
        raise InputError(
            f"truth table lacks column(s) {', '.join(sorted(missing))}",
            file=path,
            where="header",
            fix="give the .truth.tsv of `genoformer gwas simulate` (id ... kind pair)",
        )
    return truth


def truth_recall(
    importance: pd.DataFrame,
    pairs: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    methods: Sequence[str],
    association: pd.DataFrame | None = None,
    top: int = TOP_N,
) -> dict[str, Any]:
    """How well each ranking finds the simulated causal variants and epistatic pairs.

    For each method, and for the association p-value (every variant of ``association``,
    ``ID`` and ``P``, when given: what a GWAS ranks, not only the model's variants):
    ``causal_in_top`` (causal variants among the ``top`` real variants), ``recall`` (that
    count over every causal variant of the truth, in the model or not) and ``called`` /
    ``called_causal`` at FDR 5% (association: BH over the tested variants). For each
    epistatic pair: the variants' importance ranks and association p, and the pair's rank,
    score, p and q among the scanned pairs (None when not scanned).
    """
    real = importance[~importance["is_decoy"].astype(bool)].reset_index(drop=True)
    truth_ids = set(truth["id"].astype(str))
    additive = set(truth.loc[truth["kind"] == "additive", "id"].astype(str))
    epistatic = set(truth.loc[truth["kind"] == "epistatic", "id"].astype(str))
    ids = real["id"].astype(str)
    ranked_ids = {m: ids.to_numpy() for m in methods}
    rankings = {m: real[m].to_numpy(dtype=float) for m in methods}
    q_values = {m: real[f"{m}_q"].to_numpy(dtype=float) for m in methods}
    if association is None:
        association = pd.DataFrame({"ID": real["id"], "P": real["assoc_p"]})
    p = pd.to_numeric(association["P"], errors="coerce").to_numpy(dtype=float)
    ranked_ids["association"] = association["ID"].astype(str).to_numpy()
    rankings["association"] = -np.log10(p)
    q_values["association"] = attribution.benjamini_hochberg(p)
    out: dict[str, Any] = {
        "causal": len(truth_ids),
        "causal_in_model": len(truth_ids & set(ids)),
        "additive": len(additive),
        "epistatic": len(epistatic),
        "top": top,
        "association_variants": int(len(association)),
    }
    for name, values in rankings.items():
        order = np.lexsort((np.arange(len(values)), -np.nan_to_num(values, nan=-np.inf)))
        top_ids = set(ranked_ids[name][order[:top]])
        called = set(ranked_ids[name][q_values[name] <= 0.05])
        out[name] = {
            "causal_in_top": len(top_ids & truth_ids),
            "additive_in_top": len(top_ids & additive),
            "epistatic_in_top": len(top_ids & epistatic),
            "recall": len(top_ids & truth_ids) / len(truth_ids) if truth_ids else None,
            "called": len(called),
            "called_causal": len(called & truth_ids),
        }
    assoc_p = pd.Series(p, index=ranked_ids["association"])
    assoc_p = assoc_p[~assoc_p.index.duplicated()]
    rank_column = next((c for c in importance.columns if c.endswith("_rank")), None)
    tested = pairs[~pairs["null"].astype(bool)].reset_index(drop=True)
    found = []
    if "pair" in truth.columns:
        for pair_id, group in truth[truth["kind"] == "epistatic"].groupby("pair"):
            a, b = (str(v) for v in group["id"].iloc[:2])
            entry: dict[str, Any] = {"pair": int(pair_id), "id_a": a, "id_b": b}
            for side, vid in (("a", a), ("b", b)):
                row = real[ids == vid]
                entry[f"in_model_{side}"] = bool(len(row))
                p_value = assoc_p.get(vid, np.nan)
                entry[f"assoc_p_{side}"] = float(p_value) if np.isfinite(p_value) else None
                entry[f"importance_rank_{side}"] = (
                    float(row[rank_column].iloc[0]) if len(row) and rank_column else None
                )
            hit = tested[
                ((tested["id_a"] == a) & (tested["id_b"] == b))
                | ((tested["id_a"] == b) & (tested["id_b"] == a))
            ]
            if len(hit):
                entry.update(
                    scanned=True,
                    pair_rank=int(hit.index[0]) + 1,
                    interaction=float(hit["interaction"].iloc[0]),
                    p=float(hit["p"].iloc[0]),
                    q=float(hit["q"].iloc[0]),
                    called=bool(hit["called"].iloc[0]),
                )
            else:
                entry["scanned"] = False
            found.append(entry)
    out["epistatic_pairs"] = found
    return out
