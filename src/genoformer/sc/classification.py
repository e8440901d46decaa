"""Cell classification: fine-tune a Geneformer-compatible model to predict a cell attribute.

``genoformer sc classify CORPUS --model DIR --label ATTR --out RUN`` is :func:`classify`: the
cells with a label (after the class filters of :mod:`genoformer.sc.splits`) are split
stratified by class, or grouped by an attribute, once or into k cross-validation folds; for
each split a :class:`~genoformer.sc.finetuning.CellClassifier` starts from the checkpoint's
encoder weights (any Geneformer checkpoint, a ``sc pretrain`` run or model, or a preset
initialised at random) and trains through the engine's Trainer set-up (warm-up, linear or
cosine decay, early stopping, checkpoints, ``--resume``), optionally with frozen layers,
layer-wise learning-rate decay or LoRA adapters. The test cells of every split are
predicted and scored: accuracy, macro F1, per-class precision/recall/F1, the confusion
matrix (counts and row-normalised), ROC AUC, with pictures.

``genoformer sc predict RUN CELLS`` is :func:`predict`: the run's classifier (the mean of
its folds' probabilities for a cross-validation run) labels the cells of a corpus.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError
from genoformer.engine.options import with_overrides
from genoformer.engine.runs import (
    MANIFEST,
    RunDir,
    RunResult,
    read_manifest,
    write_json,
    write_table,
)
from genoformer.sc.corpus import tokenize_record
from genoformer.sc.splits import CellLabels, Fold, cell_folds, cell_labels

if TYPE_CHECKING:
    import torch
    from transformers import BertModel

    from genoformer.sc.embeddings import _Tokens
    from genoformer.sc.finetuning import CellClassifier
    from genoformer.sc.vocabulary import GeneVocabulary

__all__ = ["ClassifySettings", "FinetuneSettings", "classify", "predict"]

#: Arguments that may change when a run is resumed (they do not change what is trained).
_RESUMABLE = {"resume", "overwrite", "device", "num_workers", "dictionaries"}
#: What the command of a classifier run is, in its manifest.
CLASSIFY_COMMAND = "sc classify"
GENE_COMMAND = "sc classify-genes"
FINETUNE_COMMANDS = (CLASSIFY_COMMAND, GENE_COMMAND)
PREDICTIONS = "predictions.tsv"
FOLDS = "folds"


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class FinetuneSettings:
    """How a fine-tuning run trains: what cell and gene classification share (each also a
    keyword argument of :func:`classify` / :func:`~genoformer.sc.gene_classification.
    classify_genes`, and a CLI flag).

    Attributes
    ----------
    folds
        1: one split; k > 1: k-fold cross-validation, every cell (gene) tested once.
    eval_share
        Share of each split's training cells (genes) held out for validation (early
        stopping, best checkpoint): one of ``round(1 / share)`` stratified parts.
    freeze_layers
        Freeze the embeddings and the first N encoder layers.
    layer_decay
        Learning rate times ``layer_decay ** depth`` (depth from the top: head 0, last layer
        1, embeddings ``layers + 1``); None: one rate.
    adapters, lora_rank, lora_alpha, lora_dropout
        ``lora``: train LoRA adapters on the attention projections and the heads only (peft);
        None: fine-tune the weights themselves.
    epochs, max_steps, batch_size, learning_rate, scheduler, warmup, weight_decay
        AdamW with warm-up (below 1 a share of the run, from 1 steps) then ``linear`` or
        ``cosine`` decay.
    eval_every, keep_checkpoints, patience
        Validate and checkpoint every ``eval_every`` steps (None: once an epoch), keep that
        many checkpoints (and the best), stop after ``patience`` validations without
        improvement (None: never).
    classifier_dropout
        Dropout before the head (None: the model's hidden dropout).
    seed, device, num_workers, resume, overwrite
        As :func:`~genoformer.sc.pretraining.pretrain`'s.
    """

    folds: int = 1
    eval_share: float = 0.1
    freeze_layers: int = 0
    layer_decay: float | None = None
    adapters: str | None = None
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 12
    learning_rate: float = 5e-5
    scheduler: str = "linear"
    warmup: float = 0.1
    weight_decay: float = 0.001
    eval_every: int | None = None
    keep_checkpoints: int = 1
    patience: int | None = None
    classifier_dropout: float | None = None
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    resume: bool = False
    overwrite: bool = False


@dataclass(frozen=True)
class ClassifySettings(FinetuneSettings):
    """How :func:`classify` fine-tunes: :class:`FinetuneSettings` and the cell classifier's
    own settings.

    Attributes
    ----------
    states
        Classify only cells of these classes (None: every class).
    rare_threshold
        Leave out classes with less than this share of the cells (Geneformer's
        ``rare_threshold``; 0: keep all).
    max_cells_per_class
        Keep at most this many cells of each class, chosen by ``seed``.
    test_share
        Share of the cells tested with one split (``folds=1``): one of
        ``round(1 / share)`` stratified (or grouped) parts.
    pooling
        ``auto`` (``cls`` for corpora with ``<cls>``, V2; ``mean`` otherwise), ``cls`` or
        ``mean`` (the mean over the cell's gene tokens).
    task_weights
        Several labels (multi-task): each task's weight in the loss (None: equal weights).
    """

    states: tuple[str, ...] | None = None
    rare_threshold: float = 0.0
    max_cells_per_class: int | None = None
    test_share: float = 0.2
    pooling: str = "auto"
    task_weights: tuple[float, ...] | None = None


def _check_settings(options: FinetuneSettings) -> None:
    """Refuse settings no run can use, naming the setting."""
    o = options
    checks = [
        (getattr(o, "pooling", "auto") in ("auto", "cls", "mean"), "pooling", "auto, cls or mean"),
        (
            0 <= getattr(o, "rare_threshold", 0.0) < 1,
            "rare_threshold",
            "a share between 0 and 1, e.g. 0.01",
        ),
        (o.batch_size >= 1, "batch_size", "1 or more cells"),
        (o.learning_rate > 0, "learning_rate", "a positive rate, e.g. 5e-5"),
        (o.weight_decay >= 0, "weight_decay", "0 or more"),
        (o.epochs > 0 or o.max_steps > 0, "epochs", "positive epochs or max_steps"),
        (o.eval_every is None or o.eval_every >= 1, "eval_every", "1 or more steps"),
        (o.keep_checkpoints >= 1, "keep_checkpoints", "1 or more"),
        (o.warmup >= 0, "warmup", "a share of the run (0.1) or a number of steps"),
        (o.adapters in (None, "lora"), "adapters", "lora (or none)"),
        (o.folds >= 1, "folds", "1 (one split) or more"),
    ]
    for ok, where, fix in checks:
        if not ok:
            raise InputError(f"{where} is {getattr(o, where)!r}", where=where, fix=f"use {fix}")


# ---------------------------------------------------------------------------------------------
# The model to start from


def _run_kind(path: Path) -> str | None:
    """The command of the run in ``path`` (or of the run whose ``model/`` it is)."""
    for folder in (path, path.parent):
        manifest = folder / MANIFEST
        if manifest.exists() and (folder == path or path.name == "model"):
            try:
                return json.loads(manifest.read_text()).get("command")
            except (OSError, ValueError):
                return None
    return None


def _architecture(path: Path) -> str | None:
    from genoformer.engine.checkpoints import checkpoint_config

    if not (path / "config.json").exists():
        return None
    return next(iter(checkpoint_config(path).get("architectures") or []), None)


def _is_classifier(path: Path) -> bool:
    """Whether ``path`` is a fine-tuned classifier (cell, gene or multi-task) or its run."""
    from genoformer.engine.checkpoints import checkpoint_config
    from genoformer.sc.finetuning import FINETUNED_ARCHITECTURES

    if _run_kind(path) in FINETUNE_COMMANDS:
        return True
    if not (path / "config.json").exists():
        return False
    architectures = checkpoint_config(path).get("architectures") or []
    return any(name in architectures for name in FINETUNED_ARCHITECTURES)


def pretrained_encoder(
    model: str | os.PathLike, vocab: GeneVocabulary, seed: int
) -> tuple[BertModel, str]:
    """The encoder to fine-tune: a checkpoint's (its weights loaded), a pretraining run's
    model, or a preset initialised with ``seed``; and where it came from."""
    from genoformer.sc.models import PRESETS, build_model, load_model

    path = Path(model)
    if path.exists():
        if _is_classifier(path):
            raise InputError(
                "is a gene classifier (a `sc classify-genes` run), not a pretrained model"
                if _run_kind(path) == GENE_COMMAND or _architecture(path) == "GeneClassifier"
                else "is a cell classifier (a `sc classify` run), not a pretrained model",
                file=path,
                fix="label cells with `genoformer sc predict RUN CELLS`, or fine-tune from the "
                "pretrained model that run started from (its manifest's arguments.model)",
            )
        if _run_kind(path) == "sc pretrain" and (path / "model").is_dir():
            path = path / "model"
        read_manifest(path.parent if path.name == "model" else path, what="pretraining run")
        return load_model(path, vocabulary=vocab, encoder_only=True), f"checkpoint {path}"
    if str(model) not in PRESETS:
        raise InputError(
            f"no checkpoint directory {str(model)!r} (and no such model preset)",
            where="model",
            fix="pass a Geneformer checkpoint, a `sc pretrain` run or model directory, or a "
            "preset (" + ", ".join(PRESETS) + ")",
        )
    return build_model(str(model), vocab, seed=seed).bert, f"preset {model} (random weights)"


def cell_pooling(options: ClassifySettings, vocab: GeneVocabulary) -> str:
    """The pooling a cell classifier uses: ``auto`` is ``cls`` with ``<cls>``, else ``mean``."""
    pooling = options.pooling
    if pooling == "auto":
        pooling = "cls" if vocab.has_cls_eos else "mean"
    if pooling == "cls" and not vocab.has_cls_eos:
        raise InputError(
            f"pooling 'cls' needs a <cls> token, and the {vocab.name} cells have none",
            where="pooling",
            fix="use pooling mean (the mean over the cell's genes), or a V2 corpus and model",
        )
    return pooling


def build_classifier(
    encoder: BertModel,
    labels: CellLabels,
    vocab: GeneVocabulary,
    options: ClassifySettings,
    label: str,
) -> CellClassifier:
    """A :class:`CellClassifier` holding ``encoder``'s weights, and its new head."""
    from genoformer.sc.finetuning import (
        CellClassifier,
        classifier_config,
        new_classifier,
        special_token_ids,
    )

    config = classifier_config(
        encoder.config,
        labels.classes,
        pooling=cell_pooling(options, vocab),
        special_token_ids=special_token_ids(vocab),
        label=label,
        vocabulary=vocab.name,
    )
    return new_classifier(CellClassifier, config, encoder, options)


# ---------------------------------------------------------------------------------------------
# Cells as training items


class LabelledCells:
    """Cells of a corpus as classifier items (a torch map dataset): ``input_ids``, ``labels``
    (``codes`` of shape ``(cells, tasks)`` for a multi-task classifier)."""

    def __init__(self, tokens: _Tokens, rows: np.ndarray, codes: np.ndarray | None) -> None:
        self.tokens = tokens
        self.rows = np.asarray(rows, dtype=np.int64)
        self.codes = None if codes is None else np.asarray(codes, dtype=np.int64)
        self.lengths = tokens.lengths[self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        start, end = self.tokens.offsets[row], self.tokens.offsets[row + 1]
        item: dict[str, Any] = {"input_ids": self.tokens.values[start:end]}
        if self.codes is not None and self.codes.ndim == 2:  # one label per task
            item["labels"] = tuple(int(code) for code in self.codes[index])
        elif self.codes is not None:
            item["labels"] = int(self.codes[index])
        return item


@dataclass(frozen=True)
class CellCollator:
    """Pads a batch to its longest cell with ``<pad>``, with the attention mask (and token
    labels with -100)."""

    pad_id: int

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        import torch

        width = max(len(item["input_ids"]) for item in items)
        inputs = np.full((len(items), width), self.pad_id, dtype=np.int64)
        attention = np.zeros((len(items), width), dtype=np.int64)
        for i, item in enumerate(items):
            inputs[i, : len(item["input_ids"])] = item["input_ids"]
            attention[i, : len(item["input_ids"])] = 1
        batch = {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.from_numpy(attention),
        }
        if "labels" in items[0] and isinstance(items[0]["labels"], np.ndarray):
            # A label per token (gene classification): padding is ignored by the loss.
            labels = np.full((len(items), width), -100, dtype=np.int64)
            for i, item in enumerate(items):
                labels[i, : len(item["labels"])] = item["labels"]
            batch["labels"] = torch.from_numpy(labels)
        elif "labels" in items[0]:
            # One label per cell, or one per task (a tuple) of a multi-task classifier.
            batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=torch.int64)
        return batch


def class_probabilities(
    model: Any,
    cells: LabelledCells,
    *,
    pad_id: int,
    batch_size: int,
    device: str,
    sizes: list[int] | None = None,
) -> np.ndarray:
    """Softmax probabilities of every cell, in ``cells``' order (batches run by length);
    with ``sizes`` (a multi-task model's class counts) a softmax over each task's columns."""
    from genoformer.engine.metrics import softmax
    from genoformer.engine.training import predict_logits
    from genoformer.sc.multitask import split_by_task

    order = np.argsort(-cells.lengths, kind="stable")
    ordered = LabelledCells(cells.tokens, cells.rows[order], None)
    logits = predict_logits(
        model, ordered, batch_size=batch_size, device=device, collate_fn=CellCollator(pad_id)
    )
    probabilities = np.empty_like(logits, dtype=np.float64)
    if sizes is None:
        probabilities[order] = softmax(logits)
    else:
        probabilities[order] = np.concatenate([softmax(x) for x in split_by_task(logits, sizes)], 1)
    return probabilities


# ---------------------------------------------------------------------------------------------
# Training one split


class EvalMetrics:
    """``compute_metrics``: accuracy and macro F1 of the validation cells at each evaluation."""

    def __call__(self, prediction: Any) -> dict[str, float]:
        from genoformer.engine.metrics import classification_metrics, softmax

        logits = np.asarray(prediction.predictions)
        labels = np.asarray(prediction.label_ids)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = classification_metrics(labels, softmax(logits))
        return {"accuracy": found["accuracy"], "macro_f1": found["macro_f1"]}


@dataclass
class _Data:
    """What every split of a run shares."""

    tokens: _Tokens
    labels: CellLabels
    vocab: GeneVocabulary
    encoder: BertModel
    label: str
    pad_id: int
    origin: str
    #: Every task's attribute and labels over the same cells (one task: ``label``'s).
    tasks: list[tuple[str, CellLabels]] = dataclasses.field(default_factory=list)

    @property
    def multitask(self) -> bool:
        return len(self.tasks) > 1

    @property
    def codes(self) -> np.ndarray:
        """Each classified cell's label id, or ids (``(cells, tasks)``) for several tasks."""
        if not self.multitask:
            return self.labels.codes
        return np.stack([labels.codes for _, labels in self.tasks], axis=1)


def _model_to_train(data: _Data, options: ClassifySettings) -> tuple[Any, Any, list[int] | None]:
    """The classifier (one head, or one per task), its validation metrics, and the tasks'
    class counts (None for one task)."""
    if not data.multitask:
        classifier = build_classifier(data.encoder, data.labels, data.vocab, options, data.label)
        return classifier, EvalMetrics(), None
    from genoformer.sc.multitask import TaskEvalMetrics, build_multitask

    pooling = cell_pooling(options, data.vocab)
    classifier = build_multitask(data.encoder, data.tasks, data.vocab, options, pooling)
    return classifier, TaskEvalMetrics(data.tasks), [len(t.classes) for _, t in data.tasks]


def _task_models(final: Any, data: _Data, out: Path) -> dict[str, Path]:
    """Each task's head on the shared encoder, saved as a classifier of its own."""
    from genoformer.engine.training import save_model_atomically
    from genoformer.sc.multitask import TASKS

    return {
        name: save_model_atomically(final.task_classifier(t), out / TASKS / name / "model")
        for t, (name, _) in enumerate(data.tasks)
    }


@dataclass(frozen=True)
class FineTuned:
    """What :func:`fine_tune` gives back."""

    #: The trained classifier, LoRA adapters folded into its weights.
    model: Any
    #: The engine's record of the training (``model_dir``, ``global_step``, ...).
    trained: Any
    #: Trainable and total parameters of the model trained.
    parameters: dict[str, int]
    seconds: float


def fine_tune(
    classifier: Any,
    train: LabelledCells,
    held: LabelledCells,
    out: Path,
    options: FinetuneSettings,
    *,
    pad_id: int,
    **trainer_options: Any,
) -> FineTuned:
    """Train ``classifier`` (cell, gene or multi-task) on ``train`` under the fine-tuning
    controls of ``options`` (frozen layers, LoRA, layer decay), validating on ``held``; the
    model goes to ``out/model``. ``trainer_options`` go to the engine's Trainer."""
    from genoformer.engine.training import save_model_atomically, train_model
    from genoformer.sc.finetuning import apply_controls, merged, parameter_counts, train_settings

    model, optimizer = apply_controls(classifier, options)
    parameters = parameter_counts(model)
    start = time.perf_counter()
    trained = train_model(
        model,
        train,
        held,
        out,
        train_settings(options, len(train)),
        resume=options.resume,
        data_collator=CellCollator(pad_id),
        optimizer_cls_and_kwargs=optimizer,
        **trainer_options,
    )
    seconds = time.perf_counter() - start
    final = merged(trained.model)
    if final is not trained.model:  # adapters folded in: save the plain classifier
        save_model_atomically(final, trained.model_dir)
    return FineTuned(final, trained, parameters, seconds)


def scoring_options(options: FinetuneSettings, pad_id: int) -> dict[str, Any]:
    """How a fine-tuned model predicts its test items: padding, batches, device."""
    return {"pad_id": pad_id, "batch_size": max(options.batch_size, 32), "device": options.device}


def train_split(data: _Data, fold: Fold, out: Path, options: ClassifySettings) -> dict[str, Any]:
    """Fine-tune on one split's training cells, validate on its validation cells, and
    predict its test cells; the model goes to ``out/model`` (a multi-task model's heads,
    each with the encoder, to ``out/tasks/<label>/model`` too)."""
    labels, codes = data.labels, data.codes
    classifier, compute_metrics, sizes = _model_to_train(data, options)

    def cells(which: np.ndarray) -> LabelledCells:
        return LabelledCells(data.tokens, labels.rows[which], codes[which])

    train, held = cells(fold.train), cells(fold.eval)
    tuned = fine_tune(
        classifier, train, held, out, options, pad_id=data.pad_id, compute_metrics=compute_metrics
    )
    trained = tuned.trained
    probabilities = class_probabilities(
        tuned.model, cells(fold.test), sizes=sizes, **scoring_options(options, data.pad_id)
    )
    per_epoch = max(1, math.ceil(len(train) / options.batch_size))
    epochs, rest = divmod(trained.global_step, per_epoch)
    seen = epochs * len(train) + rest * options.batch_size
    return {
        "probabilities": probabilities,
        "model": trained.model_dir,
        "task_models": _task_models(tuned.model, data, out) if data.multitask else {},
        "outputs": trained.outputs,
        "info": {
            **tuned.parameters,
            "steps": trained.global_step,
            "train_cells": len(train),
            "eval_cells": len(held),
            "test_cells": len(fold.test),
            "train_seconds": round(tuned.seconds, 3),
            "train_cells_per_second": round(seen / tuned.seconds, 2),
            "best_eval_loss": trained.best_eval_loss,
        },
    }


# ---------------------------------------------------------------------------------------------
# Scores, tables and pictures


def predictions_frame(
    obs: pd.DataFrame, rows: np.ndarray, probabilities: np.ndarray, classes: list[str]
) -> pd.DataFrame:
    """``cell_id``, ``cell_index``, ``predicted``, ``probability`` (of the predicted class),
    then ``p_<class>`` for every class, one row per cell of ``rows``."""
    best = probabilities.argmax(axis=1)
    frame = pd.DataFrame(
        {
            "cell_id": obs["cell_id"].to_numpy()[rows],
            "cell_index": obs["cell_index"].to_numpy()[rows],
            "predicted": np.asarray(classes, dtype=object)[best],
            "probability": probabilities[np.arange(len(best)), best],
        }
    )
    columns = pd.DataFrame(probabilities, columns=[f"p_{name}" for name in classes])
    return pd.concat([frame, columns], axis=1)


def _scores(codes: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict[str, Any]:
    from genoformer.engine.metrics import classification_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a small fold may lack a class: its AUROC is NaN
        return classification_metrics(codes, probabilities, classes=classes)


def _evaluate(
    run: RunDir,
    labels: CellLabels,
    tested: np.ndarray,
    probabilities: np.ndarray,
    prefix: str = "",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pooled scores of every tested cell, the per-class and confusion tables, the pictures
    (in ``prefix``, a multi-task run's ``tasks/<label>/``)."""
    from genoformer.engine.metrics import per_class_metrics
    from genoformer.engine.plots import confusion_matrix_plot, roc_pr_curves

    classes = labels.classes
    codes = labels.codes[tested]
    scores = _scores(codes, probabilities, classes)
    per_class = pd.DataFrame(per_class_metrics(codes, probabilities, classes=classes))
    matrix = np.asarray(scores["confusion_matrix"])
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    frame = pd.DataFrame(matrix, columns=classes).assign(true=classes).set_index("true")
    files: dict[str, Any] = {
        "per_class": write_table(run.file(f"{prefix}per_class.tsv"), per_class),
        "confusion": write_table(run.file(f"{prefix}confusion_matrix.tsv"), frame.reset_index()),
        "confusion_normalised": write_table(
            run.file(f"{prefix}confusion_matrix_normalised.tsv"),
            pd.DataFrame(normalised, columns=classes).assign(true=classes)[["true", *classes]],
        ),
    }
    n = len(codes)
    for key, name, normalize, title in (
        ("confusion_figure", "confusion_counts", False, "Confusion matrix"),
        ("confusion_normalised_figure", "confusion_normalised", True, "Share of each true class"),
    ):
        files[key] = confusion_matrix_plot(
            matrix,
            classes,
            run.file(f"{prefix}figures/{name}"),
            normalize=normalize,
            title=f"{title} ({n:,} test cells)",
        )
    files["roc"] = roc_pr_curves(
        codes, probabilities, run.file(f"{prefix}figures/roc_pr"), classes=classes
    )
    keep = ("accuracy", "macro_f1", "precision", "recall", "auroc", "auprc", "n")
    metrics = {key: scores[key] for key in keep}
    metrics["per_class_f1"] = dict(zip(per_class["class"], per_class["f1"], strict=True))
    return metrics, files


def _fold_summary(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in ("accuracy", "macro_f1", "auroc"):
        values = np.array([f[key] for f in per_fold], dtype=np.float64)
        summary[f"{key}_mean"] = float(np.nanmean(values)) if np.isfinite(values).any() else None
        summary[f"{key}_sd"] = float(np.nanstd(values, ddof=1)) if len(values) > 1 else 0.0
    return summary


def _split_table(data: _Data, folds: list[Fold]) -> pd.DataFrame:
    """Which split every classified cell is in, in each fold."""
    labels, obs = data.labels, data.tokens.obs
    parts = []
    for fold in folds:
        for split, which in (("train", fold.train), ("eval", fold.eval), ("test", fold.test)):
            rows = labels.rows[which]
            parts.append(
                pd.DataFrame(
                    {
                        "fold": fold.name,
                        "split": split,
                        "row": rows,
                        "cell_id": obs["cell_id"].to_numpy()[rows],
                        "cell_index": obs["cell_index"].to_numpy()[rows],
                        "label": np.asarray(labels.classes, dtype=object)[labels.codes[which]],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# The public API


def _read_cells(
    corpus: str | os.PathLike,
    vocabulary: GeneVocabulary | str | os.PathLike | None,
    dictionaries: str | os.PathLike | None,
) -> tuple[_Tokens, GeneVocabulary]:
    from genoformer.sc.corpus import load_corpus
    from genoformer.sc.embeddings import _corpus_tokens, _resolve_vocabulary

    path = Path(corpus)
    tokens = _corpus_tokens(load_corpus(path), str(path), None)
    return tokens, _resolve_vocabulary(vocabulary, dictionaries, path, tokens)


def _column(tokens: _Tokens, name: str, what: str) -> pd.Series:
    obs = tokens.obs
    if name not in obs.columns or name in ("cell_id", "cell_index"):
        attributes = [c for c in obs.columns if c not in ("cell_id", "cell_index")]
        raise InputError(
            f"no cell attribute {name!r} in the corpus (it has: "
            + (", ".join(attributes) or "none")
            + ")",
            file=tokens.source,
            where=what,
            fix="tokenize with --attribute for that obs column, or pick one of those",
        )
    return obs[name]


def run_arguments(
    corpus: Path,
    out: Path,
    model: Any,
    inputs: dict[str, Any],
    vocabulary: Any,
    dictionaries: Any,
    options: FinetuneSettings,
) -> dict[str, Any]:
    """A fine-tuning run's arguments, as its manifest records them: ``inputs`` are what the
    run classifies (the label and group_by attributes, or the gene classes file)."""
    arguments = {
        "corpus": os.path.abspath(corpus),
        "out": os.path.abspath(out),
        "model": str(model),
        **inputs,
        "vocabulary": vocabulary
        if vocabulary is None or isinstance(vocabulary, (str, os.PathLike))
        else vocabulary.name,
        "dictionaries": dictionaries,
        **dataclasses.asdict(options),
    }
    return json.loads(json.dumps(arguments, default=str))


def check_out(out: Path, arguments: dict[str, Any], options: FinetuneSettings, what: str) -> None:
    """Refuse an ``out`` that holds another run, or (resumed) a run of other arguments;
    ``what`` names the run in the message."""
    from genoformer.sc.pretraining import _check_run_dir

    _check_run_dir(out, options.resume, arguments, resumable=_RESUMABLE, what=what)


def finetune_run_dir(
    out: Path, command: str, arguments: dict[str, Any], options: FinetuneSettings
) -> RunDir:
    """The run directory of a fine-tuning run, resumed or overwritten as ``options`` say."""
    return RunDir(
        out,
        command=command,
        arguments=arguments,
        seed=options.seed,
        resume=options.resume,
        overwrite=options.overwrite,
    )


@shared_docs
def classify(
    corpus: str | os.PathLike,
    *,
    out: str | os.PathLike,
    model: str | os.PathLike,
    label: str | Sequence[str],
    group_by: str | None = None,
    vocabulary: GeneVocabulary | str | os.PathLike | None = None,
    dictionaries: str | os.PathLike | None = None,
    settings: ClassifySettings | None = None,
    **overrides: Any,
) -> RunResult:
    """Fine-tune a Geneformer-compatible model to classify cells by ``label`` (several
    labels: one encoder, one head per label, see :mod:`genoformer.sc.multitask`).

    Parameters
    ----------
    corpus
        A corpus directory (``genoformer sc tokenize`` with ``--attribute LABEL``, or
        Geneformer's tokenizer) holding the label attribute.
    out
        The run directory: ``model/`` (one split) or ``folds/fold_<k>/model/``,
        ``checkpoints/``, ``loss_curve.*``, ``predictions.tsv``, ``per_class.tsv``,
        ``confusion_matrix*.tsv``, ``figures/``, ``splits.parquet``, ``metrics.json``.
    model
        A Geneformer checkpoint directory, a ``sc pretrain`` run (or its ``model/``), or a
        preset (``tiny``, ``gf-6L-30M-i2048`` ...) initialised at random.
    label
        The cell attribute to predict, or several (multi-task: ``tasks/<label>/`` holds each
        task's tables and pictures, ``folds/fold_<k>/tasks/<label>/model/`` or
        ``tasks/<label>/model/`` each head with the encoder; ``task_weights`` weigh the
        tasks' losses).
    group_by
        A cell attribute (donor, sample, batch) whose groups never straddle two splits.
    {corpus_vocabulary}
    {settings:ClassifySettings}

    Returns
    -------
    RunResult
        ``metrics``: ``accuracy``, ``macro_f1``, ``auroc`` ... of every tested cell (pooled
        over folds), ``folds`` (each fold's), their means and standard deviations, class
        counts, trainable and total parameters (several labels: these per task, under
        ``tasks``); ``outputs``: the files above.
    """
    start = time.perf_counter()
    options = with_overrides(ClassifySettings, settings, overrides, "classify")
    _check_settings(options)
    tasks = [label] if isinstance(label, str) else list(label)
    from genoformer.sc.multitask import task_weights

    task_weights(tasks, options.task_weights)
    label = tasks[0] if len(tasks) == 1 else tasks  # one label: recorded as before
    corpus, out = Path(corpus), Path(out)
    inputs = {"label": label, "group_by": group_by}
    arguments = run_arguments(corpus, out, model, inputs, vocabulary, dictionaries, options)
    check_out(out, arguments, options, "classification")
    data, folds = _prepare(corpus, model, tasks, group_by, vocabulary, dictionaries, options)
    run = finetune_run_dir(out, CLASSIFY_COMMAND, arguments, options)
    outputs: dict[str, Any] = {
        "splits": write_table(run.file("splits.parquet"), _split_table(data, folds))
    }
    per_fold, tested, probabilities, info = _run_folds(run, data, folds, options)
    found = {}
    with run.step("evaluate"):
        for name, labels in data.tasks:
            prefix = f"tasks/{name}/" if data.multitask else ""
            found[name], files = _evaluate_task(
                run, data, labels, folds, tested, probabilities[name], per_fold[name], prefix
            )
            outputs.update({f"{prefix}{key}": path for key, path in files.items()})
    if data.multitask:
        metrics: dict[str, Any] = {
            "tasks": found,
            "task_weights": task_weights(tasks, options.task_weights),
        }
    else:
        metrics = found[tasks[0]]
    metrics.update(
        label=label,
        group_by=group_by,
        vocabulary=data.vocab.name,
        model=data.origin,
        **info,
        seconds=round(time.perf_counter() - start, 3),
    )
    outputs["metrics"] = write_json(out / "metrics.json", metrics)
    run.record_results("classify", metrics)
    return run.finish(metrics, outputs)


def _evaluate_task(
    run: RunDir,
    data: _Data,
    labels: CellLabels,
    folds: list[Fold],
    tested: list[np.ndarray],
    probabilities: list[np.ndarray],
    per_fold: list[dict[str, Any]],
    prefix: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One task's pooled scores, tables and pictures, and its predictions table."""
    order = np.concatenate(tested)
    pooled = np.concatenate(probabilities)
    metrics, files = _evaluate(run, labels, order, pooled, prefix)
    table = predictions_frame(data.tokens.obs, labels.rows[order], pooled, labels.classes)
    table.insert(2, "fold", np.repeat([f.name for f in folds], [len(t) for t in tested]))
    table.insert(3, "label", np.asarray(labels.classes, dtype=object)[labels.codes[order]])
    files = {"predictions": write_table(run.file(f"{prefix}{PREDICTIONS}"), table), **files}
    metrics.update(_fold_summary(per_fold) if len(folds) > 1 else {})
    metrics.update(
        folds=per_fold if len(folds) > 1 else None,
        classes=labels.counts(),
        dropped_cells={k: v for k, v in labels.dropped.items() if v},
    )
    return metrics, files


def _prepare(
    corpus: Path,
    model: Any,
    tasks: list[str],
    group_by: str | None,
    vocabulary: Any,
    dictionaries: Any,
    options: ClassifySettings,
) -> tuple[_Data, list[Fold]]:
    """The corpus, its labels and splits, and the encoder, all checked before any training."""
    from genoformer.sc.embeddings import _check_input_size
    from genoformer.sc.multitask import task_labels

    tokens, vocab = _read_cells(corpus, vocabulary, dictionaries)
    columns = {name: _column(tokens, name, "label") for name in tasks}
    groups = _column(tokens, group_by, "group_by") if group_by is not None else None
    if len(tasks) == 1:
        labels = cell_labels(
            columns[tasks[0]],
            source=tokens.source,
            attribute=tasks[0],
            states=options.states,
            rare_threshold=options.rare_threshold,
            max_cells_per_class=options.max_cells_per_class,
            seed=options.seed,
        )
        by_task = [(tasks[0], labels)]
    else:
        by_task = task_labels(columns, source=tokens.source, options=options)
        labels = by_task[0][1]
    folds = cell_folds(
        labels,
        groups=None if groups is None else groups.to_numpy()[labels.rows],
        folds=options.folds,
        test_share=options.test_share,
        eval_share=options.eval_share,
        seed=options.seed,
        source=tokens.source,
        group_by=group_by,
    )
    encoder, origin = pretrained_encoder(model, vocab, options.seed)
    _check_input_size(encoder, tokens, tokenize_record(corpus), str(model))
    pad = vocab.pad_id if vocab.pad_id is not None else int(encoder.config.pad_token_id or 0)
    return _Data(tokens, labels, vocab, encoder, tasks[0], pad, origin, by_task), folds


def _saved_predictions(data: _Data, where: Path) -> dict[str, Path]:
    """Where a split's test predictions go, for each task."""
    from genoformer.sc.multitask import TASKS

    if not data.multitask:
        return {data.label: where / PREDICTIONS}
    return {name: where / TASKS / name / PREDICTIONS for name, _ in data.tasks}


def _read_predictions(data: _Data, saved: dict[str, Path]) -> dict[str, np.ndarray]:
    """Each task's test probabilities of a split, read back from its predictions tables."""
    found = {}
    for name, labels in data.tasks:
        table = pd.read_csv(saved[name], sep="\t")
        found[name] = table[[f"p_{c}" for c in labels.classes]].to_numpy(np.float64)
    return found


def trained_or_read_back(
    run: RunDir,
    fold: Fold,
    saved: Iterable[Path],
    read_back: Callable[[], Any],
    train: Callable[[], tuple[Any, dict[str, Any]]],
) -> tuple[Any, dict[str, Any]]:
    """A fold's results and what its training recorded: read back (``read_back``) when a
    resumed run finished the fold and its ``saved`` files are there, else trained now
    (``train``, as the run's step ``train <fold>``)."""
    step = f"train {fold.name}"
    if run.is_done(step) and all(path.exists() for path in saved):
        return read_back(), run.manifest["results"].get(fold.name, {})
    with run.step(step):
        return train()


def _train_and_save(
    run: RunDir, data: _Data, fold: Fold, where: Path, options: ClassifySettings
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train one split, write each task's test predictions, record its models."""
    from genoformer.sc.multitask import split_by_task

    trained = train_split(data, fold, where, options)
    sizes = [len(labels.classes) for _, labels in data.tasks]
    parts = split_by_task(trained["probabilities"], sizes) if data.multitask else None
    found = {
        name: trained["probabilities"] if parts is None else parts[t]
        for t, (name, _) in enumerate(data.tasks)
    }
    rows = data.labels.rows[fold.test]
    for (name, labels), path in zip(
        data.tasks, _saved_predictions(data, where).values(), strict=True
    ):
        write_table(path, predictions_frame(data.tokens.obs, rows, found[name], labels.classes))
    if data.multitask:
        models = {f"{fold.name}_multitask": trained["model"]}
        models.update({f"{n}:{fold.name}_model": m for n, m in trained["task_models"].items()})
    else:
        models = {f"{fold.name}_model": trained["model"]}
    run.record_outputs(models)
    run.record_results(fold.name, trained["info"])
    return found, trained["info"]


def _run_folds(
    run: RunDir, data: _Data, folds: list[Fold], options: ClassifySettings
) -> tuple[dict[str, list], list[np.ndarray], dict[str, list], dict[str, Any]]:
    """Train every split (a finished fold of a resumed run is read back) and score it: each
    task's per-fold scores and test probabilities, the test cells of each fold."""
    per_fold: dict[str, list] = {name: [] for name, _ in data.tasks}
    probabilities: dict[str, list] = {name: [] for name, _ in data.tasks}
    tested, info = [], {}
    for fold in folds:
        where = run.path if len(folds) == 1 else run.path / FOLDS / fold.name
        saved = _saved_predictions(data, where)
        found, fold_info = trained_or_read_back(
            run,
            fold,
            saved.values(),
            functools.partial(_read_predictions, data, saved),
            functools.partial(_train_and_save, run, data, fold, where, options),
        )
        for name, labels in data.tasks:
            scores = _scores(labels.codes[fold.test], found[name], labels.classes)
            keep = {k: scores[k] for k in ("accuracy", "macro_f1", "auroc")}
            per_fold[name].append({"fold": fold.name, **keep, **fold_info})
            probabilities[name].append(found[name])
        tested.append(fold.test)
        info = {k: fold_info.get(k) for k in ("trainable_parameters", "total_parameters")}
    first = per_fold[data.tasks[0][0]]
    info["train_seconds"] = round(sum(f.get("train_seconds", 0.0) for f in first), 3)
    return per_fold, tested, probabilities, info


# ---------------------------------------------------------------------------------------------
# Labelling new cells


def _classifier_models(run: Path, task: str | None) -> tuple[list[Path], dict[str, Any], str]:
    """The model directories of a finished classification run (one per fold; of one task
    of a multi-task run), its manifest and the label they predict; anything else (a
    pretrained model, another command's run) is refused."""
    kind = _run_kind(run)
    if kind != CLASSIFY_COMMAND:
        what = "a pretrained model" if kind in (None, "sc pretrain") else f"a `{kind}` run"
        raise InputError(
            f"is {what}, not a cell classifier (a `sc classify` run)",
            file=run,
            fix="fine-tune it first: `genoformer sc classify CORPUS --model "
            f"{run} --label ATTR --out RUN`, then predict with that RUN",
        )
    manifest = read_manifest(run, what="classification run")
    label = manifest.get("arguments", {}).get("label")
    label, prefix = _chosen_task(run, label, task)
    models = [
        run / path
        for key, path in sorted(manifest.get("outputs", {}).items())
        if key.endswith("_model") and key.startswith(prefix) and (prefix or ":" not in key)
    ]
    if not models:
        raise InputError("the run holds no classifier", file=run / MANIFEST, where="outputs")
    return models, manifest, label


def _chosen_task(run: Path, label: Any, task: str | None) -> tuple[Any, str]:
    """The label a prediction is for, and the prefix of its models' keys in the manifest
    (``<label>:`` for a task of a multi-task run, "" for a one-label run)."""
    if not isinstance(label, list):
        if task is not None and task != label:
            raise InputError(
                f"the run classifies {label!r} only, and task {task!r} was asked for",
                file=run,
                where="task",
                fix=f"leave out --task, or give --task {label}",
            )
        return label, ""
    if task not in label:
        asked = "no task was chosen" if task is None else f"it has no task {task!r}"
        raise InputError(
            f"is a multi-task run ({', '.join(label)}) and {asked}",
            file=run,
            where="task",
            fix="choose the head to predict with: --task " + " or --task ".join(label),
        )
    return task, f"{task}:"


def _load_config(path: Path) -> Any:
    from transformers import BertConfig

    return BertConfig.from_pretrained(path)


def _load_classifiers(models: list[Path], vocab: GeneVocabulary) -> list[CellClassifier]:
    from genoformer.engine.checkpoints import load_pretrained
    from genoformer.sc.finetuning import CellClassifier
    from genoformer.sc.models import _quiet_transformers, check_vocabulary

    loaded = []
    for path in models:
        with _quiet_transformers():
            model = load_pretrained(CellClassifier, path, attn_implementation="sdpa")
        check_vocabulary(model.config, vocab, path / "config.json")
        if getattr(model.config, "vocabulary", vocab.name) != vocab.name:
            raise InputError(
                f"the classifier reads cells tokenized with the {model.config.vocabulary} "
                f"vocabulary, and the corpus was tokenized with {vocab.name}",
                file=path / "config.json",
                where="vocabulary",
                fix=f"tokenize the cells with --vocabulary {model.config.vocabulary}",
            )
        loaded.append(model.eval())
    return loaded


def predict(
    run: str | os.PathLike,
    cells: str | os.PathLike,
    *,
    out: str | os.PathLike,
    vocabulary: GeneVocabulary | str | os.PathLike | None = None,
    dictionaries: str | os.PathLike | None = None,
    batch_size: int = 32,
    device: str = "auto",
    overwrite: bool = False,
    task: str | None = None,
) -> RunResult:
    """Label the cells of a corpus with the classifier of a ``sc classify`` run (of a
    multi-task run: the head of ``task``, one of its labels).

    A cross-validation run's fold models each predict, and their probabilities are
    averaged. Writes ``out/predictions.tsv``: ``cell_id``, ``cell_index``, ``predicted``,
    ``probability`` and ``p_<class>``; and, when the corpus holds the run's label
    attribute, ``label`` and the scores against it. ``cells`` may be an .h5ad: it is
    tokenized with the run's vocabulary, and ``out/cells.h5ad`` is a copy of it with the
    labels and probabilities in ``.obs`` / ``.obsm`` (:mod:`genoformer.sc.labelling`).
    """
    # An .h5ad's corpus is a scratch one: the table and the labelled copy are the outputs.
    with tempfile.TemporaryDirectory(prefix="genoformer-predict.") as scratch:
        return _predict(
            run,
            cells,
            out,
            vocabulary,
            dictionaries,
            batch_size,
            device,
            overwrite,
            task,
            Path(scratch),
        )


def _predict(
    run: Any,
    cells: Any,
    out: Any,
    vocabulary: Any,
    dictionaries: Any,
    batch_size: int,
    device: str,
    overwrite: bool,
    task: str | None,
    scratch: Path,
) -> RunResult:
    from genoformer.sc.embeddings import _check_input_size
    from genoformer.sc.labelling import (
        ADATA_FILE,
        is_cells_file,
        run_vocabulary,
        tokenize_cells,
        write_labelled,
    )

    run, out, source = Path(run), Path(out), Path(cells)
    models, manifest, label = _classifier_models(run, task)
    if is_cells_file(source):  # an .h5ad: tokenized here with the run's vocabulary
        if vocabulary is None:
            vocabulary = run_vocabulary(manifest, _load_config(models[0]))
        cells = tokenize_cells(source, scratch / "corpus", vocabulary, dictionaries, label)
    tokens, vocab = _read_cells(Path(cells), vocabulary, dictionaries)
    classifiers = _load_classifiers(models, vocab)
    config = classifiers[0].config
    _check_input_size(classifiers[0].bert, tokens, tokenize_record(cells), str(models[0]))
    arguments = {"run": os.path.abspath(run), "cells": os.path.abspath(source), "out": str(out)}
    if task is not None:
        arguments["task"] = task
    written = RunDir(out, command="sc predict", arguments=arguments, overwrite=overwrite)
    classes = [config.id2label[i] for i in range(config.num_labels)]
    everything = LabelledCells(tokens, np.arange(len(tokens)), None)
    pad = vocab.pad_id if vocab.pad_id is not None else int(config.pad_token_id or 0)
    with written.step("predict"):
        probabilities = np.mean(
            [
                class_probabilities(m, everything, pad_id=pad, batch_size=batch_size, device=device)
                for m in classifiers
            ],
            axis=0,
        )
    table = predictions_frame(tokens.obs, everything.rows, probabilities, classes)
    metrics: dict[str, Any] = {"n_cells": len(table), "models": len(classifiers)}
    if label in tokens.obs.columns:
        truth = tokens.obs[label].astype(str).to_numpy()
        table.insert(2, "label", truth)
        known = np.isin(truth, classes)
        codes = np.array([classes.index(t) for t in truth[known]], dtype=np.int64)
        if known.any():
            scores = _scores(codes, probabilities[known], classes)
            metrics.update(accuracy=scores["accuracy"], macro_f1=scores["macro_f1"])
            metrics["scored_cells"] = int(known.sum())
    outputs = {"predictions": write_table(written.file(PREDICTIONS), table)}
    if is_cells_file(source):
        outputs["adata"] = write_labelled(
            source, written.file(ADATA_FILE), table, probabilities, str(label)
        )
    written.record_results("predict", metrics)
    return written.finish(metrics, outputs)
