"""Training through Hugging Face ``Trainer``, the same way for every pillar.

A pillar builds a ``PreTrainedModel`` and torch datasets of dicts (model inputs plus
``labels``) and calls :func:`train_model`. The Trainer gives checkpoints every N steps with
a kept maximum, resume after a kill (optimizer, scheduler, RNG and data order restored),
warm-up schedules, early stopping on validation loss and multi-device runs through
``torchrun``. This module adds what every pillar wants on top: one settings object, the
loss curve as a table and a picture, and the best model saved atomically into the run.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, Dataset
from transformers import (
    EarlyStoppingCallback,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from genoformer.engine.device import pick_device
from genoformer.engine.plots import loss_curve
from genoformer.engine.runs import write_table

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
    eval_every: int = 200
    keep_checkpoints: int = 2
    patience: int | None = 5
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    log_every: int = 50
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """What a training run produced."""

    model: PreTrainedModel
    model_dir: Path
    history: pd.DataFrame
    best_eval_loss: float | None
    global_step: int
    outputs: dict[str, Path]


def training_arguments(settings: TrainSettings, checkpoint_dir: Path) -> TrainingArguments:
    """Trainer arguments: evaluate and checkpoint every ``eval_every`` steps, keep the best."""
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
    (in place of the Trainer's nested tqdm bars and printed log dictionaries)."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task = None
        self.losses = {"loss": float("nan"), "eval_loss": float("nan")}

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("training"),
            BarColumn(),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.4g} val {task.fields[eval_loss]:.4g}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, **self.losses
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is not None and logs:
            found = {k: float(v) for k, v in logs.items() if k in self.losses}
            self.losses.update(found)
            self.progress.update(self.task, **self.losses)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


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
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
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
) -> TrainResult:
    """Train ``model`` with early stopping on validation loss; save the best into the run.

    Checkpoints go to ``out_dir/checkpoints`` (every ``eval_every`` steps, at most
    ``keep_checkpoints`` kept, the best one always among them); the best model to
    ``out_dir/model``; the loss curve to ``loss_curve.tsv`` and ``loss_curve.png``. With
    ``resume`` the run continues from the latest checkpoint when there is one.
    """
    out_dir = Path(out_dir)
    checkpoint_dir = out_dir / CHECKPOINTS
    args = training_arguments(settings, checkpoint_dir)
    all_callbacks = list(callbacks)
    if settings.patience:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.patience))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        callbacks=all_callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    progress = RichProgress()
    trainer.add_callback(progress)
    last = last_complete_checkpoint(checkpoint_dir) if resume else None
    try:
        trainer.train(resume_from_checkpoint=None if last is None else str(last))
    finally:
        # A crash inside training must not leave the progress display running.
        progress.on_train_end(args, trainer.state, trainer.control)
    history = history_table(trainer.state.log_history)
    outputs = {
        "model": save_model_atomically(trainer.model, out_dir / MODEL),
        "loss_table": write_table(out_dir / LOSS_TABLE, history),
    }
    outputs["loss_figure"] = loss_curve(history, out_dir / LOSS_FIGURE)[0]
    best = trainer.state.best_metric
    return TrainResult(
        model=trainer.model,
        model_dir=outputs["model"],
        history=history,
        best_eval_loss=None if best is None or math.isnan(best) else float(best),
        global_step=trainer.state.global_step,
        outputs=outputs,
    )


@torch.inference_mode()
def predict_logits(
    model: PreTrainedModel,
    dataset: Dataset,
    *,
    batch_size: int = 1024,
    device: str = "auto",
) -> np.ndarray:
    """Model ``logits`` for every item of a dataset of dicts, in order, as float32 numpy."""
    torch_device = pick_device(device)
    model = model.to(torch_device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    outputs = []
    for batch in loader:
        inputs = {k: v.to(torch_device) for k, v in batch.items() if k != "labels"}
        outputs.append(model(**inputs).logits.float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.empty((0,), dtype=np.float32)
