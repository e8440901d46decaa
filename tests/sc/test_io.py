"""Readers of single-cell count inputs: every format yields the same cells x genes counts."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import h5py
import loompy
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from genoformer.engine.errors import InputError
from genoformer.sc.io import CellMatrix, check_raw_counts, open_cells
from tests.conftest import shared_data

N_CELLS, N_GENES = 37, 23
CHUNK_SIZES = (1, 5, 37, 1000)  # 5 does not divide 37


@pytest.fixture(scope="module")
def counts() -> sp.csr_matrix:
    rng = np.random.default_rng(7)
    dense = rng.poisson(0.8, size=(N_CELLS, N_GENES)).astype(np.float32)
    dense[3] = 0  # a cell without counts
    dense[:, 4] = 0  # a gene without counts
    return sp.csr_matrix(dense)


@pytest.fixture(scope="module")
def gene_ids() -> np.ndarray:
    return np.array([f"ENSG{i:011d}" for i in range(N_GENES)])


@pytest.fixture(scope="module")
def symbols() -> np.ndarray:
    return np.array([f"GENE{i}" for i in range(N_GENES)])


@pytest.fixture(scope="module")
def cell_ids() -> np.ndarray:
    return np.array([f"AAAC-{i}" for i in range(N_CELLS)])


@pytest.fixture(scope="module")
def adata(counts, gene_ids, symbols, cell_ids) -> ad.AnnData:
    obs = pd.DataFrame(
        {"n_counts": np.asarray(counts.sum(axis=1)).ravel(), "label": ["a", "b"] * 18 + ["a"]},
        index=cell_ids,
    )
    var = pd.DataFrame({"ensembl_id": gene_ids}, index=symbols)
    return ad.AnnData(X=counts.copy(), obs=obs, var=var)


@pytest.fixture(scope="module")
def files(tmp_path_factory, adata, counts, gene_ids, symbols, cell_ids) -> dict[str, Path]:
    """The same matrix in every supported format."""
    root = tmp_path_factory.mktemp("formats")
    out = {}
    out["h5ad"] = root / "cells.h5ad"
    adata.write_h5ad(out["h5ad"])
    dense = adata.copy()
    dense.X = counts.toarray()
    out["h5ad_dense"] = root / "dense.h5ad"
    dense.write_h5ad(out["h5ad_dense"])
    csc = adata.copy()
    csc.X = sp.csc_matrix(counts)
    out["h5ad_csc"] = root / "csc.h5ad"
    csc.write_h5ad(out["h5ad_csc"])
    out["zarr"] = root / "cells.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata's note about the zarr v2 default
        adata.write_zarr(out["zarr"])
    out["loom"] = root / "cells.loom"
    loompy.create(
        str(out["loom"]),
        counts.T.toarray(),
        {"ensembl_id": gene_ids, "Gene": symbols},
        {"CellID": cell_ids, "n_counts": adata.obs["n_counts"].to_numpy()},
    )
    out["h5"] = root / "filtered_feature_bc_matrix.h5"
    write_10x_h5(out["h5"], counts, gene_ids, symbols, cell_ids)
    for name, zipped in (("mtx", False), ("mtx_gz", True)):
        out[name] = root / name
        write_10x_mtx(out[name], counts, gene_ids, symbols, cell_ids, zipped=zipped)
    return out


def write_10x_h5(path, counts, gene_ids, symbols, cell_ids, feature_types=None) -> None:
    """A CellRanger v3 .h5: genes x cells CSC, so each column (one cell) is a CSR row."""
    csr = sp.csr_matrix(counts)
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m.create_dataset("data", data=csr.data.astype(np.int32), compression="gzip")
        m.create_dataset("indices", data=csr.indices.astype(np.int64), compression="gzip")
        m.create_dataset("indptr", data=csr.indptr.astype(np.int64))
        m.create_dataset("shape", data=np.array([csr.shape[1], csr.shape[0]], dtype=np.int32))
        m.create_dataset("barcodes", data=np.array(cell_ids, dtype="S"))
        feat = m.create_group("features")
        feat.create_dataset("id", data=np.array(gene_ids, dtype="S"))
        feat.create_dataset("name", data=np.array(symbols, dtype="S"))
        types = feature_types if feature_types is not None else ["Gene Expression"] * len(gene_ids)
        feat.create_dataset("feature_type", data=np.array(types, dtype="S"))
        feat.create_dataset("genome", data=np.array(["GRCh38"] * len(gene_ids), dtype="S"))


def write_10x_mtx(directory, counts, gene_ids, symbols, cell_ids, *, zipped) -> None:
    directory.mkdir()
    ext = ".gz" if zipped else ""

    def opener(name, mode):
        path = directory / (name + ext)
        return gzip.open(path, mode) if zipped else open(path, mode)

    with opener("matrix.mtx", "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(counts.T.astype(np.int64)))
    with opener("features.tsv", "wt") as fh:
        for gid, sym in zip(gene_ids, symbols, strict=True):
            fh.write(f"{gid}\t{sym}\tGene Expression\n")
    with opener("barcodes.tsv", "wt") as fh:
        fh.write("".join(f"{c}\n" for c in cell_ids))


def read_all(cells: CellMatrix, size: int) -> sp.csr_matrix:
    blocks, expected_first = [], 0
    for first, block in cells.chunks(size):
        assert first == expected_first
        assert isinstance(block, sp.csr_matrix)
        assert block.has_sorted_indices
        assert block.shape == (min(size, cells.n_cells - first), cells.n_genes)
        blocks.append(block)
        expected_first += block.shape[0]
    assert expected_first == cells.n_cells
    return sp.vstack(blocks, format="csr")


SOURCES = [
    ("h5ad", {"backed": False}),
    ("h5ad", {"backed": True}),
    ("h5ad", {}),
    ("h5ad_dense", {"backed": False}),
    ("h5ad_dense", {"backed": True}),
    ("h5ad_csc", {"backed": False}),
    ("h5ad_csc", {"backed": True}),
    ("zarr", {"backed": False}),
    ("zarr", {"backed": True}),
    ("loom", {}),
    ("h5", {}),
    ("mtx", {}),
    ("mtx_gz", {}),
]


@pytest.mark.parametrize(
    ("kind", "kwargs"), SOURCES, ids=[f"{k}-{a.get('backed', 'auto')}" for k, a in SOURCES]
)
def test_every_format_reads_the_same_counts(
    files, kind, kwargs, counts, gene_ids, symbols, cell_ids
):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CSC scan warning, tested on its own
        cells = open_cells(files[kind], **kwargs)
    with cells:
        assert cells.shape == (N_CELLS, N_GENES)
        assert cells.source == str(files[kind])
        np.testing.assert_array_equal(cells.gene_ids, gene_ids)
        np.testing.assert_array_equal(cells.gene_symbols, symbols)
        np.testing.assert_array_equal(cells.obs.index.to_numpy(dtype=str), cell_ids)
        np.testing.assert_array_equal(cells.cell_ids, cell_ids)
        for size in CHUNK_SIZES:
            got = read_all(cells, size)
            assert (got != counts).nnz == 0, f"chunk size {size}"
            cells.check(got, 0)  # raw counts pass


def test_in_memory_anndata(adata, counts, gene_ids, symbols, cell_ids):
    cells = open_cells(adata)
    assert cells.source == "<AnnData>"
    assert (read_all(cells, 5) != counts).nnz == 0
    np.testing.assert_array_equal(cells.gene_ids, gene_ids)
    np.testing.assert_array_equal(cells.gene_symbols, symbols)
    assert list(cells.obs.columns) == ["n_counts", "label"]


def test_backed_anndata_object(files, counts, gene_ids):
    backed = ad.read_h5ad(files["h5ad"], backed="r")
    try:
        cells = open_cells(backed)
        assert (read_all(cells, 5) != counts).nnz == 0
        np.testing.assert_array_equal(cells.gene_ids, gene_ids)
        cells.close()
        assert backed.X[0:1].shape == (1, N_GENES)  # the caller's object stays open
    finally:
        backed.file.close()


def test_dense_and_csc_anndata_objects(adata, counts):
    # dense X and a column-stored X give the same chunks
    for matrix in (counts.toarray(), sp.csc_matrix(counts)):
        other = adata.copy()
        other.X = matrix
        assert (read_all(open_cells(other), 5) != counts).nnz == 0


def test_obs_dtypes_and_values_kept(files, adata):
    for backed in (False, True):
        with open_cells(files["h5ad"], backed=backed) as cells:
            pd.testing.assert_frame_equal(cells.obs, adata.obs, check_index_type=False)
    with open_cells(files["loom"]) as cells:
        np.testing.assert_allclose(cells.obs["n_counts"], adata.obs["n_counts"])


def test_backed_and_in_memory_h5ad_equal(files):
    with open_cells(files["h5ad"], backed=True) as a, open_cells(files["h5ad"], backed=False) as b:
        for (fa, ca), (fb, cb) in zip(a.chunks(8), b.chunks(8), strict=True):
            assert fa == fb
            assert ca.dtype == cb.dtype == np.float32
            assert (ca != cb).nnz == 0
        # the backed one holds the file open, the in-memory one does not need it
        assert a._rows.handle is not None
    assert a._rows is None


def test_dtype_as_stored(files):
    with open_cells(files["h5"]) as cells:
        assert next(cells.chunks())[1].dtype == np.int32
    with open_cells(files["mtx"]) as cells:
        assert np.issubdtype(next(cells.chunks())[1].dtype, np.integer)


def test_layers_and_raw(adata, counts, tmp_path):
    logged = adata.copy()
    logged.layers["counts"] = counts.copy()
    logged.raw = adata.copy()
    logged.X = sp.csr_matrix(np.log1p(counts.toarray()))
    path = tmp_path / "logged.h5ad"
    logged.write_h5ad(path)
    for source in (logged, path):
        for backed in (False, True):
            for layer in ("counts", "raw"):
                with open_cells(source, layer=layer, backed=backed) as cells:
                    assert cells.layer == layer
                    assert set(cells.layers) == {"counts", "raw"}
                    assert (read_all(cells, 10) != counts).nnz == 0
            with open_cells(source, backed=backed) as cells:
                _, first = next(cells.chunks(10))
                with pytest.raises(InputError) as err:
                    cells.check(first, 0)
                message = str(err.value)
                assert "does not hold raw counts" in message
                assert "log-normalised" in message
                assert "cell 'AAAC-0' (row 0)" in message
                assert "layer='counts'" in message and "'raw'" in message


def test_check_raw_counts_names_the_first_bad_cell():
    good = sp.csr_matrix(np.array([[0, 1, 2], [3, 0, 0], [0, 0, 7]], dtype=np.float32))
    check_raw_counts(good, "x.h5ad", 0)
    check_raw_counts(good.astype(np.int32), "x.h5ad", 0)
    check_raw_counts(sp.csr_matrix((4, 3), dtype=np.float32), "x.h5ad", 0)
    bad = good.copy()
    bad.data[3] = 2.5  # row 2
    with pytest.raises(InputError) as err:
        check_raw_counts(bad, "x.h5ad", 100, layer="norm", layers=["norm", "counts", "raw"])
    assert err.value.file == "x.h5ad"
    assert err.value.where == "row 102"
    assert "layer 'norm' does not hold raw counts" in str(err.value)
    assert "2.5 is not an integer" in str(err.value)
    assert "layer='counts'" in err.value.fix and "adata.raw" in err.value.fix
    # The fix names only layers the input has.
    with pytest.raises(InputError) as err:
        check_raw_counts(bad, "x.h5ad", 100)
    assert "no other layer" in err.value.fix and "layer=" not in err.value.fix
    ids = [f"cell{i}" for i in range(200)]
    with pytest.raises(InputError, match=r"cell 'cell102' \(row 102\)"):
        check_raw_counts(bad, "x.h5ad", 100, cell_ids=ids)
    negative = good.copy()
    negative.data[1] = -1.0  # row 0
    with pytest.raises(InputError, match="negative value -1: scaled"):
        check_raw_counts(negative, "x.h5ad", 0)
    with pytest.raises(InputError, match="row 0"):
        check_raw_counts(negative.astype(np.int64), "x.h5ad", 0)
    nan = good.copy()
    nan.data[2] = np.nan
    with pytest.raises(InputError, match="row 1"):
        check_raw_counts(nan, "x.h5ad", 0)


def test_gene_id_choice(adata, gene_ids, symbols):
    # Ensembl ids as var_names, symbols in a column
    flipped = adata.copy()
    flipped.var = pd.DataFrame({"gene_symbols": symbols}, index=gene_ids)
    cells = open_cells(flipped)
    np.testing.assert_array_equal(cells.gene_ids, gene_ids)
    np.testing.assert_array_equal(cells.gene_symbols, symbols)
    # scanpy's read_10x layout: symbols as var_names, Ensembl ids in var['gene_ids']
    scanpy_like = adata.copy()
    scanpy_like.var = pd.DataFrame({"gene_ids": gene_ids}, index=symbols)
    cells = open_cells(scanpy_like)
    np.testing.assert_array_equal(cells.gene_ids, gene_ids)
    np.testing.assert_array_equal(cells.gene_symbols, symbols)
    # symbols only: they are the ids, and there are no separate symbols
    plain = adata.copy()
    plain.var = pd.DataFrame(index=symbols)
    cells = open_cells(plain)
    np.testing.assert_array_equal(cells.gene_ids, symbols)
    assert cells.gene_symbols is None
    # an explicit column wins
    cells = open_cells(scanpy_like, gene_id_column="index")
    np.testing.assert_array_equal(cells.gene_ids, symbols)
    assert cells.gene_symbols is None


def test_10x_keeps_gene_expression_features_only(tmp_path, counts, gene_ids, symbols, cell_ids):
    types = ["Gene Expression"] * (N_GENES - 2) + ["Antibody Capture"] * 2
    path = tmp_path / "multi.h5"
    write_10x_h5(path, counts, gene_ids, symbols, cell_ids, feature_types=types)
    with open_cells(path) as cells:
        assert cells.n_genes == N_GENES - 2
        np.testing.assert_array_equal(cells.gene_ids, gene_ids[:-2])
        assert (read_all(cells, 6) != counts[:, :-2]).nnz == 0
    with open_cells(path, gene_id_column="name") as cells:
        np.testing.assert_array_equal(cells.gene_ids, symbols[:-2])
        assert cells.gene_symbols is None


def test_10x_mtx_file_path_and_v2_genes_tsv(files, tmp_path, counts, gene_ids, symbols, cell_ids):
    with open_cells(files["mtx_gz"] / "matrix.mtx.gz") as cells:
        assert (read_all(cells, 9) != counts).nnz == 0
    v2 = tmp_path / "v2"
    write_10x_mtx(v2, counts, gene_ids, symbols, cell_ids, zipped=False)
    (v2 / "features.tsv").rename(v2 / "genes.tsv")
    with open_cells(v2) as cells:
        np.testing.assert_array_equal(cells.gene_ids, gene_ids)


def test_small_read_blocks(files, counts, monkeypatch):
    """Dense rows read in several pieces, a CSC matrix scanned in several blocks."""
    import genoformer.sc.io.rows as rows

    monkeypatch.setattr(rows, "_DENSE_BLOCK_BYTES", 8)
    monkeypatch.setattr(rows, "_SCAN_BLOCK_NNZ", 7)
    for kind, backed in (("h5ad_dense", True), ("h5ad_dense", False), ("h5ad_csc", True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cells = open_cells(files[kind], backed=backed)
        with cells:
            assert (read_all(cells, 6) != counts).nnz == 0


def test_csc_backed_warns(files):
    with (
        pytest.warns(UserWarning, match="stored by gene"),
        open_cells(files["h5ad_csc"], backed=True),
    ):
        pass


def test_backed_is_chosen_by_size(files, monkeypatch):
    import genoformer.sc.io.h5ad as h5ad

    with open_cells(files["h5ad"]) as cells:
        assert not hasattr(cells._rows, "handle")  # small: in memory
    monkeypatch.setattr(h5ad, "BACKED_MAX_BYTES", 100)
    with open_cells(files["h5ad"]) as cells:
        assert cells._rows.handle is not None  # over the limit: backed


# --- errors -------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as err:
        open_cells(tmp_path / "nope.h5ad")
    assert err.value.file.endswith("nope.h5ad")


def test_unknown_extension(tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text("a,b\n")
    with pytest.raises(InputError, match=r"unknown file type '\.csv'") as err:
        open_cells(path)
    assert ".h5ad" in err.value.fix


def test_directory_that_is_no_10x_matrix(tmp_path):
    with pytest.raises(InputError, match="neither a 10x matrix"):
        open_cells(tmp_path)


@pytest.mark.parametrize("kind", ["h5ad", "zarr", "loom"])
@pytest.mark.parametrize("backed", [False, True])
def test_missing_layer_lists_those_that_exist(files, adata, tmp_path, kind, backed):
    with pytest.raises(InputError, match=r"layer 'spliced' does not exist \((layers: )?") as err:
        open_cells(files[kind], layer="spliced", backed=backed)
    assert err.value.file == str(files[kind])
    with_layers = adata.copy()
    with_layers.layers["counts"] = adata.X.copy()
    path = tmp_path / "layers.h5ad"
    with_layers.write_h5ad(path)
    with pytest.raises(InputError, match=r"layers: 'counts'\)"):
        open_cells(path, layer="spliced", backed=backed)
    with pytest.raises(InputError, match=r"layers: 'counts'\)"):
        open_cells(with_layers, layer="spliced")


@pytest.mark.parametrize("kind", ["h5", "mtx"])
def test_10x_has_no_layers(files, kind):
    with pytest.raises(InputError, match="has no layers"):
        open_cells(files[kind], layer="counts")


@pytest.mark.parametrize("kind", ["h5ad", "loom", "h5"])
def test_missing_gene_id_column(files, kind):
    with pytest.raises(InputError, match="'gene_name' does not exist") as err:
        open_cells(files[kind], gene_id_column="gene_name", backed=True)
    assert err.value.file == str(files[kind])
    assert "gene_id_column" in str(err.value) or "'id'" in str(err.value)


def test_h5ad_gene_id_column_lists_columns(files):
    with pytest.raises(InputError, match=r"\(there are: 'ensembl_id'\)"):
        open_cells(files["h5ad"], gene_id_column="gene_name")


def _loom_without_row_attributes(files, path, **added: np.ndarray):
    """A copy of the .loom fixture with its gene (row) attributes removed, ``added`` put in."""
    path.write_bytes(files["loom"].read_bytes())
    with h5py.File(path, "r+") as f:
        for key in list(f["row_attrs"].keys()):
            del f["row_attrs"][key]
        for key, values in added.items():
            f["row_attrs"].create_dataset(key, data=values)
    return path


def test_loom_without_row_attributes(files, tmp_path):
    path = _loom_without_row_attributes(files, tmp_path / "bare.loom")
    with pytest.raises(InputError, match="no row \\(gene\\) attributes") as err:
        open_cells(path)
    assert err.value.where == "row attributes"
    assert "ensembl_id" in err.value.fix


def test_loom_with_unusable_row_attributes(files, tmp_path):
    chromosome = np.array(["1"] * N_GENES, dtype="S")
    path = _loom_without_row_attributes(files, tmp_path / "odd.loom", chromosome=chromosome)
    with pytest.raises(InputError, match="no gene id row attribute .* among: 'chromosome'"):
        open_cells(path)
    with open_cells(path, gene_id_column="chromosome") as cells:
        assert cells.gene_ids[0] == "1"


def test_cellranger_v2_h5(tmp_path):
    path = tmp_path / "v2.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("GRCh38")
        g.create_dataset("data", data=np.ones(1, dtype=np.int32))
    with pytest.raises(InputError, match="no 'matrix' group.*groups: 'GRCh38'") as err:
        open_cells(path)
    assert "v3" in err.value.fix


def test_empty_matrix(tmp_path, adata):
    empty = adata[:0].copy()
    path = tmp_path / "empty.h5ad"
    empty.write_h5ad(path)
    for backed in (False, True):
        with pytest.raises(InputError, match=r"empty matrix \(0 cells x 23 genes\)"):
            open_cells(path, backed=backed)
    with pytest.raises(InputError, match="empty matrix"):
        open_cells(empty)


def test_chunk_size_must_be_positive(adata):
    with pytest.raises(ValueError, match="at least 1"):
        next(open_cells(adata).chunks(0))


# --- real data ------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("backed", [False, True])
def test_pbmc68k_fixture(backed):
    path = shared_data("geneformer/fixtures/inputs/pbmc68k.h5ad")
    with open_cells(path, backed=backed) as cells:
        assert cells.shape == (700, 765)
        # 64 genes have no Ensembl id in this file: empty strings, not "nan"
        assert (cells.gene_ids == "").sum() == 64
        assert all(g.startswith("ENSG") for g in cells.gene_ids if g)
        assert cells.gene_symbols is not None and cells.gene_symbols[0] == "HES4"
        assert {"n_counts", "bulk_labels"} <= set(cells.obs.columns)
        assert cells.obs["bulk_labels"].nunique() == 10
        nnz = 0
        for first, chunk in cells.chunks(256):
            cells.check(chunk, first)
            nnz += chunk.nnz
    with h5py.File(path) as f:
        assert nnz == f["X/data"].shape[0]


@pytest.mark.realdata
def test_celltypist559_fixture():
    path = shared_data("geneformer/fixtures/inputs/celltypist559.h5ad")
    with open_cells(path, backed=True) as cells:
        assert cells.shape == (559, 32786)
        assert cells.gene_ids[0].startswith("ENSG")
        assert "n_counts" in cells.obs.columns
        total = sum(chunk.sum() for _, chunk in cells.chunks(200))
    assert total > 0


# --- memory ---------------------------------------------------------------------------------

_MEASURE = """
import json, sys, tracemalloc
import anndata, anndata.io, h5py  # imported first: module objects are not the reader's memory
from genoformer.sc.io import open_cells
path, backed = sys.argv[1], sys.argv[2] == "1"
tracemalloc.start()
total = 0.0
with open_cells(path, backed=backed) as cells:
    for _, chunk in cells.chunks(1024):
        total += float(chunk.data.sum(dtype="float64"))
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "total": total}))
"""


def test_backed_reading_keeps_memory_bounded(tmp_path):
    n_cells, n_genes, per_row = 20_000, 2_000, 250
    rng = np.random.default_rng(0)
    # Row i holds genes i % 8, i % 8 + 8, ...: sorted and unique without a costly sampler.
    indices = ((np.arange(n_cells)[:, None] % 8) + 8 * np.arange(per_row)).ravel()
    data = rng.integers(1, 20, size=indices.size).astype(np.float32)
    indptr = np.arange(n_cells + 1, dtype=np.int64) * per_row
    matrix = sp.csr_matrix((data, indices.astype(np.int32), indptr), shape=(n_cells, n_genes))
    matrix_bytes = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    path = tmp_path / "big.h5ad"
    ad.AnnData(matrix).write_h5ad(path)
    expected = float(data.sum(dtype=np.float64))
    del matrix, data, indices

    def measure(backed: bool) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(path), "1" if backed else "0"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return json.loads(result.stdout.strip().splitlines()[-1])

    backed = measure(True)
    assert backed["total"] == expected  # every count was read
    # about two chunks of 1024 cells (the one being read, the one the caller still holds)
    assert backed["peak"] < matrix_bytes / 4, (backed["peak"], matrix_bytes)
    # the measurement sees a whole-matrix read: reading in memory peaks above the matrix
    whole = measure(False)
    assert whole["total"] == expected
    assert whole["peak"] > matrix_bytes
