"""Simulated single-cell raw counts with known cell types, for the demo and tests.

The demo must run on a fresh machine, where neither Geneformer's dictionaries nor real
cells are present, so it makes its own: a gamma-Poisson (negative binomial) count model,
the usual model of UMI counts. Every gene has a baseline mean expression (log-normal
across genes); each cell type up-regulates its own set of marker genes by a log-normal fold
change and down-regulates a few others; cells draw a library size (log-normal) and, per
gene, a count with the type's mean scaled to that library. The types therefore differ in
the *ranks* of their marker genes, which is what rank value encoding keeps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from genoformer.engine.errors import InputError

#: Gene ids look like Ensembl human gene ids (``ENSG`` + 11 digits) so that the readers and
#: the tokenizer treat them as they treat real ones; the ``ENSG9`` prefix is unused by
#: Ensembl, so a simulated id never names a real gene.
_ID_PREFIX = "ENSG9"


def simulate_cells(
    n_cells: int = 2000,
    n_genes: int = 1000,
    *,
    n_types: int = 5,
    markers_per_type: int = 30,
    fold_change: float = 4.0,
    mean_library_size: float = 3000.0,
    dispersion: float = 0.3,
    seed: int = 0,
) -> Any:
    """Raw UMI counts of ``n_cells`` cells of ``n_types`` types, as an AnnData object.

    Returns an AnnData with ``X`` a CSR int32 count matrix, ``obs`` holding ``cell_type``
    (categorical, ``type_0`` ...) and ``n_counts`` (the library size), ``var`` indexed by
    Ensembl-style gene ids with a ``gene_symbol`` column, and ``uns['markers']`` mapping each
    type to its marker gene ids.
    """
    import anndata as ad

    if n_types < 1 or n_cells < n_types:
        raise InputError(
            f"n_cells={n_cells} and n_types={n_types}: need at least one cell per type",
            fix="ask for more cells than cell types (and at least one type)",
        )
    if n_types * markers_per_type > n_genes:
        raise InputError(
            f"{n_types} types x {markers_per_type} markers exceed {n_genes} genes",
            fix="ask for more genes or fewer markers per type",
        )
    rng = np.random.default_rng(seed)
    baseline = rng.lognormal(mean=0.0, sigma=1.5, size=n_genes)
    baseline /= baseline.sum()
    genes = rng.permutation(n_genes)
    log_means = np.tile(np.log(baseline), (n_types, 1))
    markers = {}
    for t in range(n_types):
        up = genes[t * markers_per_type : (t + 1) * markers_per_type]
        log_means[t, up] += np.log(fold_change) + rng.normal(0.0, 0.3, up.size)
        down = rng.choice(n_genes, markers_per_type // 2, replace=False)
        log_means[t, down] -= np.log(fold_change)
        markers[f"type_{t}"] = up
    means = np.exp(log_means)
    means /= means.sum(axis=1, keepdims=True)

    types = rng.permutation(np.arange(n_cells) % n_types)
    library = rng.lognormal(np.log(mean_library_size), 0.4, n_cells)
    rate = means[types] * library[:, None]
    # gamma-Poisson: a gamma-distributed rate per cell and gene, then a Poisson count
    shape = 1.0 / dispersion
    counts = rng.poisson(rng.gamma(shape, rate / shape)).astype(np.int32)
    matrix = sp.csr_matrix(counts)

    ids = [f"{_ID_PREFIX}{i:010d}" for i in range(n_genes)]
    var = pd.DataFrame({"gene_symbol": [f"GENE{i}" for i in range(n_genes)]}, index=ids)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([f"type_{t}" for t in types]),
            "n_counts": np.asarray(matrix.sum(axis=1)).ravel().astype(np.float64),
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    adata = ad.AnnData(X=matrix, obs=obs, var=var)
    adata.uns["markers"] = {t: [ids[g] for g in m] for t, m in markers.items()}
    return adata
