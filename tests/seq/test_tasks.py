"""The tasks that ship with the package: the teaching 8-mers and planted JASPAR motifs."""

from __future__ import annotations

import numpy as np
import pytest

from genoformer.engine.errors import InputError
from genoformer.seq.motifs import jaspar_motif
from genoformer.seq.tasks import (
    BACKGROUND,
    PLANTED_MOTIFS,
    motif_planting_task,
    plant_motifs,
    teaching_score,
    teaching_task,
)

# ---------------------------------------------------------------------------------------
# Teaching task


@pytest.mark.parametrize(
    ("kmer", "score"),
    [
        ("AAAAAAAA", 20.0),
        ("TTTTTTTT", 11.0),
        ("ACGTACGT", 15.5),  # (20 + 17 + 14 + 11) * 2 / 8
        ("TATAAAAA", 142 / 8 + 10),  # TAT: +10
        ("TATATAAA", 133 / 8 + 10),  # TAT twice still counts once
        ("GCGAAAAA", 145 / 8 - 10),  # GCG: -10
        ("TATGCGAA", 127 / 8),  # both: +10 - 10
        ("AGCGCTAT", 124 / 8),  # both, GCG first
        ("TAATGCAG", 127 / 8),  # neither: T-A-A-T and G-C-A-G are not the words
    ],
)
def test_teaching_score_hand_checked(kmer, score):
    assert teaching_score([kmer])[0] == pytest.approx(score)


def test_teaching_task_shapes_and_rule():
    data = teaching_task(2_000, seed=1)
    assert len(data.sequences) == len(data.ids) == 2_000
    assert data.ids[:2] == ["seq0", "seq1"]
    assert data.targets.shape == (2_000, 1) and data.targets.dtype == np.float32
    assert data.target_names == ["score"] and data.classes is None
    assert all(len(s) == 8 and set(s) <= set("ACGT") for s in data.sequences)
    np.testing.assert_allclose(data.targets[:, 0], teaching_score(data.sequences), rtol=1e-6)
    # Both motif terms occur: only +10 lifts a score above 20, only -10 drops it below 11.
    assert (data.targets > 20).any() and (data.targets < 11).any()
    has_tat = np.array(["TAT" in s for s in data.sequences])
    assert 0.05 < has_tat.mean() < 0.15  # about 6/64 of uniform 8-mers


def test_teaching_task_is_deterministic():
    a, b, c = teaching_task(500, seed=7), teaching_task(500, seed=7), teaching_task(500, seed=8)
    assert a.sequences == b.sequences
    np.testing.assert_array_equal(a.targets, b.targets)
    assert a.sequences != c.sequences


def test_teaching_bad_input():
    with pytest.raises(InputError, match="at least one"):
        teaching_task(0)
    with pytest.raises(InputError, match="length 5"):
        teaching_score(["ACGTA"])
    with pytest.raises(InputError, match="other than A, C, G, T"):
        teaching_score(["ACGTACGN"])


# ---------------------------------------------------------------------------------------
# Motif planting


@pytest.fixture(scope="module")
def planted():
    return plant_motifs(600, length=80, seed=3)


def _best_scores(sequences: list[str], log_odds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best log-odds score of each sequence on either strand, and where it starts."""
    idx = np.frombuffer("".join(sequences).encode(), dtype=np.uint8)
    idx = np.searchsorted(np.frombuffer(b"ACGT", dtype=np.uint8), idx).reshape(len(sequences), -1)
    w = log_odds.shape[1]
    windows = np.lib.stride_tricks.sliding_window_view(idx, w, axis=1)  # (N, P, w)
    fwd = log_odds[windows, np.arange(w)].sum(axis=2)
    rev = log_odds[::-1, ::-1][windows, np.arange(w)].sum(axis=2)
    both = np.maximum(fwd, rev)
    return both.max(axis=1), both.argmax(axis=1)


def test_planting_classes_and_shapes(planted):
    data = planted.data
    names = [jaspar_motif(m).name for m in PLANTED_MOTIFS]
    assert data.classes == [*names, BACKGROUND]
    assert data.targets.dtype == np.int64 and data.targets.shape == (600,)
    assert data.target_names == ["motif"]
    assert all(len(s) == 80 for s in data.sequences)
    # Every class is drawn about equally often by default.
    counts = np.bincount(data.targets, minlength=len(data.classes))
    assert counts.min() > 600 / 6 * 0.6


def test_planted_sites_hold_the_motif(planted):
    data, sites = planted.data, planted.sites
    assert list(sites["id"]) == data.ids
    for c, motif in enumerate(planted.motifs):
        rows = np.flatnonzero(data.targets == c)
        here = sites.iloc[rows]
        assert (here["matrix_id"] == motif.matrix_id).all()
        seqs = [data.sequences[i] for i in rows]
        # The recorded instance is what sits at the recorded start.
        for s, start, inst in zip(seqs, here["start"], here["instance"], strict=True):
            assert s[start : start + motif.width] == inst
        # And it is a real instance: it scores far above the motif's chance matches in
        # background sequences, and mostly is the best match in its sequence.
        lo = motif.log_odds()
        best, where = _best_scores(seqs, lo)
        bg = [data.sequences[i] for i in np.flatnonzero(data.targets == len(planted.motifs))]
        bg_best, _ = _best_scores(bg, lo)
        assert np.median(best) > np.median(bg_best) + 4
        assert np.mean(where == here["start"].to_numpy()) > 0.8
    assert set(sites["strand"][data.targets < len(planted.motifs)]) == {"+", "-"}
    assert (sites["start"][data.targets == len(planted.motifs)] == -1).all()


def test_planting_is_deterministic_and_configurable():
    a = motif_planting_task(50, length=40, motifs=["MAFK", "MA1115"], seed=5)
    b = motif_planting_task(50, length=40, motifs=["MAFK", "MA1115"], seed=5)
    assert a.sequences == b.sequences
    np.testing.assert_array_equal(a.targets, b.targets)
    assert a.classes == ["MAFK", "POU5F1", BACKGROUND]
    only_motifs = motif_planting_task(100, length=30, motifs=["MAFK"], background_fraction=0)
    assert only_motifs.classes == ["MAFK", BACKGROUND] and (only_motifs.targets == 0).all()
    gc_rich = plant_motifs(40, length=50, motifs=["MAFK"], gc=1.0, background_fraction=1.0)
    assert all(set(s) <= set("CG") for s in gc_rich.data.sequences)


def test_planting_bad_input():
    with pytest.raises(InputError, match="shorter than the widest motif"):
        motif_planting_task(10, length=8)
    with pytest.raises(InputError, match="NOTAFACTOR"):
        motif_planting_task(10, motifs=["NOTAFACTOR"])
    with pytest.raises(InputError, match="gc"):
        motif_planting_task(10, gc=1.5)
