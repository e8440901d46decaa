"""Per-variant attributions against closed forms, and their calibration by decoys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genoformer.engine.errors import InputError
from genoformer.engine.stats import (
    benjamini_hochberg,
    empirical_pvalues,
    leave_one_out_pvalues,
)
from genoformer.engine.stats import q_as_extra_test as _q_as_extra_test
from genoformer.gwas.model import attribution
from genoformer.gwas.model.attribution import (
    calibrate,
    gradient_x_input,
    integrated_gradients,
    mean_absolute,
    saliency,
    screen,
    substitution,
)

#: Dosage the hand-built models read for a missing call (as a learned embedding would).
MISSING_VALUE = 0.5


def cohort(n: int = 40, m: int = 12, c: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    G = rng.integers(0, 3, (n, m)).astype(np.float32)
    missing = rng.random((n, m)) < 0.1
    G[missing] = 0.0
    C = rng.normal(size=(n, c)).astype(np.float32)
    return G, missing, C


def linear_model(w: np.ndarray, v: np.ndarray):
    """f = w . g + v . covariates, reading a missing call as MISSING_VALUE."""
    wt, vt = torch.tensor(w, dtype=torch.float32), torch.tensor(v, dtype=torch.float32)

    def f(g, missing, covariates):
        if missing is not None:
            g = torch.where(missing, torch.full_like(g, MISSING_VALUE), g)
        return g @ wt + covariates @ vt

    return f


def mlp_model(m: int, seed: int = 0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(m, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def f(g, missing, covariates):
        if missing is not None:
            g = torch.where(missing, torch.full_like(g, MISSING_VALUE), g)
        return net(g)[:, 0] + covariates.sum(dim=1)

    return f


@pytest.fixture
def linear():
    G, missing, C = cohort()
    rng = np.random.default_rng(1)
    w = rng.normal(size=G.shape[1]).astype(np.float32)
    return G, missing, C, w, linear_model(w, np.array([0.3, -0.2]))


def test_saliency_and_gradient_x_input_of_a_linear_score(linear):
    G, missing, C, w, f = linear
    grads = saliency(f, G, missing, C, batch_size=7)
    expected = np.where(missing, 0.0, np.broadcast_to(w, G.shape))
    np.testing.assert_allclose(grads, expected, rtol=1e-6)
    gxi = gradient_x_input(f, G, missing, C)
    np.testing.assert_allclose(gxi, np.where(missing, 0.0, w * G), rtol=1e-6)


def test_integrated_gradients_from_zero_is_w_times_g(linear):
    G, missing, C, w, f = linear
    ig = integrated_gradients(f, G, None, C, n_steps=5, batch_size=16)
    np.testing.assert_allclose(ig, w * G, rtol=1e-5, atol=1e-6)
    # Missing calls are read through the missing value, not the dosage: attribution 0.
    ig_missing = integrated_gradients(f, G, missing, C, n_steps=5)
    np.testing.assert_allclose(ig_missing, np.where(missing, 0.0, w * G), rtol=1e-5, atol=1e-6)
    mean_base = integrated_gradients(f, G, None, C, baseline="mean", n_steps=5)
    np.testing.assert_allclose(mean_base, w * (G - G.mean(axis=0)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean_absolute(ig), np.abs(w) * np.abs(G).mean(axis=0), rtol=1e-5)


def test_integrated_gradients_complete_on_a_nonlinear_score():
    G, _, C = cohort(n=10, m=6)
    f = mlp_model(6)
    ig = integrated_gradients(f, G, None, C, n_steps=64)
    with torch.no_grad():
        gap = f(torch.tensor(G), None, torch.tensor(C)) - f(
            torch.zeros(10, 6), None, torch.tensor(C)
        )
    np.testing.assert_allclose(ig.sum(axis=1), gap.numpy(), atol=1e-4)


def test_smoothgrad_is_seeded_noise_around_integrated_gradients(linear):
    G, _, C, w, f = linear
    plain = integrated_gradients(f, G, None, C, n_steps=4)
    smooth = integrated_gradients(f, G, None, C, n_steps=4, smoothgrad_samples=8, seed=3)
    again = integrated_gradients(f, G, None, C, n_steps=4, smoothgrad_samples=8, seed=3)
    np.testing.assert_array_equal(smooth, again)
    assert not np.allclose(smooth, plain)
    # On a linear score the noise averages out: IG of x + e is w * (x + e).
    assert np.abs(smooth - plain).mean() < 0.2 * np.abs(w).mean()


def test_substitution_of_a_linear_score(linear):
    G, missing, C, w, f = linear
    result = substitution(f, G, missing, C, batch_size=13)
    read = np.where(missing, MISSING_VALUE, G)
    change = np.abs(np.array([0.0, 1.0, 2.0])[None, None, :] - read[:, :, None])
    np.testing.assert_allclose(result.importance, np.abs(w) * change.mean(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(result.effect, w, rtol=1e-4, atol=1e-5)
    base = f(torch.tensor(G), torch.tensor(missing), torch.tensor(C)).numpy()
    assert result.reference == pytest.approx(base.mean(), rel=1e-5)
    # Setting a column to level l: mean score = reference + w * (l - mean read dosage).
    expected = base.mean() + w[:, None] * (np.array([0, 1, 2.0]) - read.mean(axis=0)[:, None])
    np.testing.assert_allclose(result.mean_score, expected, rtol=1e-4, atol=1e-4)


def test_substitution_equals_naive_forward_passes():
    G, missing, C = cohort(n=15, m=7, seed=4)
    f = mlp_model(7, seed=2)
    result = substitution(f, G, missing, C, columns=[5, 1, 2], levels=(2, 0), batch_size=11)
    gt, mt, ct = torch.tensor(G), torch.tensor(missing), torch.tensor(C)
    with torch.no_grad():
        reference = f(gt, mt, ct)
        for k, j in enumerate([5, 1, 2]):
            changes, means = [], []
            for level in (0.0, 2.0):
                g, mm = gt.clone(), mt.clone()
                g[:, j], mm[:, j] = level, False
                y = f(g, mm, ct)
                changes.append((y - reference).abs().mean().item())
                means.append(y.mean().item())
            assert result.importance[k] == pytest.approx(np.mean(changes), rel=1e-5, abs=1e-6)
            np.testing.assert_allclose(result.mean_score[k], means, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.levels, [0.0, 2.0])


def test_empirical_and_leave_one_out_pvalues():
    null = np.array([0.1, 0.5, 0.5, 2.0])
    p = empirical_pvalues(np.array([3.0, 0.5, 0.0, np.nan]), null)
    np.testing.assert_allclose(p[:3], [1 / 5, 4 / 5, 5 / 5])
    assert np.isnan(p[3])
    # Against the other three: 2.0 beats all (1/4), 0.5 ties the other 0.5 (3/4).
    np.testing.assert_allclose(leave_one_out_pvalues(null), [4 / 4, 3 / 4, 3 / 4, 1 / 4])


def test_q_of_one_extra_test_equals_pooled_benjamini_hochberg():
    rng = np.random.default_rng(0)
    p_real = rng.uniform(size=50) ** 3
    extra = np.concatenate([rng.uniform(size=20) ** 2, [0.0, 1.0, p_real[3]]])
    pooled = [benjamini_hochberg(np.append(p_real, x))[-1] for x in extra]
    np.testing.assert_allclose(_q_as_extra_test(p_real, extra), pooled, rtol=1e-12)


def test_calibration_on_a_model_that_ignores_decoys_and_some_variants():
    """Used variants get p = 1 / (1 + decoys); ignored ones and decoys are never called."""
    n_real, n_decoys, used = 40, 400, [0, 3, 7, 11, 20]
    rng = np.random.default_rng(0)
    G = rng.integers(0, 3, (60, n_real)).astype(np.float32)
    decoys = G[rng.permutation(60)][:, rng.integers(0, n_real, n_decoys)]
    X = np.concatenate([G, decoys], axis=1)
    w = np.zeros(X.shape[1], dtype=np.float32)
    w[used] = rng.uniform(0.5, 1.0, len(used))
    f = linear_model(w, np.zeros(1))
    is_decoy = np.r_[np.zeros(n_real, bool), np.ones(n_decoys, bool)]
    scores = substitution(f, X, None, np.zeros((60, 1))).importance
    table = calibrate(scores, is_decoy)
    np.testing.assert_allclose(table["p"].to_numpy()[used], 1 / (1 + n_decoys))
    assert set(np.flatnonzero(table["called"].to_numpy())) == set(used)
    assert table.attrs["decoys_called"] == 0
    assert table.attrs["called"] == len(used)


@pytest.mark.parametrize("seed", range(5))
def test_calibration_with_noisy_null_scores_controls_false_calls(seed):
    """Null real variants score like decoys: few decoys called, FDR near its level."""
    rng = np.random.default_rng(seed)
    n_null, n_signal, n_decoys = 1800, 200, 2000
    scores = np.concatenate(
        [
            rng.exponential(size=n_null),
            rng.exponential(size=n_signal) + rng.uniform(2, 12, n_signal),
            rng.exponential(size=n_decoys),
        ]
    )
    is_decoy = np.r_[np.zeros(n_null + n_signal, bool), np.ones(n_decoys, bool)]
    table = calibrate(scores, is_decoy)
    called = table["called"].to_numpy()
    false = called[:n_null].sum() / max(called[: n_null + n_signal].sum(), 1)
    assert false <= 0.1
    assert table.attrs["decoys_called_share"] <= 0.05
    assert called[n_null : n_null + n_signal].sum() > 0.5 * n_signal
    # Leave-one-out p-values of the decoys are uniform: 5% of them at most 0.05.
    assert np.mean(table["p"].to_numpy()[is_decoy] <= 0.05) == pytest.approx(0.05, abs=0.01)


def test_screened_scores_keep_full_resolution_p_values():
    rng = np.random.default_rng(2)
    scores = rng.exponential(size=300)
    scores[:10] += 20
    is_decoy = np.r_[np.zeros(100, bool), np.ones(200, bool)]
    kept = screen(scores, 30)
    assert set(range(10)) <= set(kept) and len(kept) == 30
    screened = np.full(300, np.nan)
    screened[kept] = scores[kept]
    full = calibrate(scores, is_decoy, fit_tail=False)
    part = calibrate(screened, is_decoy)  # decoys left out: counts only, no fitted tail
    np.testing.assert_allclose(part["p"].to_numpy()[kept], full["p"].to_numpy()[kept])
    left_out = np.setdiff1d(np.arange(100), kept)
    np.testing.assert_array_equal(part["p"].to_numpy()[left_out], 1.0)
    assert part["p"].to_numpy()[0] == pytest.approx(1 / 201)


def test_fitted_tail_reaches_below_the_count_and_stays_calibrated():
    """40 exponential decoys: a score far out gets about its true tail probability, not
    1/41; the decoys' leave-one-out p-values stay uniform in the tail."""
    rng = np.random.default_rng(0)
    null = rng.exponential(size=40)
    p = empirical_pvalues(np.array([12.0, 0.5]), null, fit_tail=True)
    assert 1e-7 < p[0] < 1e-3  # exp(-12) = 6e-6 (fitted: 2e-4); the count alone gives 1/41
    assert p[1] == pytest.approx(empirical_pvalues(np.array([0.5]), null)[0])  # many above
    below = []
    for seed in range(200):
        null = np.random.default_rng(seed).exponential(size=40)
        below.append(np.mean(leave_one_out_pvalues(null, fit_tail=True) <= 0.01))
    assert np.mean(below) == pytest.approx(0.01, abs=0.006)
    # Too few positive decoys to fit: counts.
    few = np.r_[np.zeros(36), 1.0, 2.0, 3.0, 4.0]
    assert empirical_pvalues(np.array([9.0]), few, fit_tail=True)[0] == pytest.approx(1 / 41)


def test_bad_inputs_name_the_fix():
    G, missing, C = cohort(n=5, m=4)
    f = linear_model(np.ones(4), np.zeros(2))
    with pytest.raises(InputError, match="expected \\(samples, variants\\)"):
        saliency(f, G[0], None, C)
    with pytest.raises(InputError, match="missing has shape"):
        saliency(f, G, missing[:, :2], C)
    with pytest.raises(InputError, match="covariates have shape"):
        saliency(f, G, missing, C[:3])
    with pytest.raises(InputError, match="NaN"):
        saliency(f, np.where(missing, np.nan, G), None, C)
    # NaN where flagged missing is fine.
    saliency(f, np.where(missing, np.nan, G), missing, C)
    with pytest.raises(InputError, match="unknown baseline"):
        integrated_gradients(f, G, None, C, baseline="median")
    with pytest.raises(InputError, match="baseline has shape"):
        integrated_gradients(f, G, None, C, baseline=np.zeros(3))
    with pytest.raises(InputError, match="n_steps"):
        integrated_gradients(f, G, None, C, n_steps=0)
    with pytest.raises(InputError, match="out of range"):
        substitution(f, G, None, C, columns=[4])
    with pytest.raises(InputError, match="batch_size"):
        saliency(f, G, None, C, batch_size=0)
    with pytest.raises(InputError, match="no decoy"):
        calibrate(np.ones(4), np.zeros(4, bool))
    with pytest.raises(InputError, match="screen budget"):
        screen(np.ones(4), 0)
    assert attribution.METHODS == ("saliency", "gradient_x_input", "ig", "substitution")
