"""Attributions: fast ISM against naive ISM and tangermeme, gradients against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genoformer.engine.errors import InputError
from genoformer.seq import attribution as interpret
from genoformer.seq.attribution import gradient_x_input, saliency, saturation_mutagenesis
from genoformer.seq.models import SeqModelConfig, SequenceModel

BASES = "ACGT"


def one_hot(seqs: list[str]) -> torch.Tensor:
    x = torch.zeros(len(seqs), 4, len(seqs[0]))
    for n, s in enumerate(seqs):
        for i, ch in enumerate(s):
            if ch in BASES:
                x[n, BASES.index(ch), i] = 1
    return x


def random_x(n: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n, length), generator=g)
    return torch.nn.functional.one_hot(idx, 4).permute(0, 2, 1).float()


def make_model(seed: int = 0, **kwargs) -> SequenceModel:
    torch.manual_seed(seed)
    n_outputs = kwargs.get("n_outputs", 1)
    kwargs.setdefault("target_mean", [0.5 * k for k in range(n_outputs)])
    kwargs.setdefault("target_std", [1.0 + k for k in range(n_outputs)])
    model = SequenceModel(SeqModelConfig(**kwargs))
    # Non-trivial running statistics, so eval-mode batch norm is not the identity.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def naive_ism(model: SequenceModel, x: torch.Tensor, target: int | None = None) -> np.ndarray:
    """Every one of the 4L mutants of each sequence through the whole model."""
    n, _, length = x.shape
    out = np.zeros((n, 4, length), dtype=np.float64)
    with torch.no_grad():
        for s in range(n):
            mutants = x[s].repeat(4 * length, 1, 1)
            for b in range(4):
                for i in range(length):
                    mutants[b * length + i, :, i] = 0
                    mutants[b * length + i, b, i] = 1
            y = model(mutants).logits.double()
            y0 = model(x[s : s + 1]).logits.double()
            d = y - y0
            d = d.mean(dim=1) if target is None else d[:, target]
            out[s] = d.view(4, length).numpy()
    return out


@pytest.mark.parametrize(
    ("kwargs", "length"),
    [
        (dict(architecture="cnn", filter_width=3, pooling="maxmean"), 40),
        (dict(architecture="cnn", filter_width=7, pooling="max", n_outputs=2), 33),
        (dict(architecture="cnn", filter_width=5, pooling="mean"), 17),  # L == 4h + 1
        (dict(architecture="deep_cnn", filter_width=5, n_conv_layers=3, pooling="maxmean"), 70),
        (dict(architecture="deep_cnn", filter_width=3, n_conv_layers=2, pooling="max"), 50),
        (dict(architecture="deep_cnn", filter_width=3, n_conv_layers=2, pooling="mean"), 25),
        (dict(architecture="deep_cnn", filter_width=3, n_conv_layers=3, pooling="maxmean"), 12),
    ],
)
@pytest.mark.parametrize("path", ["fast", "fast-without-first-layer-formula", "full-forward"])
def test_fast_ism_equals_naive_ism(kwargs, length, path, monkeypatch):
    if path == "fast-without-first-layer-formula":
        monkeypatch.setattr(interpret, "_linear_first_step", lambda plan: False)
    if path == "full-forward":  # what a model with a step the fast path does not know gets
        monkeypatch.setattr(interpret, "_layer_plan", lambda model: None)
    model = make_model(n_filters=12, hidden_size=16, **kwargs)
    x = random_x(3, length, seed=length)
    x[1, :, 0] = 0  # an N at the first position and one in the middle
    x[2, :, length // 2] = 0
    expected = naive_ism(model, x)
    # A small batch size puts the edits of one sequence in several batches.
    got = saturation_mutagenesis(model, x, batch_size=37)
    assert got.shape == (3, 4, length) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5 * max(1.0, np.abs(expected).max()))
    # The first and last positions really change the output (the edges are not skipped).
    assert np.abs(expected[:, :, 0]).max() > 0 and np.abs(expected[:, :, -1]).max() > 0
    # Reference bases score exactly 0; an N gets all four substitutions.
    assert np.all(got[x.numpy() == 1] == 0)
    assert np.all(got[1, :, 0] != 0)
    np.testing.assert_allclose(
        saturation_mutagenesis(model, x, fast=False), expected, atol=1e-5, rtol=0
    )


def test_fast_ism_with_a_target_and_centering():
    model = make_model(architecture="cnn", n_filters=8, filter_width=5, n_outputs=3)
    x = random_x(2, 30)
    expected = naive_ism(model, x, target=2)
    got = saturation_mutagenesis(model, x, target=2, center=True)
    expected -= expected.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 0, atol=1e-5)


class _Logits(torch.nn.Module):
    """tangermeme calls ``model(X)`` and expects a tensor."""

    def __init__(self, model: SequenceModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def test_ism_reproduces_tangermeme():
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis as tm_ism

    model = make_model(architecture="cnn", n_filters=8, filter_width=5, n_outputs=3)
    x = random_x(4, 60, seed=3)
    x[0, :, 5] = 0
    ours = saturation_mutagenesis(model, x, center=True, hypothetical=False)
    theirs = tm_ism(_Logits(model), x, device="cpu").numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    ours = saturation_mutagenesis(model, x, target=1, center=True)
    theirs = tm_ism(_Logits(model), x, target=1, hypothetical=True, device="cpu").numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_gradient_x_input_reproduces_tangermeme_saliency():
    from tangermeme.saliency import saliency as tm_saliency

    model = make_model(architecture="deep_cnn", n_filters=8, n_conv_layers=2, n_outputs=2)
    x = random_x(3, 40, seed=4)
    ours = gradient_x_input(model, x, target=1, center=True)
    theirs = tm_saliency(_Logits(model), x, target=1, device="cpu").numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_tat_detector_drops_most_at_tat():
    # One filter that reads T, A, T and fires (1) only on TAT; max pooling; identity head.
    model = make_model(
        architecture="cnn", n_filters=1, filter_width=3, pooling="max", hidden_size=1
    )
    with torch.no_grad():
        conv = model.first_conv
        conv.weight.zero_()
        for offset, base in enumerate("TAT"):
            conv.weight[0, BASES.index(base), offset] = 1.0
        conv.bias.fill_(-2.0)
        for layer in (model.head[1], model.head[3]):
            layer.weight.fill_(1.0)
            layer.bias.zero_()
    rng = np.random.default_rng(0)
    background = "".join(rng.choice(list("ACG"), 50))  # no T, so no TAT anywhere else
    seq = background[:20] + "TAT" + background[23:]
    x = one_hot([seq])
    assert model(x).logits.item() == pytest.approx(1.0)
    ism = saturation_mutagenesis(model, x)
    drop = ism[0].sum(axis=0)  # summed over the three substitutions at each position
    assert set(np.argsort(drop)[:3]) == {20, 21, 22}
    np.testing.assert_allclose(drop[20:23], -3.0, atol=1e-6)
    assert np.all(drop[np.r_[0:20, 23:50]] >= 0)
    attr = gradient_x_input(model, x)
    assert set(np.argsort(-attr[0].sum(axis=0))[:3]) == {20, 21, 22}


def test_linear_model_closed_forms():
    length = 12
    model = make_model(
        architecture="linear", seq_length=length, target_std=[2.0], target_mean=[1.0]
    )
    x = random_x(5, length, seed=7)
    weight = model.linear.weight.detach().view(4, length).numpy()
    # d output / d x = std * W, so gradient x input = std * W * x.
    np.testing.assert_allclose(saliency(model, x), np.broadcast_to(2 * weight, x.shape), atol=1e-6)
    np.testing.assert_allclose(gradient_x_input(model, x), 2 * weight * x.numpy(), atol=1e-6)
    # A substitution of base b at i changes the output by std * (W[b, i] - W[ref, i]).
    ref = (weight[None] * x.numpy()).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        saturation_mutagenesis(model, x), 2 * (weight[None] - ref), atol=1e-5
    )


def test_transformer_ism_by_full_forward_passes():
    model = make_model(
        architecture="transformer", d_model=16, n_layers=1, n_heads=2, kmer=2, seq_length=20
    )
    x = random_x(2, 20, seed=9)
    np.testing.assert_allclose(
        saturation_mutagenesis(model, x, batch_size=19), naive_ism(model, x), atol=1e-5
    )
    with pytest.raises(InputError, match="saturation_mutagenesis"):
        gradient_x_input(model, x)


def test_classification_targets():
    binary = make_model(architecture="cnn", task="classification", n_outputs=2, n_filters=4)
    x = random_x(3, 20, seed=5)
    np.testing.assert_allclose(
        saturation_mutagenesis(binary, x), saturation_mutagenesis(binary, x, target=1)
    )
    np.testing.assert_allclose(gradient_x_input(binary, x), gradient_x_input(binary, x, target=1))
    multi = make_model(architecture="cnn", task="classification", n_outputs=4, n_filters=4)
    predicted = multi(x).logits.argmax(dim=1)
    ism = saturation_mutagenesis(multi, x)
    for n, k in enumerate(predicted.tolist()):
        np.testing.assert_allclose(
            ism[n], saturation_mutagenesis(multi, x[n : n + 1], target=k)[0], atol=1e-6
        )


def test_model_mode_is_restored_and_numpy_input_works():
    model = make_model(architecture="deep_cnn", n_filters=4, n_conv_layers=1)
    model.train()
    x = random_x(2, 30).numpy()
    a = saturation_mutagenesis(model, x)
    assert model.training
    np.testing.assert_array_equal(saturation_mutagenesis(model, x, progress=True), a)
    np.testing.assert_allclose(a, saturation_mutagenesis(model, x, fast=False), atol=1e-5)


def test_bad_input_is_an_input_error():
    model = make_model(architecture="cnn", n_filters=4)
    with pytest.raises(InputError, match=r"\(N, 4, L\)"):
        saturation_mutagenesis(model, np.zeros((2, 5, 10)))
    with pytest.raises(InputError, match="batch axis"):
        saturation_mutagenesis(model, np.zeros((4, 10)))
    with pytest.raises(InputError, match="out of range"):
        gradient_x_input(model, random_x(1, 10), target=3)
