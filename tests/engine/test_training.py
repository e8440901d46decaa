"""Training through the engine: early stopping, loss curve, kill and resume."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, TrainerCallback, TrainerState
from transformers.trainer_utils import sort_checkpoints
from transformers.utils import ModelOutput
from transformers.utils import logging as hf_logging

from genoformer.engine.training import (
    RichProgress,
    TrainSettings,
    predict_logits,
    quiet_hugging_face,
    train_model,
)


class TinyConfig(PretrainedConfig):
    model_type = "genoformer-test-tiny"

    def __init__(self, n_in: int = 8, **kwargs) -> None:
        self.n_in = n_in
        super().__init__(**kwargs)


@dataclass
class TinyOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class TinyModel(PreTrainedModel):
    config_class = TinyConfig
    main_input_name = "x"

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.net = nn.Sequential(nn.Linear(config.n_in, 16), nn.Dropout(0.2), nn.Linear(16, 1))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        return

    def forward(self, x, labels=None):
        out = self.net(x).squeeze(-1)
        loss = None if labels is None else nn.functional.mse_loss(out, labels)
        return TinyOutput(loss=loss, logits=out)


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.x = torch.tensor(rng.normal(size=(n, 8)), dtype=torch.float32)
        self.y = self.x @ torch.arange(8, dtype=torch.float32) / 8 + 0.1 * torch.tensor(
            rng.normal(size=n), dtype=torch.float32
        )

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


class Crash(TrainerCallback):
    """Simulates a kill: raises once training passes a given step."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            raise KeyboardInterrupt("killed")


def settings(**overrides) -> TrainSettings:
    base = dict(max_steps=30, batch_size=16, eval_every=5, log_every=5, patience=None, seed=3)
    base.update(overrides)
    return TrainSettings(**base)


def fresh_model() -> TinyModel:
    torch.manual_seed(0)
    return TinyModel(TinyConfig())


def test_a_run_shorter_than_the_logging_interval_still_logs_its_training_loss(tmp_path):
    # 4 steps, logged every 50 and evaluated every 200: the last step is logged anyway.
    short = settings(max_steps=4, eval_every=200, log_every=50)
    result = train_model(fresh_model(), Pairs(64, 0), Pairs(32, 1), tmp_path, short)
    logged = result.history.dropna(subset=["train_loss"])
    assert logged["step"].tolist() == [4]
    assert np.isfinite(logged["train_loss"]).all()


def test_training_writes_model_checkpoints_and_loss_curve(tmp_path):
    result = train_model(
        fresh_model(), Pairs(256, 0), Pairs(64, 1), tmp_path, settings(keep_checkpoints=2)
    )
    assert (tmp_path / "model" / "config.json").exists()
    assert (tmp_path / "loss_curve.png").stat().st_size > 0
    table = result.history
    assert {"step", "train_loss", "eval_loss"} <= set(table.columns)
    assert table["eval_loss"].notna().sum() == 6
    assert table["train_loss"].dropna().iloc[-1] < table["train_loss"].dropna().iloc[0]
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert len(checkpoints) <= 3  # the kept maximum, plus the best when it is older
    reloaded = TinyModel.from_pretrained(tmp_path / "model")
    before = predict_logits(result.model, Pairs(10, 5), device="cpu")
    after = predict_logits(reloaded, Pairs(10, 5), device="cpu")
    np.testing.assert_allclose(before, after, rtol=1e-6)


def test_early_stopping_stops_before_the_last_step(tmp_path):
    # A learning rate of zero never improves the validation loss.
    result = train_model(
        fresh_model(),
        Pairs(256, 0),
        Pairs(64, 1),
        tmp_path,
        settings(max_steps=200, learning_rate=0.0, patience=2),
    )
    assert result.global_step == 15


def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    whole = train_model(fresh_model(), Pairs(256, 0), Pairs(64, 1), tmp_path / "a", settings())

    with pytest.raises(KeyboardInterrupt):
        train_model(
            fresh_model(),
            Pairs(256, 0),
            Pairs(64, 1),
            tmp_path / "b",
            settings(),
            callbacks=[Crash(at_step=12)],
        )
    assert not (tmp_path / "b" / "model").exists()
    resumed = train_model(
        fresh_model(), Pairs(256, 0), Pairs(64, 1), tmp_path / "b", settings(), resume=True
    )
    assert resumed.global_step == whole.global_step
    for (name, a), (_, b) in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    np.testing.assert_allclose(
        whole.history["eval_loss"].dropna(), resumed.history["eval_loss"].dropna(), rtol=1e-6
    )


def test_default_evaluation_is_once_per_epoch(tmp_path):
    # 64 items in batches of 16: 4 steps an epoch.
    per_epoch = settings(max_steps=-1, epochs=3, eval_every=None, log_every=None)
    result = train_model(fresh_model(), Pairs(64, 0), Pairs(32, 1), tmp_path, per_epoch)
    assert result.history["step"].tolist() == [4, 8, 12]
    assert result.history[["train_loss", "eval_loss"]].notna().all().all()
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-12", "checkpoint-8"]


def test_a_run_stopped_early_before_its_first_log_has_a_training_loss_at_each_evaluation(
    tmp_path,
):
    # Evaluated every 5 steps, logged every 50, stopped early at step 15: before the loss
    # was logged at every evaluation, the run had no training loss at all.
    stopped = settings(max_steps=200, learning_rate=0.0, patience=2, log_every=50)
    result = train_model(fresh_model(), Pairs(256, 0), Pairs(64, 1), tmp_path, stopped)
    assert result.global_step == 15
    assert result.history["step"].tolist() == [5, 10, 15]
    assert result.history["train_loss"].notna().all()


def test_progress_shows_a_dash_for_a_loss_not_logged_yet_and_resumes_with_the_last():
    progress = RichProgress()
    assert progress.text() == "loss - val -"
    state = TrainerState(log_history=[{"loss": 0.51234, "step": 5}, {"eval_loss": 0.7, "step": 5},
                                      {"loss": float("nan"), "step": 6}])  # fmt: skip
    state.max_steps, state.global_step = 10, 6
    progress.on_train_begin(None, state, None)
    try:
        assert progress.text() == "loss 0.5123 val 0.7"
        progress.on_log(None, state, None, logs={"loss": 0.25})
        assert progress.text() == "loss 0.25 val 0.7"
    finally:
        progress.on_train_end(None, state, None)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_training_hides_the_shard_bars_and_the_mtime_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    logger = hf_logging.get_logger("transformers.trainer_utils")
    records = _Records()
    logger.addHandler(records)
    try:
        # The checkpoint rotation's line when checkpoints look less than a second apart
        # (here: the same mtime) is dropped while training, and only then.
        for step in (1, 2):
            (tmp_path / f"checkpoint-{step}").mkdir()
            os.utime(tmp_path / f"checkpoint-{step}", (1e9, 1e9))
        for quiet in (True, False):
            logger.warning_once.cache_clear()  # transformers says it once per process
            with quiet_hugging_face() if quiet else contextlib.nullcontext():
                sort_checkpoints(str(tmp_path), use_mtime=True)
            assert len(records.messages) == (0 if quiet else 1)
        assert records.messages[0].startswith("mtime may not be reliable")
        # Outside training, saving a model shows its shard bar.
        capsys.readouterr()
        fresh_model().save_pretrained(tmp_path / "plain")
        assert "Writing model shards" in capsys.readouterr().err
        logger.warning_once.cache_clear()
        result = train_model(fresh_model(), Pairs(64, 0), Pairs(32, 1), tmp_path / "run",
                             settings(max_steps=8, eval_every=1))  # fmt: skip
        assert result.global_step == 8
        assert hf_logging.is_progress_bar_enabled()  # restored after training
    finally:
        logger.removeHandler(records)
        if not bars:
            hf_logging.disable_progress_bar()
    assert len(records.messages) == 1
    err = capsys.readouterr().err
    assert "Writing model shards" not in err and "mtime may not be reliable" not in err
