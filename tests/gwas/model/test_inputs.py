"""Genotype tokens: interpolation codes, missing calls, windows, decoys, the dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genoformer.engine.errors import InputError
from genoformer.gwas.model.inputs import (
    CohortInputs,
    GenotypeDataset,
    GenotypeEmbedding,
    choose_decoys,
    decoy_permutation,
    genotype_codes,
    split_missing,
    window_layout,
    with_decoys,
)


def test_codes_at_integers_are_one_hot_and_interpolate_between():
    x = torch.tensor([[0.0, 1.0, 2.0, 0.25, 1.5]])
    codes = genotype_codes(x)
    assert codes.shape == (1, 5, 4)
    np.testing.assert_allclose(codes[0, :3].numpy(), np.eye(4)[:3])
    np.testing.assert_allclose(codes[0, 3].numpy(), [0.75, 0.25, 0.0, 0.0])
    np.testing.assert_allclose(codes[0, 4].numpy(), [0.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(codes.sum(-1).numpy(), 1.0)


def test_missing_cells_use_only_the_missing_code():
    x = torch.tensor([[1.0, float("nan"), 2.0]])
    missing = torch.tensor([[True, False, False]])
    codes = genotype_codes(x, missing)
    np.testing.assert_allclose(codes[0, 0].numpy(), [0, 0, 0, 1])
    np.testing.assert_allclose(codes[0, 1].numpy(), [0, 0, 0, 1])  # NaN counts as missing
    np.testing.assert_allclose(codes[0, 2].numpy(), [0, 0, 1, 0])


def test_embedding_at_integers_equals_a_lookup_and_is_differentiable():
    torch.manual_seed(0)
    layout = window_layout(["1"] * 6, None, 1)
    embedding = GenotypeEmbedding(layout, d_model=8)
    g = torch.tensor([[0.0, 1.0, 2.0, 1.0, 0.0, 2.0]])
    missing = torch.tensor([[False, False, False, True, False, False]])
    tokens = embedding(g, missing)
    assert tokens.shape == (1, 6, 8)
    table = embedding.genotype.detach()
    code = [0, 1, 2, 3, 0, 2]
    expected = torch.stack([table[j, c] for j, c in enumerate(code)]) + embedding.position
    torch.testing.assert_close(tokens[0], expected[0] if expected.dim() == 3 else expected)

    x = torch.tensor([[0.5, 1.5, 1.0, 0.0, 2.0, 0.2]], requires_grad=True)
    embedding(x).sum().backward()
    grad = x.grad[0]
    assert torch.isfinite(grad).all() and (grad != 0).all()
    # The derivative is the slope of the segment: E1 - E0 on [0, 1), E2 - E1 on [1, 2].
    slope_low = (table[0, 1] - table[0, 0]).sum()
    slope_high = (table[1, 2] - table[1, 1]).sum()
    torch.testing.assert_close(grad[0], slope_low)
    torch.testing.assert_close(grad[1], slope_high)
    torch.testing.assert_close(grad[2], (table[2, 2] - table[2, 1]).sum())


def test_interpolated_dosage_lies_between_its_genotypes():
    torch.manual_seed(1)
    embedding = GenotypeEmbedding([0], d_model=4)
    at = {v: embedding(torch.tensor([[v]]))[0, 0] for v in (0.0, 0.3, 1.0)}
    torch.testing.assert_close(at[0.3], 0.7 * at[0.0] + 0.3 * at[1.0])


def test_windows_never_cross_chromosomes_or_decoys():
    chroms = ["1"] * 5 + ["2"] * 3 + ["1"] * 4
    groups = [0] * 8 + [1] * 4
    layout = window_layout(chroms, groups, 2)
    assert layout.tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 6]
    assert window_layout(chroms, groups, 1).tolist() == list(range(12))
    assert window_layout(chroms, None, 100).tolist() == [0] * 5 + [1] * 3 + [2] * 4


def test_window_tokens_sum_their_columns():
    torch.manual_seed(2)
    layout = window_layout(["1"] * 7, None, 3)  # tokens of 3, 3 and 1 columns
    embedding = GenotypeEmbedding(layout, d_model=5)
    g = torch.randint(0, 3, (4, 7)).float()
    tokens = embedding(g)
    assert tokens.shape == (4, 3, 5)
    codes = genotype_codes(g)
    per_column = torch.einsum("bmc,mcd->bmd", codes, embedding.genotype)
    torch.testing.assert_close(
        tokens[:, 1], per_column[:, 3:6].sum(1) + embedding.position[1], rtol=1e-5, atol=1e-6
    )


def test_window_below_one_is_an_input_error():
    with pytest.raises(InputError, match="window is 0"):
        window_layout(["1"], None, 0)


def test_decoys_are_permuted_copies():
    rng = np.random.default_rng(0)
    G = rng.integers(0, 3, (50, 10)).astype(np.float32)
    G[3, 2] = np.nan
    source = choose_decoys(10, 4, seed=1)
    assert len(set(source.tolist())) == 4 and np.all(np.diff(source) > 0)
    assert choose_decoys(3, 10, seed=1).tolist() == [0, 1, 2]
    permutation = decoy_permutation(50, seed=1)
    full = with_decoys(G, source, permutation)
    assert full.shape == (50, 14)
    np.testing.assert_array_equal(full[:, 10:], G[permutation][:, source])
    # the same seed gives the same decoys
    np.testing.assert_array_equal(decoy_permutation(50, seed=1), permutation)
    with pytest.raises(InputError, match="decoys"):
        choose_decoys(10, -1, seed=0)


def test_dataset_items():
    G = np.array([[0, 1, np.nan], [2, np.nan, 1]], dtype=np.float32)
    values, missing = split_missing(G)
    assert values[0, 2] == 0 and missing[0, 2] and not missing[0, 0]
    inputs = CohortInputs(values, missing, np.ones((2, 3), np.float32), np.array([0.5, 1.5]))
    item = GenotypeDataset(inputs)[1]
    assert set(item) == {"genotypes", "missing", "covariates", "labels"}
    assert item["labels"].dtype == torch.float32 and item["missing"].tolist() == [0, 1, 0]
    binary = GenotypeDataset(
        CohortInputs(values, missing, None, np.array([0.0, 1.0])), task="classification"
    )
    assert "covariates" not in binary[0] and binary[1]["labels"].dtype == torch.int64
