"""Masked-language-model pretraining of Geneformer-compatible models on tokenized corpora.

``genoformer sc pretrain CORPUS --out DIR`` is :func:`pretrain`: a preset (``tiny``,
``small``, a published architecture) or a checkpoint to continue from learns to predict
hidden genes of each cell from the others (:mod:`genoformer.sc.masking`: 15% of the gene
tokens, 80/10/10 mask/random/keep, special tokens never chosen). Training runs through
:func:`genoformer.engine.training.train_model`: AdamW, warm-up then linear or cosine decay,
length-grouped batches padded to their longest cell, checkpoints every ``eval_every`` steps
with a kept maximum, resume after a kill, a loss curve, several processes under
``torchrun``. A held-out share of the cells (chosen by the seed) measures the masked-gene
loss and accuracy at every evaluation, against a baseline that predicts each hidden gene
by its frequency in the training cells.

Defaults are the schedule Geneformer pretrained its models with (learning rate 1e-3, linear
decay, weight decay 0.001, 3 epochs, 12 cells per device; Geneformer's 10,000 warm-up steps
are capped at a tenth of the run, so that a small run is not all warm-up).

The output layer is computed at the masked positions only: the loss is the same as
``BertForMaskedLM``'s, and the vocabulary-sized output of the other 85% of positions, most
of a small model's work, is never formed. The saved model is a plain ``BertForMaskedLM``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM, SchedulerType

from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError, setting
from genoformer.engine.options import with_overrides
from genoformer.engine.runs import (
    MANIFEST,
    RunDir,
    RunResult,
    check_resume_arguments,
    check_run_path,
    write_json,
    write_table,
)
from genoformer.engine.training import (
    CHECKPOINTS,
    TrainSettings,
    length_grouping,
    steps_per_epoch,
    train_model,
    world_size,
)
from genoformer.sc.corpus import load_corpus, tokenize_record
from genoformer.sc.masking import (
    HELD_OUT_STREAM,
    IGNORE,
    TRAIN_STREAM,
    MaskedCells,
    MaskingRule,
    PadCollator,
)
from genoformer.sc.models import PRESETS, as_masked_gene_lm, build_model, load_model
from genoformer.sc.vocabulary import GeneVocabulary, corpus_vocabulary

if TYPE_CHECKING:
    import datasets
    from transformers import EvalPrediction

__all__ = ["PretrainSettings", "frequency_baseline", "pretrain"]

#: Geneformer's pretraining warm-up (training_args of its published models).
GENEFORMER_WARMUP_STEPS = 10_000
#: Share of a run that the default warm-up may take at most.
MAX_WARMUP_SHARE = 0.1
#: By default the held-out cells are evaluated once per epoch, and at least this often (in
#: steps): an epoch of a large corpus is hours long.
EVAL_EVERY_AT_MOST = 1000
#: Tokens whose ids are checked before training (the rest are checked as they are read).
CHECK_TOKENS = 200_000_000
#: Cells per block when counting token frequencies.
_BLOCK = 8192
#: Arguments that may change when a run is resumed (they do not change what is trained).
_RESUMABLE = {"resume", "overwrite", "device", "num_workers", "dictionaries"}


# ---------------------------------------------------------------------------------------------
# Held-out metrics during training


def masked_position_sums(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per cell of a batch: summed cross-entropy, correct predictions and number of masked
    positions, from :class:`MaskedGeneLM`'s one-row-per-masked-position logits."""
    chosen = labels != IGNORE
    cell = chosen.nonzero()[:, 0]
    targets = labels[chosen]
    losses = F.cross_entropy(logits.float(), targets, reduction="none")
    correct = (logits.argmax(-1) == targets).float()
    sums = torch.zeros(labels.shape[0], 3, dtype=torch.float32, device=logits.device)
    sums[:, 0].index_add_(0, cell, losses)
    sums[:, 1].index_add_(0, cell, correct)
    sums[:, 2].index_add_(0, cell, torch.ones_like(losses))
    return sums


class HeldOutMetrics:
    """``compute_metrics`` for batched evaluation: masked-gene loss (mean over masked
    positions, not over batches) and accuracy (share of masked positions predicted right)."""

    def __init__(self) -> None:
        self.sums = np.zeros(3)

    def __call__(self, prediction: EvalPrediction, compute_result: bool = True) -> dict[str, float]:
        sums = prediction.predictions
        if isinstance(sums, torch.Tensor):
            sums = sums.detach().cpu().numpy()
        self.sums += np.asarray(sums, dtype=np.float64).reshape(-1, 3).sum(axis=0)
        if not compute_result:
            return {}
        loss, correct, count = self.sums
        self.sums = np.zeros(3)
        count = max(count, 1.0)
        return {"mlm_loss": loss / count, "accuracy": correct / count, "masked": count}


# ---------------------------------------------------------------------------------------------
# The corpus


@dataclass
class _Corpus:
    cells: datasets.Dataset  # input_ids of every corpus, concatenated
    paths: list[Path]
    starts: np.ndarray  # first row of each corpus
    lengths: np.ndarray  # tokens per cell, untruncated
    records: dict[Path, dict]  # what each manifest recorded about the tokenization

    def source(self, row: int) -> tuple[Path, int]:
        """The corpus path and the row in it of a concatenated row."""
        which = int(np.searchsorted(self.starts, row, side="right") - 1)
        return self.paths[which], int(row - self.starts[which])


def _list_lengths(column: Any) -> np.ndarray:
    import pyarrow.compute as pc

    parts = [pc.list_value_length(chunk).fill_null(0).to_numpy() for chunk in column.chunks]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _read_corpora(paths: Sequence[Path]) -> _Corpus:
    import datasets

    parts, records = [], {}
    for path in paths:
        corpus = load_corpus(path)
        if corpus._indices is not None:  # a selection saved with its index mapping
            corpus = corpus.flatten_indices()
        parts.append(corpus.select_columns(["input_ids"]))
        records[path] = tokenize_record(path)
    try:
        cells = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    except ValueError as error:
        raise InputError(
            f"the corpora cannot be read as one ({error})",
            file=paths[0],
            fix="pretrain on corpora tokenized with the same vocabulary",
        ) from None
    counts = np.array([len(p) for p in parts])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lengths = _list_lengths(cells.data.table.column("input_ids"))
    return _Corpus(cells, list(paths), starts, lengths, records)


def _check_tokens(corpus: _Corpus, vocab_size: int) -> None:
    """Token ids below the model's vocabulary size, on the first :data:`CHECK_TOKENS`."""
    import pyarrow.compute as pc

    column = corpus.cells.data.table.column("input_ids")
    first_row = scanned = 0
    for chunk in column.chunks:
        values = pc.list_flatten(chunk)
        if len(values):
            low, high = (v.as_py() for v in pc.min_max(values).values())
            if low < 0 or high >= vocab_size:
                flat = values.to_numpy()
                at = int(np.flatnonzero((flat < 0) | (flat >= vocab_size))[0])
                lengths = pc.list_value_length(chunk).fill_null(0).to_numpy()
                row = first_row + int(np.searchsorted(np.cumsum(lengths), at, side="right"))
                path, local = corpus.source(row)
                raise InputError(
                    f"token id {int(flat[at])} is outside the model's vocabulary of "
                    f"{vocab_size:,} tokens",
                    file=path,
                    where=f"cell {local}",
                    fix="pretrain with the vocabulary (and a model of its size) that the corpus "
                    "was tokenized with",
                )
        first_row += len(chunk)
        scanned += len(values)
        if scanned >= CHECK_TOKENS:
            return


def _check_lengths(corpus: _Corpus, lengths: np.ndarray, max_positions: int) -> None:
    too_long = np.flatnonzero(lengths > max_positions)
    if too_long.size:
        path, row = corpus.source(int(too_long[0]))
        raise InputError(
            f"{too_long.size:,} cells are longer than the model's {max_positions:,} "
            f"positions (this one has {int(lengths[too_long[0]]):,} tokens)",
            file=path,
            where=f"cell {row}",
            fix="use a model whose input size fits the corpus (V1 corpora: 2,048; V2: 4,096), "
            f"or truncate cells explicitly with --max-length {max_positions}",
        )


def truncated_lengths(lengths: np.ndarray, max_length: int | None) -> np.ndarray:
    """Tokens per cell after truncation to ``max_length``."""
    return lengths if max_length is None else np.minimum(lengths, max_length)


def _split(
    n_cells: int, held_out: float, max_cells: int | None, seed: int, source: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out rows (sorted), both chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    rows = np.arange(n_cells)
    if max_cells is not None and max_cells < n_cells:
        rows = np.sort(rng.choice(n_cells, size=max_cells, replace=False))
    n_held = int(round(held_out * len(rows)))
    if n_held < 1 or n_held >= len(rows):
        raise InputError(
            f"{len(rows):,} cells are too few for a held-out split of {held_out:g} "
            f"({n_held} held out, {len(rows) - n_held} to train on)",
            file=source,
            where="held_out",
            fix="give more cells (or a larger --max-cells) or change --held-out so that at "
            "least one cell is held out and one is trained on",
        )
    order = rng.permutation(rows)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


# ---------------------------------------------------------------------------------------------
# The frequency baseline


def token_counts(
    corpus: datasets.Dataset,
    rows: np.ndarray,
    vocab_size: int,
    *,
    max_length: int | None = None,
    eos_id: int | None = None,
) -> np.ndarray:
    """How often each token id occurs in the given rows (after truncation), read in blocks."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = corpus.data.table.column("input_ids")
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(rows), _BLOCK):
        block = column.take(pa.array(rows[start : start + _BLOCK])).combine_chunks()
        lengths = pc.list_value_length(block).fill_null(0).to_numpy()
        values = pc.list_flatten(block).to_numpy().astype(np.int64)
        if max_length is not None and (lengths > max_length).any():
            # Keep what truncate() keeps: the first max_length tokens, or the first
            # max_length - 1 and the final <eos>.
            ends = np.cumsum(lengths)
            position = np.arange(values.size) - np.repeat(ends - lengths, lengths)
            last = np.repeat(ends - 1, lengths) == np.arange(values.size)
            keep = position < max_length
            if eos_id is not None:
                truncated = np.repeat(lengths > max_length, lengths)
                ends_with_eos = np.repeat(values[np.maximum(ends - 1, 0)] == eos_id, lengths)
                cut = truncated & ends_with_eos
                keep = np.where(cut, (position < max_length - 1) | last, keep)
            values = values[keep]
        values = values[(values >= 0) & (values < vocab_size)]
        counts += np.bincount(values, minlength=vocab_size)
    return counts


def frequency_baseline(
    counts: np.ndarray, special_ids: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """Cross-entropy and accuracy of predicting each masked gene by its training frequency.

    The unigram distribution over the non-special tokens, with one pseudo-count per token
    (so that a gene never seen in training has a finite loss); accuracy is that of always
    predicting the most frequent gene.
    """
    is_gene = np.ones(counts.size, dtype=bool)
    is_gene[special_ids] = False
    smoothed = np.where(is_gene, counts + 1.0, 0.0)
    with np.errstate(divide="ignore"):
        log_p = np.log(smoothed) - np.log(smoothed.sum())
    labels = np.asarray(labels, dtype=np.int64)
    return {
        "frequency_loss": float(-log_p[labels].mean()) if labels.size else float("nan"),
        "frequency_accuracy": float((labels == int(np.argmax(smoothed))).mean())
        if labels.size
        else float("nan"),
    }


def _held_out_labels(cells: MaskedCells) -> np.ndarray:
    labels = [cells.masked(i)[1] for i in range(len(cells))]
    flat = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    return flat[flat != IGNORE]


# ---------------------------------------------------------------------------------------------
# Settings


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def warmup_steps(
    warmup: float | None,
    *,
    n_train: int,
    batch_size: int,
    epochs: float,
    max_steps: int,
) -> float:
    """The ``warmup`` a run uses: as given (a share of the run below 1, else steps), or by
    default Geneformer's 10,000 steps capped at a tenth of the run."""
    if warmup is not None:
        if warmup < 0:
            raise InputError(
                f"warm-up {warmup}, expected >= 0",
                where="warmup",
                fix="a share of the run (0.05) or a number of steps (1000)",
            )
        return float(warmup)
    per_epoch = steps_per_epoch(n_train, batch_size)
    total = max_steps if max_steps > 0 else math.ceil(epochs * per_epoch)
    return float(min(GENEFORMER_WARMUP_STEPS, math.floor(MAX_WARMUP_SHARE * total)))


def _check_numbers(arguments: dict[str, Any]) -> None:
    """Refuse settings no run can use, naming the argument."""
    a = arguments
    held_out, batch_size, eval_every = a["held_out"], a["batch_size"], a["eval_every"]
    keep_checkpoints, max_cells, max_length = a["keep_checkpoints"], a["max_cells"], a["max_length"]
    learning_rate, weight_decay, scheduler = a["learning_rate"], a["weight_decay"], a["scheduler"]
    epochs, max_steps = a["epochs"], a["max_steps"]
    checks = [
        (0 < held_out < 1, "held_out", f"{held_out}", "a share between 0 and 1, e.g. 0.05"),
        (batch_size >= 1, "batch_size", f"{batch_size}", "1 or more cells per device"),
        (eval_every is None or eval_every >= 1, "eval_every", f"{eval_every}", "1 or more steps"),
        (keep_checkpoints >= 1, "keep_checkpoints", f"{keep_checkpoints}", "1 or more"),
        (max_cells is None or max_cells >= 2, "max_cells", f"{max_cells}", "2 or more cells"),
        (
            max_length is None or max_length >= 3,
            "max_length",
            f"{max_length}",
            "3 or more tokens (<cls>, a gene, <eos>)",
        ),
        (learning_rate > 0, "learning_rate", f"{learning_rate}", "a positive rate, e.g. 1e-3"),
        (weight_decay >= 0, "weight_decay", f"{weight_decay}", "0 or more, e.g. 0.001"),
        (epochs > 0 or max_steps > 0, "epochs", f"{epochs}", "positive epochs or max_steps"),
    ]
    for ok, name, value, fix in checks:
        if not ok:
            raise InputError(f"{setting(name)} is {value}", fix=f"use {fix}")
    schedulers = [s.value for s in SchedulerType if s.value not in ("reduce_lr_on_plateau",)]
    if scheduler not in schedulers:
        raise InputError(
            f"unknown learning-rate schedule {scheduler!r}",
            where=setting("scheduler"),
            fix="use linear (Geneformer V1) or cosine (Geneformer V2), or one of: "
            + ", ".join(schedulers),
        )


def _model(
    model: str | os.PathLike, vocab: GeneVocabulary, seed: int
) -> tuple[BertForMaskedLM, str]:
    path = Path(model)
    if path.exists():
        return load_model(path, vocabulary=vocab), f"continued from {path}"
    if str(model) not in PRESETS:
        raise InputError(
            f"unknown model preset {str(model)!r} (and no such checkpoint directory)",
            where=setting("model"),
            fix="choose a preset (" + ", ".join(PRESETS) + ") or a checkpoint directory",
        )
    return build_model(str(model), vocab, seed=seed), f"preset {model}"


def _check_run_dir(
    out: Path,
    resume: bool,
    arguments: dict[str, Any],
    *,
    resumable: set[str] = _RESUMABLE,
    what: str = "pretraining",
) -> None:
    """Refuse a run that cannot continue (``resume`` with other arguments than the
    ``resumable`` ones) or would delete an earlier ``what`` run's checkpoints unasked."""
    check_run_path(out)
    manifest = out / MANIFEST
    if resume:
        check_resume_arguments(manifest, arguments, _RESUMABLE)
    elif (
        not arguments.get("overwrite")
        and (out / CHECKPOINTS).is_dir()
        and any((out / CHECKPOINTS).iterdir())
    ):
        raise InputError(
            f"holds the checkpoints of an earlier {what} run",
            file=out,
            fix="pass --resume to continue it, --overwrite to start again, or choose another --out",
        )


# ---------------------------------------------------------------------------------------------
# The public API


@dataclass(frozen=True)
class PretrainSettings:
    """How :func:`pretrain` trains (each also a keyword argument of it, and a CLI flag).

    Attributes
    ----------
    epochs, max_steps
        Length of the run (``max_steps`` > 0 overrides ``epochs``).
    batch_size
        Cells per batch on each device.
    learning_rate, scheduler, warmup, weight_decay
        AdamW with warm-up then ``linear`` or ``cosine`` (or another transformers schedule)
        decay. ``warmup`` below 1 is a share of the run, from 1 a number of steps; None:
        Geneformer's 10,000 steps, at most a tenth of the run.
    eval_every, keep_checkpoints, patience
        Evaluate on the held-out cells and checkpoint every ``eval_every`` steps (None:
        once per epoch, and at least every 1,000 steps) and at the last step; keep at
        most ``keep_checkpoints`` checkpoints (and the best); stop after ``patience``
        evaluations without improvement (None: never).
    held_out
        Share of the cells held out (chosen by ``seed``) to measure masked-gene loss and
        accuracy.
    max_cells
        Use at most this many cells (chosen by ``seed``).
    max_length
        Truncate each cell to its first ``max_length`` tokens (keeping ``<eos>`` last). By
        default nothing is truncated, and a cell longer than the model's input is an error.
    mask_probability
        Share of gene tokens chosen for prediction.
    seed
        Seed of the model, the split, the batches and the masks.
    device
        ``auto``, ``cpu``, ``cuda``, ``npu`` or ``mps``; under ``torchrun`` each process
        takes its own device.
    num_workers
        Data-loading worker processes per device.
    resume
        Continue the run in ``out`` from its last complete checkpoint.
    overwrite
        Replace what an earlier run wrote to ``out`` (without it, such an ``out`` is refused).
    """

    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 12
    learning_rate: float = 1e-3
    scheduler: str = "linear"
    warmup: float | None = None
    weight_decay: float = 0.001
    eval_every: int | None = None
    keep_checkpoints: int = 2
    patience: int | None = None
    held_out: float = 0.05
    max_cells: int | None = None
    max_length: int | None = None
    mask_probability: float = 0.15
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    resume: bool = False
    overwrite: bool = False


@shared_docs
def pretrain(
    corpus: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike,
    model: str | os.PathLike = "tiny",
    vocabulary: GeneVocabulary | str | os.PathLike | None = None,
    dictionaries: str | os.PathLike | None = None,
    settings: PretrainSettings | None = None,
    **overrides: Any,
) -> RunResult:
    """Pretrain a Geneformer-compatible model by masked-gene prediction on tokenized cells.

    Parameters
    ----------
    corpus
        A corpus directory from ``genoformer sc tokenize`` or Geneformer's tokenizer, or
        several (read as one).
    out
        The run directory: ``model/``, ``checkpoints/``, ``loss_curve.{tsv,png}``,
        ``metrics.json``, ``splits/held_out.parquet``, ``manifest.json``.
    model
        A preset (``tiny``, ``small``, or a published architecture such as
        ``gf-6L-30M-i2048``) built fresh with ``seed``, or a checkpoint directory to
        continue pretraining from.
    vocabulary
        ``V1``, ``V2``, a vocabulary file or a :class:`GeneVocabulary`; by default the one
        named in the corpus' ``manifest.json`` (required for corpora without one).
    {dictionaries}
    {settings:PretrainSettings}
        How to train, e.g. ``max_steps=20000, batch_size=12``.

    Returns
    -------
    RunResult
        ``metrics``: held-out masked-gene loss and accuracy of the model (``heldout_loss``,
        ``heldout_accuracy``), of the frequency baseline (``frequency_loss``,
        ``frequency_accuracy``), the run's sizes and steps; ``outputs["model"]``: the
        pretrained model, a ``BertForMaskedLM`` directory that Geneformer loads.
    """
    start = time.perf_counter()
    options = with_overrides(PretrainSettings, settings, overrides, "pretrain")
    paths = [Path(corpus)] if isinstance(corpus, (str, os.PathLike)) else [Path(p) for p in corpus]
    if not paths:
        raise InputError("no corpus given", fix="pass the directory `genoformer sc tokenize` wrote")
    out = Path(out)
    arguments = _arguments(paths, out, model, vocabulary, dictionaries, options)
    _check_numbers(arguments)
    _check_run_dir(out, options.resume, arguments)
    cells = _read_corpora(paths)
    vocab = corpus_vocabulary(vocabulary, dictionaries, cells.records)
    network, origin = _model(model, vocab, options.seed)
    train_cells, held_cells = _masked_cells(cells, vocab, network.config, arguments, paths[0])
    trainer_settings = _train_settings(arguments, n_train=len(train_cells.rows))
    run = None
    if _is_main_process():  # under torchrun, the first process alone keeps the run directory
        run = RunDir(
            out,
            command="sc pretrain",
            arguments=arguments,
            seed=options.seed,
            resume=options.resume,
            overwrite=options.overwrite,
        )
    outputs: dict[str, Path] = {}
    if run is not None:
        outputs["held_out"] = _write_held_out(run, cells, held_cells.rows)
    with run.step("train") if run is not None else contextlib.nullcontext():
        trained = train_model(
            as_masked_gene_lm(network),
            train_cells,
            held_cells,
            out,
            trainer_settings,
            resume=options.resume,
            data_collator=PadCollator(vocab.pad_id if vocab.pad_id is not None else 0),
            compute_metrics=HeldOutMetrics(),
            preprocess_logits_for_metrics=masked_position_sums,
        )
    outputs.update(trained.outputs)
    warmup = trainer_settings.warmup
    metrics = _trained_metrics(trained, train_cells, held_cells, origin, vocab.name, warmup)
    if run is None:
        return RunResult(out, metrics, outputs)
    with run.step("baseline"):
        counts = token_counts(
            cells.cells,
            train_cells.rows,
            network.config.vocab_size,
            max_length=options.max_length,
            eos_id=train_cells.eos_id,
        )
        special = train_cells.rule.special_ids
        metrics.update(frequency_baseline(counts, special, _held_out_labels(held_cells)))
    metrics["seconds"] = round(time.perf_counter() - start, 3)
    outputs["metrics"] = write_json(out / "metrics.json", metrics)
    run.record_results("pretrain", metrics)
    return run.finish(metrics, outputs)


def _arguments(
    paths: list[Path],
    out: Path,
    model: str | os.PathLike,
    vocabulary: GeneVocabulary | str | os.PathLike | None,
    dictionaries: str | os.PathLike | None,
    options: PretrainSettings,
) -> dict[str, Any]:
    """The run's arguments as the manifest records them (JSON values, absolute paths)."""
    arguments = {
        "corpus": [os.path.abspath(p) for p in paths],
        "out": os.path.abspath(out),
        "model": str(model),
        "vocabulary": vocabulary.name if isinstance(vocabulary, GeneVocabulary) else vocabulary,
        "dictionaries": dictionaries,
        **dataclasses.asdict(options),
    }
    return json.loads(json.dumps(arguments, default=str))


def _trained_metrics(
    trained: Any,
    train_cells: MaskedCells,
    held_cells: MaskedCells,
    origin: str,
    vocabulary: str,
    warmup: int,
) -> dict[str, Any]:
    """The held-out masked-gene loss and accuracy of the trained model, and the run's sizes."""
    evaluation = trained.eval_metrics
    return {
        "heldout_loss": evaluation.get("eval_mlm_loss"),
        "heldout_accuracy": evaluation.get("eval_accuracy"),
        "heldout_masked_positions": int(evaluation.get("eval_masked", 0)),
        "model_step": int(evaluation["step"]) if "step" in evaluation else None,
        "steps": trained.global_step,
        "train_cells": len(train_cells.rows),
        "heldout_cells": len(held_cells.rows),
        "n_parameters": int(sum(p.numel() for p in trained.model.parameters())),
        "model": origin,
        "vocabulary": vocabulary,
        "warmup": warmup,
        "world_size": world_size(),
    }


def _masked_cells(
    cells: _Corpus, vocab: GeneVocabulary, config: Any, arguments: dict[str, Any], first: Path
) -> tuple[MaskedCells, MaskedCells]:
    """The training and held-out cells, checked against the model, with their masks."""
    a = arguments
    _check_tokens(cells, config.vocab_size)
    lengths = truncated_lengths(cells.lengths, a["max_length"])
    _check_lengths(cells, lengths, config.max_position_embeddings)
    train_rows, held_rows = _split(len(lengths), a["held_out"], a["max_cells"], a["seed"], first)
    shared = dict(
        corpus=cells.cells,
        rule=MaskingRule.from_vocabulary(vocab, probability=a["mask_probability"]),
        seed=a["seed"],
        max_length=a["max_length"],
        eos_id=vocab.eos_id if vocab.has_cls_eos else None,
        vocab_size=config.vocab_size,
        locate=cells.source,
    )
    train = MaskedCells(rows=train_rows, lengths=lengths[train_rows], stream=TRAIN_STREAM, **shared)
    held = MaskedCells(rows=held_rows, lengths=lengths[held_rows], stream=HELD_OUT_STREAM, **shared)
    return train, held


def _train_settings(arguments: dict[str, Any], n_train: int) -> TrainSettings:
    """The Trainer's settings from :func:`pretrain`'s checked arguments."""
    a = arguments
    warmup = warmup_steps(
        a["warmup"],
        n_train=n_train,
        batch_size=a["batch_size"],
        epochs=a["epochs"],
        max_steps=a["max_steps"],
    )
    same = ("epochs", "max_steps", "batch_size", "learning_rate", "weight_decay", "scheduler")
    same += ("keep_checkpoints", "patience", "seed", "device", "num_workers")
    every = a["eval_every"] or min(EVAL_EVERY_AT_MOST, steps_per_epoch(n_train, a["batch_size"]))
    return TrainSettings(
        **{name: a[name] for name in same},
        eval_every=every,
        eval_batch_size=a["batch_size"],
        warmup=warmup,
        extra={
            **length_grouping(),
            "batch_eval_metrics": True,
            # Every parameter takes part in each step; DDP need not search for unused ones.
            "ddp_find_unused_parameters": False,
        },
    )


def _write_held_out(run: RunDir, cells: _Corpus, held_rows: np.ndarray) -> Path:
    """The held-out cells (corpus, row), so that the split can be checked and reused."""
    import pandas as pd

    sources = [cells.source(int(r)) for r in held_rows]
    table = pd.DataFrame({"corpus": [str(p) for p, _ in sources], "row": [r for _, r in sources]})
    path = write_table(run.file("splits/held_out.parquet"), table)
    run.record_output("held_out", path)
    return path
