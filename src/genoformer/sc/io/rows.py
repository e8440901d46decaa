"""Row readers: a block of cells of any stored matrix as a cells x genes CSR matrix.

The one place that reads counts: in memory (dense or sparse), an on-disk CSR group (h5py
or zarr, and a 10x .h5 whose genes x cells CSC has one column per cell), an on-disk CSC
group (scanned), a dense on-disk dataset, a .loom layer. :func:`open_rows` opens one for
a worker process from a file name, so that the tokenizer's workers read their own cells
through the same code as :func:`~genoformer.sc.io.cells.open_cells`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

# Dense blocks (dense X, .loom) are read in pieces of at most this many bytes, so a wide
# matrix does not need chunk x genes dense floats at once.
_DENSE_BLOCK_BYTES = 64 << 20


# Non-zeros read per step when a column-stored (CSC) matrix has to be scanned for rows.
_SCAN_BLOCK_NNZ = 4 << 20


class Rows(Protocol):
    """Reads a block of cells as a cells x genes CSR matrix."""

    def read(self, start: int, stop: int) -> sp.csr_matrix: ...

    def close(self) -> None: ...


def _to_csr(block: Any) -> sp.csr_matrix:
    if sp.issparse(block):
        return sp.csr_matrix(block)
    if hasattr(block, "compute"):  # dask
        block = block.compute()
        if sp.issparse(block):
            return sp.csr_matrix(block)
    return sp.csr_matrix(np.asarray(block))


def _dense_rows(dataset: Any, start: int, stop: int, n_genes: int, itemsize: int) -> Any:
    """Rows start..stop of a dense 2-D array (in memory or on disk) as CSR, piece by piece."""
    step = max(1, _DENSE_BLOCK_BYTES // max(1, n_genes * itemsize))
    parts = [
        sp.csr_matrix(np.asarray(dataset[a : min(a + step, stop)]))
        for a in range(start, stop, step)
    ]
    return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")


class MemoryRows:
    """Rows of a matrix held in memory (AnnData X, a layer, raw, or an .mtx)."""

    def __init__(self, matrix: Any) -> None:
        if sp.issparse(matrix) and matrix.format == "csc":
            # Row slices of a CSC matrix cost a pass over all of it; convert once instead.
            matrix = sp.csr_matrix(matrix)
        self.matrix = matrix
        self.dense = not sp.issparse(matrix) and isinstance(matrix, np.ndarray)

    def read(self, start: int, stop: int) -> sp.csr_matrix:
        if self.dense:
            m = self.matrix
            return _dense_rows(m, start, stop, m.shape[1], m.dtype.itemsize)
        return _to_csr(self.matrix[start:stop])

    def close(self) -> None:
        self.matrix = None


class _OnDisk:
    """A reader that holds an open file (h5py File; None for zarr), closed with the matrix."""

    handle: Any = None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class CsrGroupRows(_OnDisk):
    """Rows straight from an on-disk CSR group (h5py or zarr): only one chunk in memory.

    Also reads a 10x .h5, whose genes x cells CSC matrix has one column per cell: column j
    of genes x cells CSC is row j of cells x genes CSR, with the same three arrays.
    """

    def __init__(self, group: Any, n_genes: int, handle: Any = None) -> None:
        self.data, self.indices, self.indptr = group["data"], group["indices"], group["indptr"]
        self.n_genes = n_genes
        self.handle = handle

    def read(self, start: int, stop: int) -> sp.csr_matrix:
        ptr = np.asarray(self.indptr[start : stop + 1], dtype=np.int64)
        lo, hi = int(ptr[0]), int(ptr[-1])
        indices = np.asarray(self.indices[lo:hi])
        ptr -= lo
        if indices.dtype == np.int32 and hi - lo <= np.iinfo(np.int32).max:
            # int64 indptr beside int32 indices would make scipy copy the indices to int64.
            ptr = ptr.astype(np.int32)
        return sp.csr_matrix(
            (np.asarray(self.data[lo:hi]), indices, ptr), shape=(stop - start, self.n_genes)
        )


class CscGroupRows(_OnDisk):
    """Rows of an on-disk CSC group: each chunk scans all non-zeros (slow, bounded memory)."""

    def __init__(self, group: Any, n_genes: int, handle: Any = None) -> None:
        self.data, self.indices = group["data"], group["indices"]
        self.colptr = np.asarray(group["indptr"][:], dtype=np.int64)
        self.n_genes = n_genes
        self.handle = handle

    def read(self, start: int, stop: int) -> sp.csr_matrix:
        nnz = int(self.colptr[-1])
        rows, cols, vals = [], [], []
        for lo in range(0, nnz, _SCAN_BLOCK_NNZ):
            hi = min(nnz, lo + _SCAN_BLOCK_NNZ)
            idx = np.asarray(self.indices[lo:hi])
            hit = np.flatnonzero((idx >= start) & (idx < stop))
            if hit.size == 0:
                continue
            rows.append(idx[hit] - start)
            cols.append(np.searchsorted(self.colptr, lo + hit, side="right") - 1)
            vals.append(np.asarray(self.data[lo:hi])[hit])
        if not vals:
            return sp.csr_matrix((stop - start, self.n_genes), dtype=self.data.dtype)
        coo = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(stop - start, self.n_genes),
        )
        return coo.tocsr()


class DenseDatasetRows(_OnDisk):
    """Rows of a dense on-disk 2-D dataset (h5py or zarr)."""

    def __init__(self, dataset: Any, handle: Any = None) -> None:
        self.dataset = dataset
        self.handle = handle

    def read(self, start: int, stop: int) -> sp.csr_matrix:
        d = self.dataset
        return _dense_rows(d, start, stop, d.shape[1], np.dtype(d.dtype).itemsize)


class LoomRows:
    """Cells of a .loom (columns of a dense genes x cells layer), read in column blocks."""

    def __init__(self, connection: Any, layer: str) -> None:
        self.ds = connection
        self.layer = connection.layers[layer]
        n_genes = connection.shape[0]
        itemsize = np.dtype(self.layer.dtype).itemsize
        # Whole HDF5 chunks (loom uses 64 x 64) per piece, so no chunk is read twice.
        per = _DENSE_BLOCK_BYTES // max(1, n_genes * itemsize)
        self.step = max(64, per // 64 * 64)

    def read(self, start: int, stop: int) -> sp.csr_matrix:
        parts = [
            sp.csr_matrix(np.asarray(self.layer[:, a : min(a + self.step, stop)]).T)
            for a in range(start, stop, self.step)
        ]
        return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")

    def close(self) -> None:
        if self.ds is not None:
            self.ds.close()
            self.ds = None


# ---------------------------------------------------------------------------------------------
# A row reader of a file, for a worker process


def h5ad_matrix(handle: Any, layer: str | None) -> Any:
    """The group or dataset of an open .h5ad that holds X, a layer, or raw/X (None: none)."""
    if layer is None:
        return handle.get("X")
    if layer in handle.get("layers", {}):
        return handle["layers"][layer]
    return handle.get("raw/X") if layer == "raw" else None


def is_csr_h5ad(source: Any, layer: str | None) -> bool:
    """Whether ``source`` is an .h5ad whose chosen matrix is stored by cell (CSR)."""
    if not isinstance(source, (str, os.PathLike)) or Path(source).suffix.lower() != ".h5ad":
        return False
    import h5py

    try:
        with h5py.File(source, "r") as handle:
            node = h5ad_matrix(handle, layer)
            kind = None if node is None else node.attrs.get("encoding-type")
    except OSError:
        return False  # the readers report it
    kind = kind.decode() if isinstance(kind, bytes) else kind
    return kind == "csr_matrix"


class _CellMatrixRows:
    """The rows of an input opened whole by :func:`~genoformer.sc.io.cells.open_cells`."""

    def __init__(self, path: str, layer: str | None, gene_id_column: str | None) -> None:
        from genoformer.sc.io.cells import open_cells

        self.cells = open_cells(path, layer=layer, gene_id_column=gene_id_column, backed=True)

    def read(self, start: int, stop: int) -> sp.csr_matrix:
        return self.cells.rows(start, stop)

    def close(self) -> None:
        self.cells.close()


def open_rows(kind: str, path: str, layer: str | None, gene_id_column: str | None = None) -> Rows:
    """A row reader of the file ``path``, opened by a process of its own.

    ``kind`` ``"csr"``: an .h5ad stored by cell (:func:`is_csr_h5ad`), read straight from its
    three arrays, without the cell and gene tables (so without pandas or anndata);
    ``"cells"``: any other input that :func:`~genoformer.sc.io.cells.open_cells` reads from
    disk (.zarr, .loom, 10x .h5), its rows as ``CellMatrix.rows`` gives them.
    """
    if kind != "csr":
        return _CellMatrixRows(path, layer, gene_id_column)
    import h5py

    handle = h5py.File(path, "r")
    group = h5ad_matrix(handle, layer)
    return CsrGroupRows(group, int(group.attrs["shape"][1]), handle)
