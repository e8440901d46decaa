"""Open single-cell raw-count inputs and read them in chunks of cells, with bounded memory.

One entry point, :func:`open_cells`, for every input the ``sc`` pillar takes:

- ``.h5ad`` (AnnData). Read whole into memory when small; read from disk one chunk of cells
  at a time ("backed") when the file is larger than :data:`BACKED_MAX_BYTES` or a quarter of
  the available memory, or when ``backed=True``. Backed reading slices the on-disk CSR group
  (``data``/``indices``/``indptr``) with h5py, so only the rows of one chunk are in memory.
- ``.zarr`` (AnnData's zarr layout): the same two modes, with zarr arrays instead of h5py.
- ``.loom`` (loompy): genes are rows and cells columns; cells are read in column blocks.
- a 10x ``.h5`` (CellRanger v3+ HDF5, ``matrix`` group): one column per cell, so a chunk of
  cells is a slice of ``indptr``; read from disk, never whole. Only "Gene Expression"
  features are kept when a file also holds antibody or guide features.
- a 10x matrix directory (``matrix.mtx(.gz)``, ``features.tsv(.gz)`` or ``genes.tsv(.gz)``,
  ``barcodes.tsv(.gz)``): Matrix Market is text, so it is parsed whole into memory.
- an in-memory :class:`anndata.AnnData` (also a backed one: its rows are sliced).

One module per format: :mod:`~genoformer.sc.io.h5ad` (AnnData, .h5ad, .zarr),
:mod:`~genoformer.sc.io.loom`, :mod:`~genoformer.sc.io.tenx`; the counts themselves are read
by :mod:`~genoformer.sc.io.rows`. Every reader yields ``(first_row, counts)`` with ``counts`` a cells x genes
:class:`scipy.sparse.csr_matrix` (sorted indices, dtype as stored); dense matrices are
converted one chunk at a time. Bad input raises :class:`~genoformer.engine.errors.InputError`
naming the file, the place and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from genoformer.engine.errors import InputError
from genoformer.sc.io.h5ad import from_anndata, is_anndata, open_anndata_file
from genoformer.sc.io.loom import open_loom
from genoformer.sc.io.matrix import CellMatrix
from genoformer.sc.io.tenx import find_mtx, open_10x_h5, open_mtx

__all__ = ["open_cells"]


def open_cells(
    source: str | os.PathLike | Any,
    *,
    layer: str | None = None,
    gene_id_column: str | None = None,
    backed: bool | None = None,
) -> CellMatrix:
    """Open a single-cell count matrix for chunked reading.

    Parameters
    ----------
    source
        A ``.h5ad``, ``.zarr``, ``.loom``, 10x ``.h5`` file, a 10x matrix directory (or its
        ``matrix.mtx(.gz)``), or an :class:`anndata.AnnData`.
    layer
        Read this layer instead of the main matrix (AnnData layers, loom layers);
        ``"raw"`` reads ``adata.raw`` (with its genes) when there is no layer of that name.
    gene_id_column
        The gene attribute that holds the gene ids (a ``var`` column, a loom row attribute,
        ``"id"`` or ``"name"`` for 10x). By default: ``ensembl_id`` when present, else
        Ensembl ids wherever they are (the gene names or a column such as ``gene_ids``),
        else the gene names.
    backed
        ``.h5ad``/``.zarr`` only: ``True`` reads from disk one chunk at a time, ``False``
        reads the whole file into memory, ``None`` (default) reads backed when the file is
        larger than :data:`BACKED_MAX_BYTES` or :data:`BACKED_MEMORY_FRACTION` of available
        memory. The other formats are always read chunk by chunk (.mtx: always whole).

    Returns
    -------
    CellMatrix
        Close it (or use it in a ``with`` block) to release the file.
    """
    if is_anndata(source):
        return from_anndata(source, "<AnnData>", layer, gene_id_column)
    path = Path(source)
    name = str(source)
    if not path.exists():
        raise InputError(
            "file not found", file=name, fix="check the path (and the working directory)"
        )
    suffixes = "".join(path.suffixes[-2:]).lower()
    suffix = path.suffix.lower()
    if path.is_dir() and suffix != ".zarr":
        if find_mtx(path) is not None:
            return open_mtx(path, name, layer, gene_id_column)
        if (path / ".zgroup").exists() or (path / "zarr.json").exists():
            return open_anndata_file(path, name, layer, gene_id_column, backed, "zarr")
        raise InputError(
            "directory holds neither a 10x matrix (matrix.mtx, features.tsv, barcodes.tsv) "
            "nor a zarr store",
            file=name,
            fix="pass a .h5ad, .zarr, .loom, 10x .h5 file or a 10x matrix directory",
        )
    if suffix == ".h5ad":
        return open_anndata_file(path, name, layer, gene_id_column, backed, "h5ad")
    if suffix == ".zarr":
        return open_anndata_file(path, name, layer, gene_id_column, backed, "zarr")
    if suffix == ".loom":
        return open_loom(path, name, layer, gene_id_column)
    if suffix in (".h5", ".hdf5"):
        return open_10x_h5(path, name, layer, gene_id_column, backed)
    if suffixes in (".mtx", ".mtx.gz") or suffix == ".mtx":
        return open_mtx(path.parent, name, layer, gene_id_column, matrix=path)
    raise InputError(
        f"unknown file type {''.join(path.suffixes) or '(no extension)'!r}",
        file=name,
        fix="pass a .h5ad, .zarr, .loom, 10x .h5 file or a 10x matrix directory",
    )
