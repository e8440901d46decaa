"""Simulated cells: shape, raw counts, and cell types told apart by their marker genes."""

from __future__ import annotations

import numpy as np
import pytest

from genoformer.engine.errors import InputError
from genoformer.sc.io import check_raw_counts
from genoformer.sc.simulate import simulate_cells


def test_counts_types_and_markers() -> None:
    adata = simulate_cells(600, 400, n_types=3, markers_per_type=20, seed=1)
    assert adata.shape == (600, 400)
    assert adata.X.dtype == np.int32 and adata.X.min() >= 0
    check_raw_counts(adata.X, "simulated", 0)
    assert np.array_equal(adata.obs["n_counts"], np.asarray(adata.X.sum(axis=1)).ravel())
    assert sorted(adata.obs["cell_type"].value_counts()) == [200, 200, 200]
    dense = adata.X.toarray() / adata.obs["n_counts"].to_numpy()[:, None]
    genes = {g: i for i, g in enumerate(adata.var_names)}
    for cell_type, markers in adata.uns["markers"].items():
        columns = [genes[g] for g in markers]
        inside = dense[adata.obs["cell_type"] == cell_type][:, columns].mean()
        outside = dense[adata.obs["cell_type"] != cell_type][:, columns].mean()
        assert inside > 2.5 * outside, cell_type


def test_same_seed_same_cells() -> None:
    a = simulate_cells(50, 100, n_types=2, markers_per_type=5, seed=3)
    b = simulate_cells(50, 100, n_types=2, markers_per_type=5, seed=3)
    assert (a.X != b.X).nnz == 0 and list(a.obs["cell_type"]) == list(b.obs["cell_type"])


def test_bad_sizes() -> None:
    with pytest.raises(InputError, match="need at least one cell per type"):
        simulate_cells(3, 100, n_types=5)
    with pytest.raises(InputError, match="exceed 100 genes"):
        simulate_cells(50, 100, n_types=5, markers_per_type=30)
