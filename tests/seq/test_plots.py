"""Sequence pictures: worst predictions page, filter heatmaps, attribution logos."""

from __future__ import annotations

import numpy as np
import pytest

from genoformer.engine.metrics import softmax
from genoformer.seq.plots import (
    attribution_logos,
    filter_heatmaps,
    truncate_sequence,
    worst_predictions_html,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _random_sequences(n: int, length: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]


def test_truncate_sequence_elides_the_middle():
    assert truncate_sequence("ACGT") == "ACGT"
    long = "A" * 30 + "C" * 100 + "G" * 30
    short = truncate_sequence(long, 60)
    assert short.startswith("A" * 30) and short.endswith("G" * 30)
    assert "(100 bp)" in short and len(short) < 80


def test_worst_predictions_html_regression(tmp_path):
    n = 40
    seqs = _random_sequences(n, 150)
    truth = np.linspace(0, 1, n)
    pred = truth.copy()
    pred[7] += 5.0  # the worst
    pred[3] += 2.0  # the second worst
    pred[20] += 0.5  # not in the top 2
    ids = [f"seq_{i:03d}" for i in range(n)]
    path = worst_predictions_html(ids, seqs, truth, pred, tmp_path / "worst.html", top=2)
    text = path.read_text()

    def lines(seq: str) -> list[str]:  # the table shows sequences in lines of 60 bases
        return [seq[i : i + 60] for i in range(0, len(seq), 60)]

    assert "seq_007" in text
    assert all(line in text for line in lines(seqs[7]) + lines(seqs[3]))
    # Outside the top, only the truncated sequence appears (in the hover text).
    assert lines(seqs[20])[0] not in text and truncate_sequence(seqs[20]) in text
    assert text.index(lines(seqs[7])[0]) < text.index(lines(seqs[3])[0])  # ranked by error
    assert [p.name for p in tmp_path.iterdir()] == ["worst.html"]


def test_worst_predictions_html_classification(tmp_path):
    seqs = _random_sequences(6, 20)
    y = np.array([0, 1, 2, 0, 1, 2])
    logits = 4 * np.eye(3)[y]
    logits[4] = [6.0, 0.0, 0.0]  # confidently wrong
    path = worst_predictions_html(
        [f"s{i}" for i in range(6)],
        seqs,
        y,
        softmax(logits),
        tmp_path / "w.html",
        top=1,
        task="classification",
        classes=["enhancer", "promoter", "other"],
    )
    text = path.read_text()
    assert "s4" in text and "promoter" in text
    # Short sequences are shown whole in the hover text; only the worst is also in the table.
    assert text.count(seqs[4]) == 2
    assert all(text.count(seqs[i]) == 1 for i in (0, 1, 2, 3, 5))


def test_worst_predictions_html_rejects_bad_input(tmp_path):
    seqs = _random_sequences(3, 10)
    with pytest.raises(ValueError, match="differ in length"):
        worst_predictions_html(["a", "b"], seqs, [1, 2, 3], [1, 2, 3], tmp_path / "x.html")
    with pytest.raises(ValueError, match="task"):
        worst_predictions_html(
            ["a", "b", "c"], seqs, [1, 2, 3], [1, 2, 3], tmp_path / "x.html", task="ranking"
        )
    with pytest.raises(ValueError, match="top"):
        worst_predictions_html(
            ["a", "b", "c"], seqs, [1, 2, 3], [1, 2, 3], tmp_path / "x.html", top=0
        )


def test_filter_heatmaps(tmp_path):
    weights = np.random.default_rng(0).normal(size=(5, 4, 8))
    (png,) = filter_heatmaps(weights, tmp_path / "filters", formats=("png",))
    assert png.read_bytes()[:8] == PNG_MAGIC
    (png,) = filter_heatmaps(weights, tmp_path / "shared", shared_scale=True, formats=("png",))
    assert png.stat().st_size > 0
    with pytest.raises(ValueError, match="filters, 4, width"):
        filter_heatmaps(weights[:, :3], tmp_path / "x")


def test_attribution_logos(tmp_path):
    rng = np.random.default_rng(0)
    one_hot = np.eye(4)[rng.integers(0, 4, (2, 12))].transpose(0, 2, 1)
    scores = rng.normal(size=(2, 4, 12))
    (png,) = attribution_logos(
        scores, one_hot, tmp_path / "logos", window=(2, 10), titles=["a", "b"], formats=("png",)
    )
    assert png.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="window"):
        attribution_logos(scores, one_hot, tmp_path / "x", window=(5, 50))
    with pytest.raises(ValueError, match="must match"):
        attribution_logos(scores, one_hot[:, :, :6], tmp_path / "x")
