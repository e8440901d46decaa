"""JASPAR loading, filters as motifs, Tomtom matching and logos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genoformer.engine.errors import InputError
from genoformer.seq.motifs import (
    DEFAULT_RELEASE,
    Motif,
    activation_ppms,
    information_content,
    jaspar_motif,
    load_jaspar,
    logo,
    logo_grid,
    tomtom_matches,
    trim_ppm,
)

# One load per test session; load_jaspar caches it per release.
JASPAR = load_jaspar()


def _one_hot(idx: np.ndarray) -> np.ndarray:
    return np.eye(4, dtype=np.float32)[idx].transpose(0, 2, 1)


def _planted(motif: Motif, n: int = 400, length: int = 60, seed: int = 0):
    """Random sequences, every other one with an instance of ``motif`` at a random place."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 4, size=(n, length))
    cdf = np.cumsum(motif.ppm, axis=0)
    rows = np.arange(0, n, 2)
    inst = np.minimum((rng.random((rows.size, motif.width))[:, None] > cdf).sum(axis=1), 3)
    starts = rng.integers(0, length - motif.width + 1, size=rows.size)
    idx[rows[:, None], starts[:, None] + np.arange(motif.width)] = inst
    return idx, rows, starts


# ---------------------------------------------------------------------------------------
# JASPAR


def test_jaspar_loads_offline_with_annotation():
    assert len(JASPAR) > 500
    ids = {m.matrix_id.split(".")[0] for m in JASPAR}
    assert {"MA0139", "MA0036", "MA0080", "MA1115", "MA0496"} <= ids
    assert all(m.collection == "CORE" and m.tax_group == "vertebrates" for m in JASPAR)
    mafk = next(m for m in JASPAR if m.name == "MAFK")
    assert mafk.family == ("Maf-related",)
    assert "bZIP" in mafk.tf_class[0]
    for m in JASPAR[:50]:
        assert m.ppm.shape == (4, m.width)
        np.testing.assert_allclose(m.ppm.sum(axis=0), 1.0)
    assert load_jaspar()[0] is JASPAR[0]  # cached
    with pytest.raises(ValueError):
        JASPAR[0].ppm[0, 0] = 1.0  # shared matrices are read-only


def test_jaspar_other_release_and_selection():
    old = load_jaspar(release="JASPAR2020")
    assert "MA0139.1" in {m.matrix_id for m in old}
    plants = load_jaspar(tax_group="plants")
    assert plants and all(m.tax_group == "plants" for m in plants)
    with pytest.raises(InputError, match="JASPAR1999"):
        load_jaspar(release="JASPAR1999")
    with pytest.raises(InputError, match="no JASPAR motifs"):
        load_jaspar(tax_group="martians")


def test_jaspar_motif_by_id_and_name():
    latest = jaspar_motif("MA0139")
    assert latest.name == "CTCF" and latest.matrix_id in {m.matrix_id for m in JASPAR}
    old = jaspar_motif("MA0139.1")
    assert old.matrix_id == "MA0139.1" and old.width == 19
    assert jaspar_motif("mafk").matrix_id == jaspar_motif("MA0496").matrix_id
    assert jaspar_motif("POU5F1").family == ("POU domain factors",)
    with pytest.raises(InputError, match="POU5F1"):  # suggests the close name
        jaspar_motif("POU5F")
    with pytest.raises(InputError, match="MA9999"):
        jaspar_motif("MA9999")


def test_motif_helpers():
    m = jaspar_motif("MA0496")
    assert m.consensus == "".join("ACGT"[i] for i in m.ppm.argmax(axis=0))
    rc = m.reverse_complement()
    np.testing.assert_allclose(rc.ppm, m.ppm[::-1, ::-1])
    lo = m.log_odds()
    assert lo.shape == (4, m.width) and np.isfinite(lo).all()
    assert (lo[m.ppm.argmax(axis=0), np.arange(m.width)] > 0).all()


def test_information_and_trim():
    flat = np.full((4, 3), 0.25)
    sharp = np.eye(4)[:, [0, 1]]
    np.testing.assert_allclose(information_content(flat), 0.0, atol=1e-12)
    np.testing.assert_allclose(information_content(sharp), 2.0)
    padded = np.concatenate([flat, sharp, flat[:, :1]], axis=1)
    assert trim_ppm(padded) == (3, 5)
    assert trim_ppm(flat) == (0, 3)  # nothing informative: keep all


# ---------------------------------------------------------------------------------------
# Tomtom


def test_tomtom_finds_a_jaspar_motif_itself_through_flat_padding():
    pou = jaspar_motif("MA1115")
    padded = np.concatenate([np.full((4, 2), 0.25), pou.ppm, np.full((4, 3), 0.25)], axis=1)
    hits = tomtom_matches([padded], names=["oct4"], top=3)
    assert list(hits["rank"]) == [1, 2, 3]
    best = hits.iloc[0]
    assert best["query"] == "oct4"
    assert best["target_id"] == pou.matrix_id
    assert best["target_family"] == "POU domain factors"
    assert best["p_value"] < 1e-10
    assert best["e_value"] == pytest.approx(best["p_value"] * len(JASPAR))
    assert best["q_value"] <= best["e_value"] + 1e-300
    assert (best["query_start"], best["query_width"]) == (2, pou.width)
    assert (best["offset"], best["overlap"], best["strand"]) == (0, pou.width, "+")
    assert hits["p_value"].is_monotonic_increasing


def test_tomtom_noisy_maf_and_reverse_complement():
    mafk = jaspar_motif("MA0496")
    # 20% of each column replaced by random probabilities, five draws, and both strands.
    noisy = []
    for seed in range(5):
        noise = np.random.default_rng(seed).dirichlet(np.ones(4), size=mafk.width).T
        noisy.append(0.8 * mafk.ppm + 0.2 * noise)
    queries = noisy + [q[::-1, ::-1] for q in noisy]
    ctcf_rc = jaspar_motif("MA0139").reverse_complement().ppm
    hits = tomtom_matches(queries + [ctcf_rc], names=[f"q{i}" for i in range(10)] + ["ctcf"])
    assert list(hits["query"]) == [f"q{i}" for i in range(10)] + ["ctcf"]
    maf = hits.iloc[:10]
    assert maf["target_family"].str.contains("Maf-related").all()
    assert (maf["p_value"] < 1e-6).all()
    assert (maf["q_value"] < 1e-3).all()
    # A query and its reverse complement match the same target on opposite strands.
    for i in range(5):
        fwd, rev = maf.iloc[i], maf.iloc[i + 5]
        assert fwd["target_id"] == rev["target_id"] and fwd["strand"] != rev["strand"]
    assert hits.iloc[10]["target_name"] == "CTCF" and hits.iloc[10]["strand"] == "-"


def test_tomtom_offset_is_the_target_column():
    ctcf = jaspar_motif("MA0139")
    piece = ctcf.ppm[:, 3:9]
    hits = tomtom_matches([piece, piece[::-1, ::-1]], trim_bits=None)
    assert list(hits["target_id"]) == [ctcf.matrix_id] * 2
    assert list(zip(hits["offset"], hits["overlap"], hits["strand"], strict=True)) == [
        (3, 6, "+"),
        (ctcf.width - 9, 6, "-"),  # counted on the target's reverse complement
    ]


def test_tomtom_bad_queries():
    with pytest.raises(InputError, match="log-odds"):
        tomtom_matches([jaspar_motif("MA0496").log_odds()])
    with pytest.raises(InputError, match="expected \\(4, width\\)"):
        tomtom_matches([np.ones((5, 4))])
    with pytest.raises(InputError, match="names"):
        tomtom_matches([np.eye(4)], names=["a", "b"])


# ---------------------------------------------------------------------------------------
# Filters as motifs


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_activation_ppms_recovers_planted_motif(padding):
    mafk = jaspar_motif("MA0496")  # width 10: even, so 'same' padding is asymmetric
    idx, _, _ = _planted(mafk)
    x = _one_hot(idx)
    weights = torch.tensor(
        np.stack([mafk.log_odds(), np.full((4, mafk.width), -1.0)]), dtype=torch.float32
    )
    act = torch.nn.functional.conv1d(
        torch.from_numpy(x), weights, padding="same" if padding == "same" else 0
    )
    result = activation_ppms(act, x, mafk.width, padding=padding)
    assert result.ppms.shape == (2, 4, mafk.width)
    assert result.n_sites[0] > 50
    # The never-active filter is flagged and uniform.
    assert result.n_sites[1] == 0
    np.testing.assert_allclose(result.ppms[1], 0.25)
    np.testing.assert_allclose(result.ppms.sum(axis=1), 1.0)
    ppm = result.ppms[0]
    assert ppm.argmax(axis=0).tolist() == mafk.ppm.argmax(axis=0).tolist()
    assert np.abs(ppm - mafk.ppm).mean() < 0.08
    # Windows above half the peak are the strongest instances, sharper than MAFK's own
    # matrix, so the best match may be its paralogue (MafG): the family is what must hold.
    best = tomtom_matches(ppm[None]).iloc[0]
    assert "Maf-related" in best["target_family"] and best["p_value"] < 1e-8


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_activation_ppms_window_alignment_and_top():
    word = np.array([0, 3, 2, 2, 1, 0])  # ATGGCA
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 4, size=(30, 40))
    idx[5, 0:6] = word  # at the left edge: the window must start at 0, not off the end
    idx[9, 34:40] = word  # at the right edge
    idx[12, 17:23] = word
    x = _one_hot(idx)
    w = torch.from_numpy(np.eye(4, dtype=np.float32)[word].T[None])  # scores 6 on an exact hit
    act = torch.nn.functional.conv1d(torch.from_numpy(x), w, padding="same")
    exact = activation_ppms(act, x, 6, threshold=0.99, pseudocount=0.0)
    assert exact.n_sites.tolist() == [3]
    np.testing.assert_allclose(exact.ppms[0], np.eye(4)[word].T)
    # Distinct values, so that no ties sit at the cut.
    jitter = act.numpy() + 1e-3 * rng.random(act.shape, dtype=np.float32)
    top = activation_ppms(jitter, x, 6, threshold=0.0, top=5)
    assert top.n_sites.tolist() == [5]
    assert top.ppms[0].argmax(axis=0).tolist() == word.tolist()
    with pytest.raises(InputError, match="positions"):
        activation_ppms(act[:, :, :-1], x, 6)
    with pytest.raises(InputError, match="same N"):
        activation_ppms(act[:3], x, 6)


# ---------------------------------------------------------------------------------------
# Logos


def test_logo_kinds():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    mafk = jaspar_motif("MA0496")
    assert logo(mafk.ppm, ax=ax, title="MAFK") is ax
    assert ax.get_ylim() == (0, 2) and ax.get_title() == "MAFK"
    ax2 = fig.add_subplot(2, 1, 2)
    logo(mafk.log_odds(), ax=ax2, kind="weight")
    assert ax2.get_ylim()[0] < 0  # negative weights drawn below zero
    with pytest.raises(InputError, match="kind='weight'"):
        logo(mafk.log_odds(), ax=ax, kind="probability")
    with pytest.raises(InputError, match="shape"):
        logo(np.ones((3, 5)), ax=ax)


def test_logo_grid_writes_png_atomically(tmp_path):
    ppms = [jaspar_motif(k).ppm for k in ("MA0139", "MA0496", "MA1115")]
    written = logo_grid(ppms, ["CTCF", "MAFK", "POU5F1"], tmp_path / "logos.png", columns=2)
    assert written == [tmp_path / "logos.png"]
    assert (tmp_path / "logos.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["logos.png"]  # no temporary left behind
    with pytest.raises(InputError, match="titles"):
        logo_grid(ppms, ["one"], tmp_path / "bad.png")


def test_default_release_is_shipped():
    import pyjaspar

    assert DEFAULT_RELEASE in pyjaspar.jaspar_releases
