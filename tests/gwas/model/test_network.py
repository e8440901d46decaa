"""The genotype model: both backbones forward, losses, score, save/load, bad configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genoformer.engine.errors import InputError
from genoformer.gwas.model.inputs import window_layout
from genoformer.gwas.model.network import GenotypeModel, GenotypeModelConfig, score

N_VARIANTS = 12


pytestmark = pytest.mark.usefixtures("one_thread")


def _config(**options) -> GenotypeModelConfig:
    chroms = ["1"] * 7 + ["2"] * 5
    base = dict(
        n_variants=N_VARIANTS,
        n_covariates=2,
        window=3,
        token_of_column=window_layout(chroms, None, 3).tolist(),
        d_model=16,
        n_layers=2,
        n_heads=2,
        dropout=0.0,
        target_mean=5.0,
        target_std=2.0,
    )
    return GenotypeModelConfig(**{**base, **options})


def _batch(n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    genotypes = torch.randint(0, 3, (n, N_VARIANTS), generator=g).float()
    missing = torch.rand(n, N_VARIANTS, generator=g) < 0.1
    covariates = torch.randn(n, 2, generator=g)
    return genotypes, missing, covariates


@pytest.mark.parametrize(
    ("backbone", "pooling"), [("gptj", None), ("bert", "cls"), ("bert", "mean")]
)
def test_regression_forward_loss_and_units(backbone, pooling):
    torch.manual_seed(0)
    model = GenotypeModel(_config(backbone=backbone, pooling=pooling)).eval()
    genotypes, missing, covariates = _batch()
    labels = torch.linspace(3, 7, 6)
    out = model(genotypes, missing=missing, covariates=covariates, labels=labels)
    assert out.logits.shape == (6, 1)
    raw = model.raw_forward(genotypes, missing, covariates)
    # predictions come back in the targets' units, the loss is on the standardised scale
    torch.testing.assert_close(out.logits, raw * 2.0 + 5.0)
    torch.testing.assert_close(out.loss, torch.mean((raw[:, 0] - (labels - 5.0) / 2.0) ** 2))
    assert model.config.n_tokens == 5  # 3 + 2 windows of 3 on two chromosomes
    s = score(model, genotypes, missing, covariates)
    torch.testing.assert_close(s, out.logits[:, 0])


@pytest.mark.parametrize("backbone", ["gptj", "bert"])
def test_classification_loss_score_and_gradients(backbone):
    torch.manual_seed(1)
    model = GenotypeModel(
        _config(backbone=backbone, task="classification", num_labels=2, classes=["control", "case"])
    )
    genotypes, missing, covariates = _batch()
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    out = model(genotypes, missing=missing, covariates=covariates, labels=labels)
    assert out.logits.shape == (6, 2)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    x = genotypes.clone().requires_grad_(True)
    s = score(model.eval(), x, missing, covariates)
    torch.testing.assert_close(s, out.logits[:, 1] - out.logits[:, 0])
    s.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # a missing cell does not depend on the value it holds
    assert (x.grad[missing] == 0).all()


def test_gptj_is_causal_and_reads_the_last_token():
    # The last window's variants reach the pooled output only through the last positions:
    # changing the first variant must still change the output (it is attended to).
    torch.manual_seed(2)
    model = GenotypeModel(_config(backbone="gptj")).eval()
    genotypes, missing, covariates = _batch(2)
    changed = genotypes.clone()
    changed[:, 0] = 2.0 - changed[:, 0]
    a = model(genotypes, missing=missing, covariates=covariates).logits
    b = model(changed, missing=missing, covariates=covariates).logits
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("backbone", ["gptj", "bert"])
def test_save_and_load_round_trip(backbone, tmp_path):
    torch.manual_seed(3)
    model = GenotypeModel(_config(backbone=backbone, covariate_names=["age", "sex"])).eval()
    genotypes, missing, covariates = _batch()
    model.save_pretrained(tmp_path)
    loaded = GenotypeModel.from_pretrained(tmp_path).eval()
    assert loaded.config.token_of_column == model.config.token_of_column
    assert loaded.config.covariate_names == ["age", "sex"]
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(genotypes, missing, covariates).logits,
            model(genotypes, missing, covariates).logits,
        )


@pytest.mark.parametrize("backbone", ["gptj", "bert"])
def test_additive_term_is_linear_in_standardised_dosage(backbone, tmp_path):
    """The genotypes' linear term starts at zero, adds w * (x - mean) / std per column,
    reads a missing call as the mean, and survives save/load."""
    mean, std = np.linspace(0.2, 1.8, N_VARIANTS), np.linspace(0.5, 1.0, N_VARIANTS)
    torch.manual_seed(5)
    config = _config(backbone=backbone, genotype_mean=mean.tolist(), genotype_std=std.tolist())
    model = GenotypeModel(config).eval()
    genotypes, missing, covariates = _batch()
    off = GenotypeModel(_config(backbone=backbone, additive=False))
    off.load_state_dict(model.state_dict(), strict=False)
    off.eval()
    with torch.no_grad():
        at_start = model(genotypes, missing, covariates).logits
        torch.testing.assert_close(at_start, off(genotypes, missing, covariates).logits)
        w = torch.linspace(-1.0, 1.0, N_VARIANTS)
        model.genotype_linear.weight.copy_(w[None])
        moved = model(genotypes, missing, covariates).logits - at_start
    z = (genotypes.numpy() - mean) / std
    expected = np.where(missing.numpy(), 0.0, z) @ w.numpy() * config.target_std
    np.testing.assert_allclose(moved[:, 0].numpy(), expected, rtol=1e-4, atol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = GenotypeModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(genotypes, missing, covariates).logits,
            model(genotypes, missing, covariates).logits,
        )
    with pytest.raises(InputError, match="genotype_mean has 3 entries for 12 variants"):
        _config(genotype_mean=[0.0, 1.0, 2.0])


def test_bad_configs_and_inputs():
    with pytest.raises(InputError, match="unknown backbone"):
        _config(backbone="lstm")
    with pytest.raises(InputError, match="pooling 'last' does not fit"):
        _config(backbone="bert", pooling="last")
    with pytest.raises(InputError, match="window is 0"):
        _config(window=0)
    with pytest.raises(InputError, match="multiple of n_heads"):
        _config(d_model=10, n_heads=4)
    model = GenotypeModel(_config())
    genotypes, missing, covariates = _batch()
    with pytest.raises(InputError, match="11 genotype columns; the model takes 12"):
        model(genotypes[:, :11])
    with pytest.raises(InputError, match="covariates"):
        model(genotypes, missing)


def test_training_step_lowers_the_loss():
    torch.manual_seed(4)
    model = GenotypeModel(_config(n_covariates=0, target_mean=0.0, target_std=1.0))
    genotypes, missing, _ = _batch(64, seed=5)
    y = genotypes[:, 0] - genotypes[:, 5]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = model(genotypes, missing=missing, labels=y).loss
        first = first if first is not None else float(loss.detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.5 * first
    assert np.isfinite(float(loss.detach()))
