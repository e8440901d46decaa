"""Training through Hugging Face ``Trainer``, the same way for every pillar.

A pillar builds a ``PreTrainedModel`` and torch datasets of dicts (model inputs plus
``labels``) and calls :func:`train_model`. The Trainer gives checkpoints every N steps with
a kept maximum, resume after a kill (optimizer, scheduler, RNG and data order restored),
warm-up schedules, early stopping on validation loss and multi-device runs through
``torchrun``. This module adds what every pillar wants on top: one settings object, the
loss curve as a table and a picture, and the best model saved atomically into the run.

Length-grouped batches (``extra=length_grouping()``) use :class:`SeededLengthSampler`: each
epoch's order is a function of the seed and the epoch alone, so a resumed run and every
``torchrun`` process draw the same batches. A train dataset with a ``set_epoch(epoch)``
method is told the epoch before each pass (for data whose random choices change by epoch,
such as masked-language-model masking).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import (
    EarlyStoppingCallback,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_pt_utils import get_length_grouped_indices
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from genoformer.engine.device import pick_device
from genoformer.engine.plots import loss_curve
from genoformer.engine.runs import swap_directory, write_table

CHECKPOINTS = "checkpoints"
MODEL = "model"
LOSS_TABLE = "loss_curve.tsv"
LOSS_FIGURE = "loss_curve.png"


@dataclass
class TrainSettings:
    """How to train: schedule, checkpoints, early stopping, device and seed."""

    epochs: float = 10.0
    max_steps: int = -1
    batch_size: int = 64
    eval_batch_size: int = 512
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    warmup: float = 0.0
    scheduler: str = "linear"
    #: Steps between evaluations (and checkpoints); None: once per epoch.
    eval_every: int | None = None
    keep_checkpoints: int = 2
    patience: int | None = 5
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    #: Steps between training-loss logs; None: every 50 steps, or every evaluation when
    #: that is more often. The loss is logged at every evaluation and at the last step too.
    log_every: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def scheduled(self, n_train: int) -> TrainSettings:
        """These settings with ``eval_every`` and ``log_every`` decided for a training set
        of ``n_train`` items."""
        every = self.eval_every or steps_per_epoch(n_train, self.batch_size)
        return replace(self, eval_every=every, log_every=self.log_every or min(50, every))


def world_size() -> int:
    """How many processes train together (``torchrun`` sets ``WORLD_SIZE``)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one pass over ``n_train`` items: batches of ``batch_size`` on
    each of the :func:`world_size` processes, the last batch partial."""
    return max(1, math.ceil(n_train / (batch_size * world_size())))


@dataclass
class TrainResult:
    """What a training run produced."""

    model: PreTrainedModel
    model_dir: Path
    history: pd.DataFrame
    best_eval_loss: float | None
    global_step: int
    outputs: dict[str, Path]
    #: The logged evaluation of the returned model (at its checkpoint's step), e.g.
    #: ``eval_loss`` and what ``compute_metrics`` added; empty without an evaluation.
    eval_metrics: dict[str, float] = field(default_factory=dict)


def training_arguments(settings: TrainSettings, checkpoint_dir: Path) -> TrainingArguments:
    """Trainer arguments: evaluate and checkpoint every ``eval_every`` steps, keep the best.
    ``settings`` are :meth:`TrainSettings.scheduled` ones (no None intervals)."""
    if settings.eval_every is None or settings.log_every is None:
        raise ValueError("training_arguments takes TrainSettings.scheduled(n_train)")
    device = pick_device(settings.device)
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup,
        lr_scheduler_type=settings.scheduler,
        eval_strategy="steps",
        eval_steps=settings.eval_every,
        save_strategy="steps",
        save_steps=settings.eval_every,
        save_total_limit=settings.keep_checkpoints,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        restore_callback_states_from_checkpoint=True,
        logging_strategy="steps",
        logging_steps=settings.log_every,
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=device.type == "cpu",
        dataloader_num_workers=settings.num_workers,
        label_names=["labels"],
        report_to="none",
        disable_tqdm=True,
        save_only_model=False,
        **settings.extra,
    )


class RichProgress(TrainerCallback):
    """One progress bar per training run with the latest train and validation loss
    (in place of the Trainer's nested tqdm bars and printed log dictionaries); a loss not
    logged yet shows as ``-``, and a resumed run starts from the losses its checkpoint
    logged."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task = None
        self.losses = {"loss": math.nan, "eval_loss": math.nan}

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        for entry in state.log_history:  # a resumed run's earlier logs
            self._update(entry)
        self.progress = Progress(
            TextColumn("training"),
            BarColumn(),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("{task.fields[losses]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, losses=self.text()
        )

    def _update(self, logs: dict[str, Any]) -> None:
        for key in self.losses:
            value = logs.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                self.losses[key] = float(value)

    def text(self) -> str:
        """``loss 0.4321 val 0.5`` with ``-`` for a loss not logged yet."""
        shown = [
            "-" if math.isnan(self.losses[key]) else f"{self.losses[key]:.4g}"
            for key in ("loss", "eval_loss")
        ]
        return f"loss {shown[0]} val {shown[1]}"

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is not None and logs:
            self._update(logs)
            self.progress.update(self.task, losses=self.text())

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class LogWithEvaluations(TrainerCallback):
    """Log the training loss at every evaluation and at the last step, and evaluate and
    checkpoint at the last step.

    Without it, a run evaluated more often than every ``log_every`` steps that stops early,
    or a run shorter than ``log_every`` steps, ends with no training loss (a progress bar
    showing no loss and ``loss_curve.tsv`` rows with an empty ``train_loss``); and before
    transformers 5 a run whose last step is not a multiple of ``eval_every`` ends without
    evaluating its last model. Every process sets the same flags, as logging gathers the
    loss across processes.
    """

    def on_step_end(self, args, state, control, **kwargs):
        last = state.global_step >= state.max_steps
        if last and args.eval_strategy == "steps":
            control.should_evaluate = True
            control.should_save = True
        if last or control.should_evaluate:
            control.should_log = True

    def on_epoch_end(self, args, state, control, **kwargs):
        if control.should_evaluate:
            control.should_log = True


class _DropMessage(logging.Filter):
    """Drops the log records whose message starts with ``start``."""

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


@contextlib.contextmanager
def quiet_hugging_face() -> Iterator[None]:
    """While training: no tqdm bar per saved model (transformers' ``save_pretrained``
    shows "Writing model shards" at every checkpoint) and not the Trainer's line
    "mtime may not be reliable on this filesystem, falling back to numerical ordering"
    (its checkpoint rotation says so whenever checkpoints come less than a second apart,
    and then orders them by step, as it should). Both through transformers' own switches:
    ``disable_progress_bar`` (restored after), and a filter on that one message of the
    ``transformers.trainer_utils`` logger (restored after), as lowering that module's
    verbosity would also hide its other warnings, such as a resumed run's batch size
    differing from its checkpoint's. Genoformer's own progress bar is not tqdm."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    logger = hf_logging.get_logger("transformers.trainer_utils")
    drop = _DropMessage("mtime may not be reliable")
    hf_logging.disable_progress_bar()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
        if bars:
            hf_logging.enable_progress_bar()


class SeededLengthSampler(Sampler[int]):
    """Indices in length-grouped order (Hugging Face's megabatches of 50 batches, each
    sorted by length, longest first) drawn from a generator seeded by ``seed`` and the
    epoch, so that the order does not depend on any global random state.

    With ``shuffle=False`` the order is by length, longest first (ties in index order), for
    evaluation.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, *, seed: int, shuffle: bool = True
    ) -> None:
        self.lengths = [int(n) for n in lengths]
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(np.argsort(-np.asarray(self.lengths), kind="stable").tolist())
        state = np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(state))
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def length_grouping() -> dict[str, Any]:
    """The ``TrainingArguments`` fields (for ``TrainSettings.extra``) that turn on
    length-grouped batches: ``train_sampling_strategy`` in transformers 5, ``group_by_length``
    before it."""
    if "train_sampling_strategy" in TrainingArguments.__dataclass_fields__:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def dataset_lengths(dataset: Any, column: str) -> list[int] | None:
    """Item lengths of a dataset: its ``column`` (a ``datasets.Dataset``) or its ``lengths``
    attribute; None when it has neither."""
    names = getattr(dataset, "column_names", None)
    if names is not None and column in names:
        return list(dataset[column])
    lengths = getattr(dataset, "lengths", None)
    return None if lengths is None else list(lengths)


class _Trainer(Trainer):
    """The Trainer with seeded length-grouped samplers (see :class:`SeededLengthSampler`)."""

    epoch_sampler: SeededLengthSampler | None = None

    def _grouped(self) -> bool:
        strategy = getattr(self.args, "train_sampling_strategy", None)
        return strategy == "group_by_length" or bool(getattr(self.args, "group_by_length", False))

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        lengths = (
            dataset_lengths(dataset, self.args.length_column_name) if self._grouped() else None
        )
        if lengths is None:
            # transformers before 4.50 takes no argument here
            args = () if train_dataset is None else (train_dataset,)
            return super()._get_train_sampler(*args)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        self.epoch_sampler = SeededLengthSampler(lengths, batch, seed=seed)
        return self.epoch_sampler

    def _get_eval_sampler(self, eval_dataset):
        lengths = (
            dataset_lengths(eval_dataset, self.args.length_column_name) if self._grouped() else None
        )
        if lengths is None:
            return super()._get_eval_sampler(eval_dataset)
        return SeededLengthSampler(lengths, self.args.eval_batch_size, seed=0, shuffle=False)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        # A checkpoint stores a tied weight once (an output layer tied to the input
        # embeddings): its other name is not missing, and needs no warning.
        tied = set(getattr(self.model, "_tied_weights_keys", None) or ())
        missing = [k for k in load_result.missing_keys if k not in tied]
        if len(missing) < len(load_result.missing_keys):
            self.model.tie_weights()
            load_result = type(load_result)(missing, load_result.unexpected_keys)
        super()._issue_warnings_after_load(load_result)


class _EpochSetter(TrainerCallback):
    """Tells the train dataset and the length-grouped sampler which epoch begins.

    Accelerate forwards ``set_epoch`` to one of them, and not to either in every set-up (a
    resumed multi-process run), so the epoch is set here, from the Trainer's state: a whole
    number at the start of each epoch, and the restored fraction on resume.
    """

    def __init__(self, trainer: _Trainer) -> None:
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = math.floor(state.epoch + 1e-9)
        for target in (self.trainer.train_dataset, self.trainer.epoch_sampler):
            if hasattr(target, "set_epoch"):
                target.set_epoch(epoch)


def last_complete_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest checkpoint that was written to the end, or None.

    The Trainer writes a checkpoint's files in place and ``trainer_state.json`` last, so a
    run killed while saving leaves a folder without it; that folder is removed and the one
    before it is used.
    """
    if not checkpoint_dir.is_dir():
        return None
    found = []
    for path in checkpoint_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.rsplit("-", 1)[-1]
        if path.is_dir() and step.isdigit():
            found.append((int(step), path))
    for _, path in sorted(found, reverse=True):
        if (path / "trainer_state.json").exists():
            return path
        shutil.rmtree(path, ignore_errors=True)
    return None


def history_table(log_history: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per logged step: ``step, epoch, train_loss, eval_loss`` (NaN where absent)."""
    rows: dict[int, dict[str, float]] = {}
    for entry in log_history:
        step = int(entry.get("step", 0))
        row = rows.setdefault(step, {"step": step, "epoch": float(entry.get("epoch", np.nan))})
        if "loss" in entry:
            row["train_loss"] = float(entry["loss"])
        if "eval_loss" in entry:
            row["eval_loss"] = float(entry["eval_loss"])
    table = pd.DataFrame(
        sorted(rows.values(), key=lambda r: r["step"]),
        columns=["step", "epoch", "train_loss", "eval_loss"],
    )
    return table.dropna(subset=["train_loss", "eval_loss"], how="all").reset_index(drop=True)


def save_model_atomically(model: PreTrainedModel, directory: Path) -> Path:
    """``save_pretrained`` into a temporary directory, then swap it into place."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        model.save_pretrained(tmp)
        swap_directory(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def train_model(
    model: PreTrainedModel,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    out_dir: str | os.PathLike,
    settings: TrainSettings,
    *,
    resume: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
    data_collator: Any = None,
    compute_metrics: Callable[..., dict[str, float]] | None = None,
    preprocess_logits_for_metrics: Callable[..., torch.Tensor] | None = None,
    optimizer_cls_and_kwargs: tuple[type, dict[str, Any]] | None = None,
) -> TrainResult:
    """Train ``model`` with early stopping on validation loss; save the best into the run.

    Checkpoints go to ``out_dir/checkpoints`` (at every evaluation: every ``eval_every``
    steps, by default once per epoch, and at the last step; at most ``keep_checkpoints`` kept, the best one always among them); the best model to
    ``out_dir/model``; the loss curve to ``loss_curve.tsv`` and ``loss_curve.png``. With
    ``resume`` the run continues from the latest checkpoint when there is one.
    ``compute_metrics`` and ``preprocess_logits_for_metrics`` are the Trainer's: more
    held-out metrics at each evaluation. ``optimizer_cls_and_kwargs`` is the Trainer's too:
    an optimizer class and its arguments (``params`` may hold parameter groups with their
    own learning rates, as layer-wise decay needs). Under ``torchrun`` every process trains and the
    first one alone writes the model and the loss curve.
    """
    out_dir = Path(out_dir)
    checkpoint_dir = out_dir / CHECKPOINTS
    args = training_arguments(settings.scheduled(len(train_dataset)), checkpoint_dir)
    all_callbacks = list(callbacks)
    if settings.patience:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.patience))
    trainer = _Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        callbacks=all_callbacks,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
    )
    trainer.add_callback(_EpochSetter(trainer))
    trainer.add_callback(LogWithEvaluations())
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    progress = RichProgress()
    trainer.add_callback(progress)
    last = last_complete_checkpoint(checkpoint_dir) if resume else None
    outputs = {
        "model": out_dir / MODEL,
        "loss_table": out_dir / LOSS_TABLE,
        "loss_figure": out_dir / LOSS_FIGURE,
    }
    with quiet_hugging_face():
        try:
            trainer.train(resume_from_checkpoint=None if last is None else str(last))
        finally:
            # A crash inside training must not leave the progress display running.
            progress.on_train_end(args, trainer.state, trainer.control)
        history = history_table(trainer.state.log_history)
        if trainer.is_world_process_zero():
            save_model_atomically(trainer.model, outputs["model"])
            write_table(outputs["loss_table"], history)
            outputs["loss_figure"] = loss_curve(history, outputs["loss_figure"])[0]
    best = trainer.state.best_metric
    return TrainResult(
        model=trainer.model,
        model_dir=outputs["model"],
        history=history,
        best_eval_loss=None if best is None or math.isnan(best) else float(best),
        global_step=trainer.state.global_step,
        outputs=outputs,
        eval_metrics=_evaluation_at(trainer.state),
    )


def _evaluation_at(state: Any) -> dict[str, float]:
    """The logged evaluation of the model the run returns: the best checkpoint's step when
    one was chosen, else the last evaluation."""
    evaluations = [e for e in state.log_history if "eval_loss" in e]
    if not evaluations:
        return {}
    step = getattr(state, "best_global_step", None)
    if step is None and state.best_model_checkpoint:  # transformers before 4.52
        step = int(Path(state.best_model_checkpoint).name.rsplit("-", 1)[-1])
    chosen = [e for e in evaluations if e.get("step") == step] or evaluations[-1:]
    return {k: float(v) for k, v in chosen[-1].items() if isinstance(v, int | float)}


@torch.inference_mode()
def predict_logits(
    model: PreTrainedModel,
    dataset: Dataset,
    *,
    batch_size: int = 1024,
    device: str = "auto",
    collate_fn: Callable[[list[Any]], dict[str, torch.Tensor]] | None = None,
) -> np.ndarray:
    """Model ``logits`` for every item of a dataset of dicts, in order, as float32 numpy
    (``collate_fn`` makes a batch of items of different lengths, as the Trainer's does)."""
    torch_device = pick_device(device)
    model = model.to(torch_device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
    outputs = []
    for batch in loader:
        inputs = {k: v.to(torch_device) for k, v in batch.items() if k != "labels"}
        outputs.append(model(**inputs).logits.float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.empty((0,), dtype=np.float32)
