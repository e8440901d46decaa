"""Gene medians: exact against hand computation, streaming within its bound, real inputs."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from genoformer.engine.errors import InputError
from genoformer.sc.medians import ExactMedians, StreamingMedians, gene_medians
from genoformer.sc.vocabulary import GeneVocabulary, resolve
from tests.conftest import shared_data

GENES = ["ENSG00000000004", "ENSG00000000002", "ENSG00000000003", "ENSG00000000001"]
# cells x genes; the last gene (ENSG...01) is never expressed.
COUNTS = np.array(
    [
        [1, 0, 3, 0],  # total 4: 2500, -, 7500
        [2, 2, 0, 0],  # total 4: 5000, 5000, -
        [0, 5, 5, 0],  # total 10: -, 5000, 5000
        [4, 0, 0, 0],  # total 4: 10000, -, -
        [0, 0, 0, 0],  # no counts: contributes nothing
    ]
)


def _adata(counts: np.ndarray, genes: list[str], **obs: list) -> ad.AnnData:
    n_cells = counts.shape[0]
    return ad.AnnData(
        X=sp.csr_matrix(counts.astype(np.float32)),
        obs=pd.DataFrame(obs, index=[f"cell{i}" for i in range(n_cells)]),
        var=pd.DataFrame({"ensembl_id": genes}, index=[f"sym{i}" for i in range(len(genes))]),
    )


def test_exact_medians_by_hand(tmp_path: Path) -> None:
    vocab = gene_medians(_adata(COUNTS, GENES), out=tmp_path / "run", name="hand", chunk_size=2)
    assert vocab.medians == {
        "ENSG00000000002": 5000.0,  # [5000, 5000]
        "ENSG00000000003": 6250.0,  # [7500, 5000]
        "ENSG00000000004": 5000.0,  # [2500, 5000, 10000]
    }
    # The never-expressed gene has no median and no token; ids: specials, then genes by id.
    assert vocab.token_ids == {
        "<pad>": 0,
        "<mask>": 1,
        "<cls>": 2,
        "<eos>": 3,
        "ENSG00000000002": 4,
        "ENSG00000000003": 5,
        "ENSG00000000004": 6,
    }
    assert vocab.name == "hand" and vocab.input_size == 4096
    assert vocab.symbol_to_id == {"sym0": GENES[0], "sym1": GENES[1], "sym2": GENES[2]}
    # The run directory: vocabulary, table of every gene, manifest.
    assert resolve(tmp_path / "run") == vocab
    table = pd.read_csv(tmp_path / "run" / "gene_medians.tsv", sep="\t")
    assert table["gene_id"].tolist() == sorted(GENES)
    assert table["n_nonzero"].tolist() == [0, 2, 2, 3]
    assert np.isnan(table["median"][0]) and table["median"][1:].tolist() == [5000, 6250, 5000]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["results"]["medians"]["cells"] == 5
    assert manifest["results"]["medians"]["cells_with_counts"] == 4
    assert manifest["results"]["medians"]["genes_with_median"] == 3


def test_n_counts_and_filter_pass_are_used() -> None:
    adata = _adata(
        COUNTS, GENES, n_counts=[10.0, 20.0, 10.0, 40.0, 0.0], filter_pass=[1, 1, 0, 1, 1]
    )
    vocab = gene_medians(adata)
    # Cell 2 is filtered out; totals come from n_counts, not from the row sums.
    assert vocab.medians == {
        "ENSG00000000002": 1000.0,  # [1000]
        "ENSG00000000003": 3000.0,  # [3000]
        "ENSG00000000004": 1000.0,  # [1000, 1000, 1000]
    }


def test_ids_mapping_to_one_gene_are_summed() -> None:
    genes = ["ENSG_A", "ensg_a_old", "SYMB", "UNKNOWN"]
    counts = np.array([[1, 1, 2, 5], [0, 3, 1, 5]])
    mapping = {"ENSG_A": "ENSG_A", "ENSG_A_OLD": "ENSG_A", "SYMB": "ENSG_B"}
    vocab = gene_medians(_adata(counts, genes), id_mapping=mapping, special=("pad", "mask"))
    # Totals over all genes (9, 9); ENSG_A sums its two columns (upper-cased lookup).
    assert vocab.medians == pytest.approx(
        {"ENSG_A": np.median([2 / 9 * 1e4, 3 / 9 * 1e4]), "ENSG_B": np.median([2e4 / 9, 1e4 / 9])},
        rel=1e-15,
    )
    assert vocab.id_mapping == mapping
    assert vocab.token_ids == {"<pad>": 0, "<mask>": 1, "ENSG_A": 2, "ENSG_B": 3}


def test_files_with_different_genes_and_chunk_sizes() -> None:
    rng = np.random.default_rng(1)
    counts = rng.poisson(0.7, size=(60, 8))
    genes = [f"ENSG{i:011d}" for i in range(8)]
    whole = gene_medians(_adata(counts, genes), chunk_size=7)
    # The same cells split over two files, the second with its genes in another order.
    order = [3, 1, 0, 2, 7, 6, 5, 4]
    second = _adata(counts[30:, order], [genes[i] for i in order])
    split = gene_medians([_adata(counts[:30], genes), second], chunk_size=1)
    assert split == whole
    dense = counts / counts.sum(axis=1, keepdims=True) * 1e4
    for j, gene in enumerate(genes):
        column = dense[:, j]
        assert whole.medians[gene] == np.median(column[column > 0])


def test_loom_input(tmp_path: Path) -> None:
    import loompy

    path = tmp_path / "cells.loom"
    loompy.create(
        str(path),
        COUNTS.T.astype(np.float32),
        row_attrs={"ensembl_id": np.array(GENES)},
        col_attrs={"CellID": np.array([f"c{i}" for i in range(5)])},
    )
    assert gene_medians(path).medians == gene_medians(_adata(COUNTS, GENES)).medians


def test_streaming_within_bound_on_random_matrix() -> None:
    rng = np.random.default_rng(7)
    n_cells, n_genes = 4000, 300
    # Expression levels spanning three orders of magnitude, as real genes do.
    rates = 10 ** rng.uniform(-2, 1, n_genes)
    counts = sp.csr_matrix(rng.poisson(rates, size=(n_cells, n_genes)))
    genes = [f"ENSG{i:011d}" for i in range(n_genes)]
    adata = _adata(counts.toarray(), genes)
    exact = gene_medians(adata, chunk_size=1000)
    for bins in (64, 128):
        streamed = gene_medians(adata, streaming=True, bins_per_octave=bins, chunk_size=333)
        bound = StreamingMedians(bins).relative_error
        assert bound == pytest.approx(1 / (2 * bins + 1))
        assert set(streamed.medians) == set(exact.medians)
        errors = [abs(streamed.medians[g] / exact.medians[g] - 1) for g in exact.medians]
        assert max(errors) <= bound * (1 + 1e-9)
        assert max(errors) > bound / 10  # the test would see a real approximation
    assert StreamingMedians().relative_error < 0.004


@settings(max_examples=60, deadline=None)
@given(
    genes=hnp.arrays(np.int64, st.integers(1, 200), elements=st.integers(0, 9)),
    data=st.data(),
)
def test_streaming_bound_property(genes: np.ndarray, data: st.DataObject) -> None:
    values = data.draw(
        hnp.arrays(
            np.float64,
            len(genes),
            elements=st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False),
        )
    )
    exact, streamed = ExactMedians(), StreamingMedians(32)
    split = data.draw(st.integers(0, len(genes)))
    for part in (slice(0, split), slice(split, None)):
        exact.add(genes[part], values[part])
        streamed.add(genes[part], values[part])
    want, n_want = exact.result(12)
    got, n_got = streamed.result(12)
    assert np.array_equal(n_want, n_got) and np.array_equal(np.isnan(want), np.isnan(got))
    seen = ~np.isnan(want)
    for gene in np.flatnonzero(seen):
        assert want[gene] == np.median(values[genes == gene])
    assert np.all(np.abs(got[seen] / want[seen] - 1) <= streamed.relative_error * (1 + 1e-12))


def test_bad_input_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty corpus: no cell has a non-zero count"):
        gene_medians(_adata(np.zeros((3, 2)), GENES[:2]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .h5ad, .loom") as error:
        gene_medians(tmp_path / "empty")
    assert error.value.file == str(tmp_path / "empty")
    log_normalised = _adata(np.log1p(COUNTS), GENES)
    log_normalised.write_h5ad(tmp_path / "log.h5ad")
    with pytest.raises(InputError, match="not an integer") as error:
        gene_medians(tmp_path / "log.h5ad")
    assert error.value.file == str(tmp_path / "log.h5ad") and "cell0" in error.value.where
    with pytest.raises(InputError, match="n_counts is 0 for a cell with counts") as error:
        gene_medians(_adata(COUNTS, GENES, n_counts=[4.0, 0.0, 10.0, 4.0, 0.0]))
    assert "cell1" in error.value.where


# -- real inputs ------------------------------------------------------------------------


def _direct_medians(path: Path) -> dict[str, float]:
    """Each gene's non-zero median straight from the dense normalised matrix."""
    adata = ad.read_h5ad(path)
    dense = adata.X.toarray().astype(np.float64)
    normalised = dense / adata.obs["n_counts"].to_numpy()[:, None] * 1e4
    medians = {}
    for j, gene in enumerate(adata.var["ensembl_id"].astype(str)):
        column = normalised[:, j]
        if gene and (column > 0).any():
            medians[gene] = float(np.median(column[column > 0]))
    return medians


@pytest.mark.parametrize("dataset", ["pbmc68k", "celltypist559"])
def test_fixture_inputs_end_to_end(dataset: str, tmp_path: Path) -> None:
    path = shared_data(f"geneformer/fixtures/inputs/{dataset}.h5ad")
    vocab = gene_medians(path, out=tmp_path / "run", name=dataset)
    direct = _direct_medians(path)
    assert set(vocab.medians) == set(direct)
    assert vocab.medians == direct  # the same arithmetic, bit for bit
    assert GeneVocabulary.load(tmp_path / "run" / "vocabulary.json") == vocab
    streamed = gene_medians(path, streaming=True)
    ratio = np.array([streamed.medians[g] / vocab.medians[g] for g in direct])
    assert np.abs(ratio - 1).max() <= StreamingMedians().relative_error * (1 + 1e-9)
    # Medians of real PBMCs are of the same order as Geneformer's corpus-wide ones.
    gc104m = GeneVocabulary.geneformer("V2", shared_data("geneformer/gc104M").parent)
    common = [g for g in vocab.medians if g in gc104m.medians]
    assert len(common) > 0.95 * len(vocab.medians)
    ratio = np.median([vocab.medians[g] / gc104m.medians[g] for g in common])
    assert 0.5 < ratio < 2
