"""The seq pillar's public functions: train, evaluate, predict, interpret.

Each is what one ``genoformer seq ...`` command calls, with the same arguments. Each writes
into a run directory (manifest.json, tables, figures) and returns a small result object.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genoformer.engine.checkpoints import load_pretrained
from genoformer.engine.device import pick_device
from genoformer.engine.errors import InputError, command_line, option
from genoformer.engine.metrics import classification_metrics, regression_metrics, softmax
from genoformer.engine.options import with_overrides
from genoformer.engine.paths import require_path
from genoformer.engine.plots import confusion_matrix_plot, parity_plot, roc_pr_curves
from genoformer.engine.runs import RunDir, RunResult, read_manifest, write_json, write_table
from genoformer.engine.training import TrainSettings, predict_logits, train_model
from genoformer.seq.attribution import gradient_x_input, saturation_mutagenesis
from genoformer.seq.data import OneHotDataset, SequenceData, harmonize_lengths
from genoformer.seq.encoding import length_fix
from genoformer.seq.io.load import load_sequences
from genoformer.seq.models import SeqModelConfig, SequenceModel
from genoformer.seq.motifs import (
    activation_ppms,
    information_content,
    load_jaspar,
    logo_grid,
    tomtom_matches,
)
from genoformer.seq.plots import attribution_logos, filter_heatmaps, worst_predictions_html
from genoformer.seq.splits import split_by_chromosome, split_random

SplitName = str
SPLIT_FILE = "splits/{}.parquet"
#: Training defaults per architecture, tuned on the teaching task and Oct4/MafK peaks.
ARCHITECTURE_DEFAULTS: dict[str, dict[str, Any]] = {
    "linear": {"learning_rate": 1e-2},
    "cnn": {"learning_rate": 3e-3},
    "deep_cnn": {"learning_rate": 1e-3},
    "transformer": {"learning_rate": 5e-4, "warmup": 0.05},
}


def _as_data(data: SequenceData | str | os.PathLike | Sequence, **read_options) -> SequenceData:
    if isinstance(data, SequenceData):
        return data
    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    return load_sequences(paths, **read_options)


def _split(
    data: SequenceData,
    split: str,
    seed: int,
    validation_chroms: Sequence[str],
    test_chroms: Sequence[str],
) -> dict[SplitName, SequenceData]:
    if split == "random":
        parts = split_random(data, seed=seed)
    elif split == "chromosome":
        parts = split_by_chromosome(data, validation=validation_chroms, test=test_chroms)
    else:
        raise InputError(
            f"unknown split '{split}'", where="--split", fix="use 'random' or 'chromosome'"
        )
    return dict(zip(("train", "validation", "test"), parts, strict=True))


def _save_split(run: RunDir, name: str, data: SequenceData) -> Path:
    table = pd.DataFrame({"id": data.ids, "sequence": data.sequences})
    if data.chroms is not None:
        table["chrom"] = data.chroms
    if data.task == "classification":
        table["label"] = [data.classes[i] for i in data.targets]
    else:
        for j, name_j in enumerate(data.target_names):
            table[name_j] = data.targets[:, j]
    return write_table(run.file(SPLIT_FILE.format(name)), table)


def _load_split(run_dir: Path, name: str, config: SeqModelConfig) -> SequenceData:
    path = require_path(
        run_dir / SPLIT_FILE.format(name),
        f"no {name} split in this run directory",
        fix=f"pass the data to evaluate with {option('data') or 'a data option'}",
    )
    table = pd.read_parquet(path)
    chroms = table["chrom"].tolist() if "chrom" in table else None
    if config.task == "classification":
        index = {c: i for i, c in enumerate(config.classes)}
        targets = np.array([index[v] for v in table["label"]], dtype=np.int64)
    else:
        targets = table[config.target_names].to_numpy(np.float32)
    return SequenceData(
        sequences=table["sequence"].tolist(),
        targets=targets,
        target_names=list(config.target_names),
        classes=config.classes,
        ids=table["id"].tolist(),
        chroms=chroms,
        source=str(path),
    )


def _check_learnable(data: SequenceData) -> None:
    """Training data has targets, and a classification at least two classes."""
    if data.task not in ("regression", "classification"):
        raise InputError(
            "these sequences carry no targets to learn",
            file=data.source,
            fix=f"give classes ({option('labels')} one per FASTA file, or "
            f"{option('label_pattern')}) or target columns ({option('targets')})",
        )
    present = sorted({data.classes[i] for i in data.targets}) if data.classes else []
    if data.task == "classification" and len(present) < 2:
        raise InputError(
            f"every sequence is of class {present[0]!r}: a classifier needs two classes or more",
            file=data.source,
            fix="add sequences of another class (a FASTA file each, or labels in the table)",
        )


def build_model(data: SequenceData, architecture: str, **options: Any) -> SequenceModel:
    """A fresh model sized for ``data`` (outputs, length, target scaling)."""
    if data.task == "regression":
        mean = data.targets.mean(axis=0).astype(float).tolist()
        std = np.maximum(data.targets.std(axis=0), 1e-8).astype(float).tolist()
    else:
        mean = std = None
    config = SeqModelConfig(
        architecture=architecture,
        task=data.task,
        n_outputs=data.n_outputs,
        seq_length=data.length,
        target_mean=mean,
        target_std=std,
        target_names=list(data.target_names),
        classes=list(data.classes) if data.classes else None,
        **options,
    )
    return SequenceModel(config)


def load_model(path: str | os.PathLike) -> SequenceModel:
    """A trained model from a run directory or its ``model/`` folder (of a complete run)."""
    fix = "give the run directory that `genoformer seq train` wrote"
    path = require_path(path, "no such run directory", fix=f"check the path: {fix}")
    model_dir = path / "model" if (path / "model" / "config.json").exists() else path
    read_manifest(
        model_dir.parent if model_dir.name == "model" else path,
        what="training run",
        command="seq train",
    )
    problem = "no trained model here (config.json missing)"
    require_path(model_dir / "config.json", problem, file=model_dir, fix=fix)
    return load_pretrained(SequenceModel, model_dir)


def _check_compatible(model: SequenceModel, data: SequenceData) -> None:
    if model.config.seq_length and data.length != model.config.seq_length:
        lengths = f"{data.length} bp" if data.length else "of unequal lengths"
        raise InputError(
            f"sequences are {lengths}; the model was trained on {model.config.seq_length} bp",
            file=data.source,
            fix=length_fix(model.config.seq_length),
        )


def _in_model_terms(model: SequenceModel, data: SequenceData) -> SequenceData:
    """Labelled data with its classes numbered as the model numbers them; data without
    labels, or with a label or target the model does not have, is refused."""
    config = model.config
    if data.targets.size == 0:
        predict = "`seq predict`" if command_line() else "predict()"
        raise InputError(
            "the sequences have no labels or targets to evaluate against",
            file=data.source,
            fix=f"pass {option('labels')} (classes) or {option('targets')} (table columns); "
            f"{predict} predicts without them",
        )
    if config.task != "classification":
        if list(data.target_names) != list(config.target_names):
            raise InputError(
                f"targets {', '.join(data.target_names)}; the model predicts "
                f"{', '.join(config.target_names)}",
                file=data.source,
                fix=f"pass {option('targets')} with the model's target columns",
            )
        return data
    if data.classes is None:
        raise InputError(
            f"the sequences have regression targets ({', '.join(data.target_names)}); the "
            f"model classifies them as {', '.join(config.classes)}",
            file=data.source,
            fix="evaluate on sequences labelled with the model's classes",
        )
    unknown = [c for c in data.classes if c not in config.classes]
    if unknown:
        first = unknown[0]
        raise InputError(
            f"label {first!r} is not one of the model's classes ({', '.join(config.classes)})",
            file=data.source,
            fix="evaluate on sequences labelled with the model's classes",
        )
    number = np.array([config.classes.index(c) for c in data.classes], dtype=np.int64)
    return SequenceData(
        data.sequences,
        targets=number[data.targets],
        target_names=data.target_names,
        classes=list(config.classes),
        ids=data.ids,
        chroms=data.chroms,
        source=data.source,
    )


def predictions_table(model: SequenceModel, data: SequenceData, device: str) -> pd.DataFrame:
    """Predictions (and truth when known) per sequence, in input order."""
    _check_compatible(model, data)
    logits = predict_logits(model, OneHotDataset(data), device=device)
    table = pd.DataFrame({"id": data.ids, "sequence": data.sequences})
    config = model.config
    has_truth = data.targets.size > 0
    if config.task == "classification":
        probabilities = softmax(logits)
        table["predicted"] = [config.classes[i] for i in probabilities.argmax(axis=1)]
        if has_truth:
            table["label"] = [config.classes[i] for i in data.targets]
        for j, name in enumerate(config.classes):
            table[f"p_{name}"] = probabilities[:, j]
    else:
        for j, name in enumerate(config.target_names):
            if has_truth:
                table[name] = data.targets[:, j]
            table[f"predicted_{name}"] = logits[:, j]
    return table


def evaluate_predictions(
    model: SequenceModel, data: SequenceData, out_dir: Path, *, label: str, device: str
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Metrics, predictions table, figures and the worst-predictions view for one model."""
    table = predictions_table(model, data, device)
    config = model.config
    outputs: dict[str, Path] = {
        "predictions": write_table(out_dir / f"{label}_predictions.tsv", table)
    }
    if config.task == "classification":
        probabilities = table[[f"p_{c}" for c in config.classes]].to_numpy()
        metrics = classification_metrics(data.targets, probabilities, classes=config.classes)
        outputs["roc_pr"] = roc_pr_curves(
            data.targets, probabilities, out_dir / f"{label}_roc_pr.png", classes=config.classes
        )[0]
        outputs["confusion"] = confusion_matrix_plot(
            metrics["confusion_matrix"], config.classes, out_dir / f"{label}_confusion.png"
        )[0]
        truth, predicted = data.targets, probabilities
    else:
        predicted = table[[f"predicted_{n}" for n in config.target_names]].to_numpy()
        metrics = regression_metrics(data.targets, predicted, target_names=config.target_names)
        outputs["parity"] = parity_plot(
            data.targets[:, 0],
            predicted[:, 0],
            out_dir / f"{label}_parity.png",
            title=f"{label}: {config.target_names[0]}",
        )[0]
        truth, predicted = data.targets[:, 0], predicted[:, 0]
    outputs["worst"] = worst_predictions_html(
        data.ids,
        data.sequences,
        truth,
        predicted,
        out_dir / f"{label}_worst.html",
        task=config.task,
        classes=config.classes,
    )
    outputs["metrics"] = write_json(out_dir / f"{label}_metrics.json", metrics)
    return metrics, outputs


@dataclass(frozen=True)
class SeqTrainSettings:
    """How :func:`train` trains (each also a keyword argument of it, and a CLI flag).

    Attributes
    ----------
    split
        ``"random"`` (80/10/10, chosen by ``seed``) or ``"chromosome"``.
    validation_chroms, test_chroms
        The chromosomes held out for validation and for testing (``split="chromosome"``).
    length_mode, length
        Sequences of unequal length: ``"error"``, ``"pad"`` (centred, with N), ``"crop"``
        (centred) or ``"fit"``, to ``length`` (default: the longest, or the shortest).
    epochs
        Maximum number of epochs.
    batch_size
        Sequences per batch.
    learning_rate, weight_decay
        AdamW; ``learning_rate`` None takes the architecture's default
        (:data:`ARCHITECTURE_DEFAULTS`).
    patience
        Stop after this many evaluations without improvement of the validation loss.
    eval_every
        Steps between evaluations (and checkpoints); None: once per epoch.
    keep_checkpoints
        Checkpoints kept (and the best).
    seed
        Seed of the split, the initial weights and the batches.
    device
        ``auto``, ``cpu``, ``cuda``, ``npu`` or ``mps``.
    resume
        Continue the run in ``out`` from its last checkpoint.
    overwrite
        Replace what an earlier run wrote to ``out`` (without it, such an ``out`` is refused).
    model_options
        Options of the architecture (:class:`~genoformer.seq.models.SeqModelConfig`:
        ``n_filters``, ``filter_width``, ``kmer``, ...).
    """

    split: str = "random"
    validation_chroms: Sequence[str] = ("chr8",)
    test_chroms: Sequence[str] = ("chr9",)
    length_mode: str = "error"
    length: int | None = None
    epochs: float = 20
    batch_size: int = 128
    learning_rate: float | None = None
    weight_decay: float = 0.0
    patience: int = 4
    eval_every: int | None = None
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False
    model_options: dict[str, Any] | None = None


#: The settings of train that the engine's TrainSettings takes as they are.
_TRAINER_SETTINGS = (
    "epochs",
    "batch_size",
    "weight_decay",
    "patience",
    "eval_every",
    "keep_checkpoints",
    "seed",
    "device",
)


def _trainer_settings(options: SeqTrainSettings, model: str) -> TrainSettings:
    """The engine Trainer's settings: ``options`` with the architecture's defaults."""
    defaults = ARCHITECTURE_DEFAULTS[model]
    return TrainSettings(
        learning_rate=options.learning_rate or defaults["learning_rate"],
        warmup=defaults.get("warmup", 0.0),
        **{name: getattr(options, name) for name in _TRAINER_SETTINGS},
    )


def train(
    data: SequenceData | str | os.PathLike | Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike,
    model: str = "cnn",
    labels: Sequence[str] | None = None,
    label_pattern: str | None = None,
    targets: Sequence[str] | None = None,
    genome: str | os.PathLike | None = None,
    task: str | None = None,
    settings: SeqTrainSettings | None = None,
    **overrides: Any,
) -> RunResult:
    """Train a sequence model and evaluate it on held-out sequences.

    Validation loss (and a checkpoint) every ``eval_every`` steps, by default each epoch.
    Writes into ``out``: the model (``model/``), checkpoints, the splits, the loss curve,
    test metrics, predictions, a parity plot (regression) or ROC/PR curves and a confusion
    matrix (classification), and an interactive view of the worst test predictions.

    Parameters
    ----------
    data
        :class:`SequenceData`, or FASTA files (one class each), a TSV/CSV table or a BED file.
    out
        The run directory.
    model
        ``linear``, ``cnn``, ``deep_cnn`` or ``transformer``.
    labels, label_pattern, targets, genome, task
        How the files are read, as in :func:`~genoformer.seq.io.load.load_sequences`.
    settings, **overrides
        How to train: a :class:`SeqTrainSettings`, and/or any of its fields by name
        (``epochs=3, split="chromosome"``), which replace the ones in ``settings``.
    """
    options = with_overrides(SeqTrainSettings, settings, overrides, "train")
    read = {
        "labels": labels,
        "label_pattern": label_pattern,
        "targets": targets,
        "genome": genome,
        "task": task,
    }
    arguments = {  # as the manifest recorded train's arguments when each was a parameter
        "out": out,
        "model": model,
        **read,
        **{f.name: getattr(options, f.name) for f in dataclasses.fields(options)},
        "data": data if not isinstance(data, SequenceData) else data.source,
    }
    seed, resume, overwrite = options.seed, options.resume, options.overwrite
    run = RunDir(
        out, command="seq train", arguments=arguments, seed=seed, resume=resume, overwrite=overwrite
    )
    with run.step("read"):
        sequences = _as_data(data, **read)
        sequences = harmonize_lengths(sequences, mode=options.length_mode, length=options.length)
        _check_learnable(sequences)
        parts = _split(
            sequences, options.split, seed, options.validation_chroms, options.test_chroms
        )
        for name, part in parts.items():
            run.record_output(f"split_{name}", _save_split(run, name, part))
    torch.manual_seed(seed)
    network = build_model(parts["train"], model, **(options.model_options or {}))
    with run.step("train"):
        trained = train_model(
            network,
            OneHotDataset(parts["train"]),
            OneHotDataset(parts["validation"]),
            run.path,
            _trainer_settings(options, model),
            resume=resume,
        )
        for key, path in trained.outputs.items():
            run.record_output(key, path)
    with run.step("evaluate"):
        metrics, outputs = evaluate_predictions(
            trained.model, parts["test"], run.path, label="test", device=options.device
        )
        for key, path in outputs.items():
            run.record_output(f"test_{key}", path)
    metrics = {
        **metrics,
        "n_parameters": int(sum(p.numel() for p in trained.model.parameters())),
        "best_validation_loss": trained.best_eval_loss,
        "steps": trained.global_step,
    }
    run.record_results("test", metrics)
    run.finish()
    return RunResult(run.path, metrics, {**trained.outputs, **outputs})


def evaluate(
    run: str | os.PathLike,
    *,
    data: SequenceData | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    overwrite: bool = False,
    **read_options: Any,
) -> RunResult:
    """Evaluate a trained model on its run's test split, or on other labelled data."""
    run_path = Path(run)
    model = load_model(run_path)
    if data is None:
        sequences = _load_split(run_path, "test", model.config)
    else:
        sequences = _in_model_terms(model, _as_data(data, **read_options))
    out_dir = Path(out) if out else run_path / "evaluation"
    arguments = {"run": run, "data": data}
    record = RunDir(out_dir, command="seq evaluate", arguments=arguments, overwrite=overwrite)
    metrics, outputs = evaluate_predictions(
        model, sequences, out_dir, label="evaluation", device=device
    )
    record.record_results("evaluation", metrics)
    record.finish()
    return RunResult(out_dir, metrics, outputs)


def predict(
    run: str | os.PathLike,
    data: SequenceData | str | os.PathLike | Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike,
    device: str = "auto",
    **read_options: Any,
) -> RunResult:
    """Predictions of a trained model for new sequences, written as a table (TSV/Parquet)."""
    model = load_model(run)
    sequences = _as_data(data, **{"targets": [], **read_options})  # no targets to read
    table = predictions_table(model, sequences, device)
    path = write_table(Path(out), table)
    return RunResult(path.parent, {"n": len(table)}, {"predictions": path})


#: Sequences used to turn filters into motifs; more adds little and costs memory.
MAX_PPM_SEQUENCES = 5_000


def _filter_activations(model: SequenceModel, x: np.ndarray, device: str) -> np.ndarray:
    """First-layer activations (after the ReLU) ``(N, F, L)``, computed in chunks."""
    first = model.local[:2].to(pick_device(device)).eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(x), 512):
            batch = torch.from_numpy(x[start : start + 512]).float().to(first[0].weight.device)
            chunks.append(first(batch).cpu().numpy())
    return np.concatenate(chunks)


def filter_motifs(
    model: SequenceModel,
    data: SequenceData,
    out_dir: Path,
    *,
    match_jaspar: bool = True,
    release: str | None = None,
    device: str = "auto",
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """First-layer filters as heatmaps, as motifs (PPMs from top activations) and logos,
    each matched against JASPAR with Tomtom. Returns the per-filter table and the files."""
    conv = model.first_conv
    weights = conv.weight.detach().cpu().numpy()
    n_filters, _, width = weights.shape
    outputs = {"filter_heatmaps": filter_heatmaps(weights, out_dir / "filter_heatmaps.png")[0]}
    x = data.subset(np.arange(min(len(data), MAX_PPM_SEQUENCES))).one_hot()
    found = activation_ppms(_filter_activations(model, x, device), x, width)
    table = pd.DataFrame(
        {
            "filter": [f"filter{i}" for i in range(n_filters)],
            "n_sites": found.n_sites,
            "consensus": ["".join("ACGT"[b] for b in p.argmax(axis=0)) for p in found.ppms],
            "information_bits": [float(information_content(p).sum()) for p in found.ppms],
        }
    )
    titles = [f"{r.filter} {r.consensus} ({r.n_sites} sites)" for r in table.itertuples()]
    active = np.flatnonzero(found.n_sites > 0)
    if match_jaspar and len(active):
        options = {} if release is None else {"motifs": load_jaspar(release=release)}
        matches = tomtom_matches(
            found.ppms[active], names=table["filter"].iloc[active].tolist(), **options
        )
        best = matches.set_index("query")[["target_id", "target_name", "target_family", "q_value"]]
        table = table.join(best, on="filter")
        titles = [
            title if pd.isna(r.target_name) else f"{title}\n{r.target_name} q={r.q_value:.2g}"
            for title, r in zip(titles, table.itertuples(), strict=True)
        ]
    outputs["filter_logos"] = logo_grid(found.ppms, titles, out_dir / "filter_logos.png")[0]
    outputs["filters"] = write_table(out_dir / "filters.tsv", table)
    return table, outputs


def _examples(model: SequenceModel, data: SequenceData, n: int, device: str) -> list[tuple]:
    """(target, indices) groups of sequences to explain: the most confident predictions
    of each class (classification) or the highest predictions (regression)."""
    logits = predict_logits(model, OneHotDataset(data), device=device)
    if model.config.task == "classification":
        per_class = max(1, -(-n // model.config.n_outputs))
        scores = softmax(logits)
        return [
            (c, np.argsort(-scores[:, c], kind="stable")[:per_class])
            for c in range(model.config.n_outputs)
        ]
    return [(None, np.argsort(-logits[:, 0], kind="stable")[:n])]


def interpret(
    run: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    data: SequenceData | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    n_sequences: int = 4,
    match_jaspar: bool = True,
    release: str | None = None,
    device: str = "auto",
    overwrite: bool = False,
    **read_options: Any,
) -> RunResult:
    """Explain a trained model.

    CNNs: first-layer filters as heatmaps and as motif logos matched against JASPAR
    (``filters.tsv``). Every model: in silico saturation mutagenesis and gradient x input
    for the ``n_sequences`` most confident predictions, drawn as sequence logos.
    """
    run_path = Path(run)
    model = load_model(run_path)
    sequences = (
        _load_split(run_path, "test", model.config)
        if data is None
        else _as_data(data, **read_options)
    )
    _check_compatible(model, sequences)
    out_dir = Path(out) if out else run_path / "interpretation"
    arguments = {"run": run, "data": data, "n_sequences": n_sequences, "release": release}
    record = RunDir(out_dir, command="seq interpret", arguments=arguments, overwrite=overwrite)
    outputs: dict[str, Path] = {}
    results: dict[str, Any] = {}
    if model.first_conv is not None:
        with record.step("filters"):
            table, written = filter_motifs(
                model,
                sequences,
                out_dir,
                match_jaspar=match_jaspar,
                release=release,
                device=device,
            )
            outputs.update(written)
            results["filters"] = table.to_dict(orient="records")
    with record.step("attributions"):
        for target, index in _examples(model, sequences, n_sequences, device):
            chosen = sequences.subset(index)
            x = chosen.one_hot()
            suffix = "" if target is None else f"_{model.config.classes[target]}"
            titles = [
                f"{i} ({label})" for i, label in zip(chosen.ids, _labels(chosen), strict=True)
            ]
            scores_by_method = {
                "ism": saturation_mutagenesis(model, x, target=target, center=True, device=device)
            }
            # The transformer reads discrete k-mer tokens, so it has no input gradient.
            if model.config.architecture != "transformer":
                scores_by_method["gradient_x_input"] = gradient_x_input(
                    model, x, target=target, device=device
                )
            for name, scores in scores_by_method.items():
                key = f"{name}{suffix}"
                outputs[key] = attribution_logos(scores, x, out_dir / f"{key}.png", titles=titles)[
                    0
                ]
                np.save(out_dir / f"{key}.npy", scores)
    for key, path in outputs.items():
        record.record_output(key, path)
    record.record_results("interpretation", results)
    record.finish()
    return RunResult(out_dir, results, outputs)


def _labels(data: SequenceData) -> list[str]:
    if data.task == "classification":
        return [data.classes[i] for i in data.targets]
    if data.task == "regression":
        return [f"{data.target_names[0]}={v:.3g}" for v in data.targets[:, 0]]
    return [""] * len(data)
