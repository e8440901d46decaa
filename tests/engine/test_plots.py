"""Figure helpers write complete files atomically."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from matplotlib.figure import Figure

from genoformer.engine import plots
from genoformer.engine.metrics import classification_metrics, softmax

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.suffix == ".png" and path.read_bytes()[:8] == PNG_MAGIC


def _figure() -> Figure:
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    return fig


def test_save_figure_writes_each_format_and_no_temporary_file(tmp_path):
    written = plots.save_figure(_figure(), tmp_path / "sub" / "fig.png")
    assert written == [tmp_path / "sub" / "fig.png", tmp_path / "sub" / "fig.pdf"]
    assert _is_png(written[0])
    assert written[1].read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fig.pdf", "fig.png"]
    # A dotted name that is not an image suffix is kept whole.
    assert plots.save_figure(_figure(), tmp_path / "model.v1", formats=("svg",)) == [
        tmp_path / "model.v1.svg"
    ]


def test_save_figure_failure_keeps_old_file_and_leaves_nothing_behind(tmp_path, monkeypatch):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")
    fig = _figure()

    def killed(*args, **kwargs):
        Path(args[0]).write_bytes(b"half")  # a partial write, then the crash
        raise KeyboardInterrupt

    monkeypatch.setattr(fig, "savefig", killed)
    with pytest.raises(KeyboardInterrupt):
        plots.save_figure(fig, target, formats=("png",))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]


def test_save_figure_respects_umask_and_closes_pyplot_figures(tmp_path):
    import matplotlib.pyplot as plt

    fig = plt.figure()
    old = os.umask(0o022)
    try:
        (path,) = plots.save_figure(fig, tmp_path / "f", formats=("png",))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert not plt.fignum_exists(fig.number)


def test_save_html_is_self_contained(tmp_path):
    path = plots.save_html(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), tmp_path / "a.html")
    text = path.read_text()
    assert re.search(r"<script[^>]*\bsrc=", text) is None  # nothing fetched from a CDN
    assert "Plotly.newPlot" in text
    assert len(text) > 1_000_000  # plotly.js itself is embedded
    assert [p.name for p in tmp_path.iterdir()] == ["a.html"]


def test_loss_curve(tmp_path):
    steps = np.arange(1, 41)
    history = pd.DataFrame(
        {
            "step": steps,
            "epoch": steps / 10,
            "train_loss": 10 * np.exp(-steps / 4),
            "eval_loss": np.where(steps % 10 == 0, 1.0 / steps, np.nan),
        }
    )
    (png,) = plots.loss_curve(history, tmp_path / "loss", formats=("png",))
    assert _is_png(png)
    # Only a training loss (no validation yet) still draws.
    assert _is_png(
        plots.loss_curve(history[["step", "train_loss"]], tmp_path / "t", formats=("png",))[0]
    )
    with pytest.raises(ValueError, match="step"):
        plots.loss_curve(history.drop(columns="step"), tmp_path / "x")
    with pytest.raises(ValueError, match="no finite"):
        plots.loss_curve(pd.DataFrame({"step": [1], "train_loss": [np.nan]}), tmp_path / "x")


def test_log_scale_only_when_losses_span_decades():
    assert plots._spans_decades(np.array([10.0, 0.01, np.nan]))
    assert not plots._spans_decades(np.array([1.0, 0.5]))
    assert not plots._spans_decades(np.array([10.0, 0.01, -1.0]))


@pytest.mark.parametrize("n", [50, 6_000])  # scatter, then hexbin
def test_parity_plot(tmp_path, n):
    rng = np.random.default_rng(0)
    t = rng.normal(size=n)
    (png,) = plots.parity_plot(
        t, t + 0.1 * rng.normal(size=n), tmp_path / "p", label="expr", formats=("png",)
    )
    assert _is_png(png)


def test_roc_pr_curves_binary_and_multiclass(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 60)
    probs = softmax(rng.normal(size=(60, 3)) + 2 * np.eye(3)[y])
    assert _is_png(
        plots.roc_pr_curves(y, probs, tmp_path / "multi", classes=list("abc"), formats=("png",))[0]
    )
    yb = (y > 0).astype(int)
    assert _is_png(
        plots.roc_pr_curves(
            yb, probs[:, 1], tmp_path / "bin", classes=["n", "p"], formats=("png",)
        )[0]
    )
    # A single class: no curve can be drawn, but the run still gets its picture.
    (png,) = plots.roc_pr_curves(
        np.zeros(4, int), np.full(4, 0.5), tmp_path / "one", classes=["n", "p"], formats=("png",)
    )
    assert _is_png(png)
    with pytest.raises(ValueError, match="class names"):
        plots.roc_pr_curves(y, probs, tmp_path / "x", classes=["a", "b"])


def test_confusion_matrix_plot(tmp_path):
    m = classification_metrics([0, 1, 1, 2], np.eye(3)[[0, 1, 2, 2]], classes=list("abc"))
    for normalize in (True, False):
        (png,) = plots.confusion_matrix_plot(
            m["confusion_matrix"],
            m["classes"],
            tmp_path / f"cm{normalize}",
            normalize=normalize,
            formats=("png",),
        )
        assert _is_png(png)
    with pytest.raises(ValueError, match="square"):
        plots.confusion_matrix_plot([[1, 2, 3]], ["a"], tmp_path / "x")


def test_comparison_bar(tmp_path):
    table = {"linear": {"r2": 0.6}, "cnn": {"r2": 0.95}, "transformer": {"mse": 1.0}}
    assert _is_png(plots.comparison_bar(table, "r2", tmp_path / "bar", formats=("png",))[0])
    with pytest.raises(ValueError, match="auroc"):
        plots.comparison_bar(table, "auroc", tmp_path / "x")
