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

Every reader yields ``(first_row, counts)`` with ``counts`` a cells x genes
:class:`scipy.sparse.csr_matrix` (sorted indices, dtype as stored); dense matrices are
converted one chunk at a time. Bad input raises :class:`~genoformer.engine.errors.InputError`
naming the file, the place and the fix.
"""

from __future__ import annotations

import gzip
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from genoformer.engine.errors import InputError

__all__ = [
    "BACKED_MAX_BYTES",
    "BACKED_MEMORY_FRACTION",
    "CellMatrix",
    "check_raw_counts",
    "open_cells",
]

#: An .h5ad/.zarr larger than this is read backed (from disk, one chunk at a time) by default.
BACKED_MAX_BYTES = 1 << 30
#: ... as is one larger than this share of the memory available when it is opened.
BACKED_MEMORY_FRACTION = 0.25

# Dense blocks (dense X, .loom) are read in pieces of at most this many bytes, so a wide
# matrix does not need chunk x genes dense floats at once.
_DENSE_BLOCK_BYTES = 64 << 20
# Non-zeros read per step when a column-stored (CSC) matrix has to be scanned for rows.
_SCAN_BLOCK_NNZ = 4 << 20

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
_ID_COLUMNS = ("ensembl_id", "ensembl_ids", "gene_ids", "gene_id", "Accession", "feature_id")
_SYMBOL_COLUMNS = (
    "gene_symbols",
    "gene_symbol",
    "symbol",
    "gene_name",
    "gene_names",
    "feature_name",
    "Gene",
    "gene",
    "var_names",
)
_CELL_ID_ATTRS = ("CellID", "obs_names", "cell_id", "cell_ids", "barcode", "barcodes")
_RAW_FIX = "pass raw counts, e.g. layer='counts' (--layer counts), or layer='raw' for adata.raw"


class _Rows(Protocol):
    """Reads a block of cells as a cells x genes CSR matrix."""

    def read(self, start: int, stop: int) -> sp.csr_matrix: ...

    def close(self) -> None: ...


@dataclass
class CellMatrix:
    """An opened single-cell count matrix: cell and gene annotations, counts read in chunks.

    Attributes
    ----------
    source
        The file name as given (``"<AnnData>"`` for an in-memory object), for messages.
    n_cells
        Number of cells (rows of every chunk).
    gene_ids
        One str per gene (numpy unicode array): the Ensembl ids when the input has them.
    gene_symbols
        Gene symbols beside Ensembl ``gene_ids`` when the input has both, else ``None``.
    obs
        All cell attributes, index = cell ids as str.
    layer
        The layer read (``None`` for the main matrix).
    layers
        The layers the input has (``"raw"`` for ``adata.raw``), named in messages.
    """

    source: str
    n_cells: int
    gene_ids: np.ndarray
    gene_symbols: np.ndarray | None
    obs: pd.DataFrame
    layer: str | None = None
    layers: tuple[str, ...] = ()
    _rows: _Rows | None = field(default=None, repr=False)
    _keep: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_genes(self) -> int:
        """Number of genes (columns of every chunk)."""
        return len(self.gene_ids)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_cells, n_genes)``."""
        return self.n_cells, self.n_genes

    @property
    def cell_ids(self) -> np.ndarray:
        """Cell ids (the index of :attr:`obs`) as a numpy unicode array."""
        return np.asarray(self.obs.index, dtype=str)

    def chunks(self, size: int = 1024) -> Iterator[tuple[int, sp.csr_matrix]]:
        """Yield ``(first_row, counts)`` for consecutive blocks of at most ``size`` cells.

        ``counts`` holds the raw values of cells ``first_row .. first_row + counts.shape[0]``
        as a cells x genes CSR matrix with sorted indices, in the dtype the input stores.
        """
        if size < 1:
            raise ValueError(f"chunk size must be at least 1, got {size}")
        if self._rows is None:
            raise ValueError(f"{self.source}: the cell matrix is closed")
        for start in range(0, self.n_cells, size):
            stop = min(start + size, self.n_cells)
            block = self._rows.read(start, stop)
            if self._keep is not None:
                block = block[:, self._keep]
            block = sp.csr_matrix(block)
            block.sort_indices()
            yield start, block

    def check(self, chunk: sp.csr_matrix, first_row: int) -> None:
        """:func:`check_raw_counts` on a chunk of this matrix, naming the cell id and layers."""
        check_raw_counts(
            chunk,
            self.source,
            first_row,
            layer=self.layer,
            cell_ids=self.obs.index,
            layers=self.layers,
        )

    def close(self) -> None:
        """Release the file behind the matrix (if any)."""
        if self._rows is not None:
            self._rows.close()
            self._rows = None

    def __enter__(self) -> CellMatrix:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_raw_counts(
    chunk: sp.csr_matrix,
    source: str,
    first_row: int,
    *,
    layer: str | None = None,
    cell_ids: Sequence[str] | pd.Index | None = None,
    layers: Sequence[str] = (),
) -> None:
    """Raise :class:`InputError` unless every stored value of ``chunk`` is a count.

    A count is a non-negative integer (stored as int or float). Log-normalised or scaled
    data fails here, naming the first offending cell (row ``first_row + r``, and its id when
    ``cell_ids`` for the whole matrix are given). Only ``chunk.data`` is looked at, vectorised.
    """
    data = chunk.data
    if data.size == 0:
        return
    if np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_:
        if data.dtype == np.bool_ or data.min() >= 0:
            return
        bad = data < 0
    else:
        # floor(x) != x is also true for NaN and inf, which are not counts either.
        bad = (data < 0) | (np.floor(data) != data)
        if not bad.any():
            return
    at = int(np.argmax(bad))
    value = data[at]
    row = first_row + int(np.searchsorted(chunk.indptr, at, side="right")) - 1
    cell = f"row {row}"
    if cell_ids is not None and row < len(cell_ids):
        cell = f"cell {str(cell_ids[row])!r} (row {row})"
    matrix = "X" if layer is None else f"layer {layer!r}"
    if np.isfinite(value) and value < 0:
        kind = f"negative value {value:g}: scaled or centred data"
    else:
        kind = f"value {value:g} is not an integer: log-normalised or otherwise normalised data"
    fix = _RAW_FIX
    if layers:
        fix += f"; this input has layers {', '.join(repr(x) for x in layers)}"
    raise InputError(
        f"{matrix} does not hold raw counts ({kind})", file=source, where=cell, fix=fix
    )


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
    if _is_anndata(source):
        return _from_anndata(source, "<AnnData>", layer, gene_id_column)
    path = Path(source)
    name = str(source)
    if not path.exists():
        raise InputError(
            "file not found", file=name, fix="check the path (and the working directory)"
        )
    suffixes = "".join(path.suffixes[-2:]).lower()
    suffix = path.suffix.lower()
    if path.is_dir() and suffix != ".zarr":
        if _find_mtx(path) is not None:
            return _open_mtx(path, name, layer, gene_id_column)
        if (path / ".zgroup").exists() or (path / "zarr.json").exists():
            return _open_zarr(path, name, layer, gene_id_column, backed)
        raise InputError(
            "directory holds neither a 10x matrix (matrix.mtx, features.tsv, barcodes.tsv) "
            "nor a zarr store",
            file=name,
            fix="pass a .h5ad, .zarr, .loom, 10x .h5 file or a 10x matrix directory",
        )
    if suffix == ".h5ad":
        return _open_h5ad(path, name, layer, gene_id_column, backed)
    if suffix == ".zarr":
        return _open_zarr(path, name, layer, gene_id_column, backed)
    if suffix == ".loom":
        return _open_loom(path, name, layer, gene_id_column)
    if suffix in (".h5", ".hdf5"):
        return _open_10x_h5(path, name, layer, gene_id_column, backed)
    if suffixes in (".mtx", ".mtx.gz") or suffix == ".mtx":
        return _open_mtx(path.parent, name, layer, gene_id_column, matrix=path)
    raise InputError(
        f"unknown file type {''.join(path.suffixes) or '(no extension)'!r}",
        file=name,
        fix="pass a .h5ad, .zarr, .loom, 10x .h5 file or a 10x matrix directory",
    )


# ---------------------------------------------------------------------------------------------
# gene ids and cell ids


def _strings(values: Any) -> np.ndarray:
    """A numpy unicode array; bytes are decoded, missing values become empty strings."""
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "S":  # fixed-length HDF5 strings (10x, loom)
        return np.char.decode(arr, "utf-8")
    arr = np.asarray(values, dtype=object)
    missing = pd.isna(arr)
    if missing.any():
        arr = arr.copy()
        arr[missing] = ""
    if arr.size and isinstance(arr.flat[0], bytes):
        arr = np.array([v.decode() if isinstance(v, bytes) else v for v in arr], dtype=object)
    return arr.astype(str)


def _looks_ensembl(values: np.ndarray) -> bool:
    """True when most non-empty values are Ensembl gene ids (ENSG..., ENSMUSG..., ...)."""
    present = [v for v in values if v]
    if not present:
        return False
    hits = sum(1 for v in present if _ENSEMBL.match(v))
    return hits >= 0.5 * len(present)


def _pick_genes(
    names: np.ndarray | None,
    columns: dict[str, np.ndarray],
    gene_id_column: str | None,
    source: str,
    what: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Choose gene ids and symbols from gene names and gene attribute columns.

    ``names`` are the gene names (AnnData var_names); ``what`` names the attribute table
    in messages ("var column", "row attribute").
    """
    if gene_id_column is not None:
        if gene_id_column in columns:
            ids = columns[gene_id_column]
        elif names is not None and gene_id_column in ("index", "var_names"):
            ids = names
        else:
            have = ", ".join(repr(c) for c in columns) or "none"
            raise InputError(
                f"gene id {what} {gene_id_column!r} does not exist (there are: {have})",
                file=source,
                fix=f"pass one of the existing {what}s as gene_id_column (--gene-id-column)",
            )
    elif "ensembl_id" in columns:
        ids = columns["ensembl_id"]
    elif names is not None and _looks_ensembl(names):
        ids = names
    else:
        found = next(
            (columns[c] for c in _ID_COLUMNS if c in columns and _looks_ensembl(columns[c])), None
        )
        ids = found if found is not None else names
    if ids is None:
        return ids, None  # the caller reports the lack of any gene names
    symbols = None
    if names is not None and not np.array_equal(names, ids):
        symbols = names
    else:
        for c in _SYMBOL_COLUMNS:
            if c in columns and not np.array_equal(columns[c], ids):
                symbols = columns[c]
                break
    if symbols is not None and not _looks_ensembl(ids):
        symbols = None  # ids are symbols themselves
    return ids, symbols


def _frame_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """String columns of a var table (the only ones that can hold gene ids)."""
    out = {}
    for c in frame.columns:
        col = frame[c]
        if (
            isinstance(col.dtype, pd.CategoricalDtype)
            or col.dtype == object
            or (pd.api.types.is_string_dtype(col.dtype))
        ):
            out[str(c)] = _strings(col.to_numpy(dtype=object))
    return out


def _obs_frame(obs: pd.DataFrame) -> pd.DataFrame:
    obs = obs.copy()
    obs.index = pd.Index(_strings(obs.index.to_numpy(dtype=object)), dtype=object)
    return obs


def _check_shape(n_cells: int, n_genes: int, source: str) -> None:
    if n_cells == 0 or n_genes == 0:
        raise InputError(
            f"empty matrix ({n_cells} cells x {n_genes} genes)",
            file=source,
            fix="pass a matrix with at least one cell and one gene",
        )


# ---------------------------------------------------------------------------------------------
# row readers


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


class _MemoryRows:
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


class _CsrGroupRows(_OnDisk):
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


class _CscGroupRows(_OnDisk):
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


class _DenseDatasetRows(_OnDisk):
    """Rows of a dense on-disk 2-D dataset (h5py or zarr)."""

    def __init__(self, dataset: Any, handle: Any = None) -> None:
        self.dataset = dataset
        self.handle = handle

    def read(self, start: int, stop: int) -> sp.csr_matrix:
        d = self.dataset
        return _dense_rows(d, start, stop, d.shape[1], np.dtype(d.dtype).itemsize)


class _LoomRows:
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
# AnnData: in memory, .h5ad and .zarr


def _is_anndata(obj: Any) -> bool:
    try:
        import anndata
    except ImportError:  # pragma: no cover - anndata is a dependency of the sc pillar
        return False
    return isinstance(obj, anndata.AnnData)


def _missing_layer(layer: str, layers: Sequence[str], source: str) -> InputError:
    have = ", ".join(repr(x) for x in layers) or "none"
    return InputError(
        f"layer {layer!r} does not exist (layers: {have})",
        file=source,
        fix="pass one of the existing layers, or leave the layer out to read X",
    )


def _from_anndata(
    adata: Any, source: str, layer: str | None, gene_id_column: str | None
) -> CellMatrix:
    layers = list(adata.layers.keys()) + (["raw"] if adata.raw is not None else [])
    var = adata.var
    if layer is None:
        matrix = adata.X
        if matrix is None:
            raise InputError(
                "the AnnData has no X", file=source, fix="pass layer= one of: " + ", ".join(layers)
            )
    elif layer in adata.layers:
        matrix = adata.layers[layer]
    elif layer == "raw" and adata.raw is not None:
        matrix, var = adata.raw.X, adata.raw.var
    else:
        raise _missing_layer(layer, layers, source)
    n_cells, n_genes = adata.n_obs, var.shape[0]
    _check_shape(n_cells, n_genes, source)
    names = _strings(var.index.to_numpy(dtype=object))
    ids, symbols = _pick_genes(names, _frame_columns(var), gene_id_column, source, "var column")
    return CellMatrix(
        source=source,
        n_cells=n_cells,
        gene_ids=ids,
        gene_symbols=symbols,
        obs=_obs_frame(adata.obs),
        layer=layer,
        layers=tuple(layers),
        _rows=_MemoryRows(matrix),
    )


def _path_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux /proc/meminfo, else POSIX sysconf), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _want_backed(path: Path, backed: bool | None) -> bool:
    if backed is not None:
        return backed
    limit = BACKED_MAX_BYTES
    available = _available_memory()
    if available is not None:
        limit = min(limit, int(available * BACKED_MEMORY_FRACTION))
    return _path_bytes(path) > limit


def _open_h5ad(
    path: Path, source: str, layer: str | None, gene_id_column: str | None, backed: bool | None
) -> CellMatrix:
    import h5py

    if not _want_backed(path, backed):
        import anndata

        try:
            adata = anndata.read_h5ad(path)
        except Exception as err:  # h5py/anndata raise many types for a damaged file
            raise InputError(
                f"cannot read as .h5ad: {err}", file=source, fix="check that it is an AnnData file"
            ) from err
        return _from_anndata(adata, source, layer, gene_id_column)
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise InputError(
            f"cannot open as HDF5: {err}", file=source, fix="check that it is an .h5ad file"
        ) from err
    try:
        return _from_group(handle, handle, source, layer, gene_id_column)
    except BaseException:
        handle.close()
        raise


def _open_zarr(
    path: Path, source: str, layer: str | None, gene_id_column: str | None, backed: bool | None
) -> CellMatrix:
    import zarr

    if not _want_backed(path, backed):
        import anndata

        try:
            adata = anndata.read_zarr(path)
        except Exception as err:
            raise InputError(
                f"cannot read as AnnData zarr: {err}",
                file=source,
                fix="check that it was written by anndata (write_zarr)",
            ) from err
        return _from_anndata(adata, source, layer, gene_id_column)
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as err:
        raise InputError(
            f"cannot open as zarr: {err}", file=source, fix="check that it is a zarr store"
        ) from err
    return _from_group(group, None, source, layer, gene_id_column)


def _group_keys(group: Any, name: str) -> list[str]:
    return list(group[name].keys()) if name in group else []


def _from_group(
    root: Any, handle: Any, source: str, layer: str | None, gene_id_column: str | None
) -> CellMatrix:
    """An AnnData file (h5py File or zarr Group) read lazily: only obs/var loaded now."""
    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem

    has_raw = "raw" in root and "X" in root["raw"]
    layers = _group_keys(root, "layers") + (["raw"] if has_raw else [])
    var_key = "var"
    if layer is None:
        if "X" not in root:
            raise InputError(
                "the file has no X", file=source, fix="pass layer= one of: " + ", ".join(layers)
            )
        element = root["X"]
    elif layer in _group_keys(root, "layers"):
        element = root["layers"][layer]
    elif layer == "raw" and has_raw:
        element, var_key = root["raw"]["X"], "raw/var"
    else:
        raise _missing_layer(layer, layers, source)
    try:
        obs = read_elem(root["obs"])
        var = read_elem(root[var_key])
    except Exception as err:
        raise InputError(
            f"cannot read the cell/gene tables (obs/{var_key}): {err}",
            file=source,
            fix="rewrite the file with a current anndata (read_h5ad then write_h5ad)",
        ) from err
    n_cells, n_genes = obs.shape[0], var.shape[0]
    _check_shape(n_cells, n_genes, source)
    where = "X" if layer is None else f"layer {layer!r}"
    attrs = dict(element.attrs)
    kind = attrs.get("encoding-type") or attrs.get("h5sparse_format")
    shape = tuple(attrs.get("shape", attrs.get("h5sparse_shape", getattr(element, "shape", ()))))
    if shape != (n_cells, n_genes):
        raise InputError(
            f"{where} has shape {shape}, but there are {n_cells} cells and {n_genes} genes",
            file=source,
            fix="rewrite the file with anndata",
        )
    rows: _Rows
    if kind in ("csr_matrix", "csr"):
        rows = _CsrGroupRows(element, n_genes, handle)
    elif kind in ("csc_matrix", "csc"):
        warnings.warn(
            f"{source}: {where} is stored by gene (CSC): each chunk of cells scans the whole "
            "matrix; for speed rewrite it by cell (adata.X = adata.X.tocsr()) or read it "
            "into memory (backed=False)",
            stacklevel=3,
        )
        rows = _CscGroupRows(element, n_genes, handle)
    elif hasattr(element, "shape") and len(element.shape) == 2:
        rows = _DenseDatasetRows(element, handle)
    else:
        raise InputError(
            f"{where} has an unsupported encoding {kind!r}",
            file=source,
            fix="rewrite it as a CSR or dense matrix with anndata",
        )
    names = _strings(var.index.to_numpy(dtype=object))
    ids, symbols = _pick_genes(names, _frame_columns(var), gene_id_column, source, "var column")
    return CellMatrix(
        source=source,
        n_cells=n_cells,
        gene_ids=ids,
        gene_symbols=symbols,
        obs=_obs_frame(obs),
        layer=layer,
        layers=tuple(layers),
        _rows=rows,
    )


# ---------------------------------------------------------------------------------------------
# .loom


def _open_loom(
    path: Path, source: str, layer: str | None, gene_id_column: str | None
) -> CellMatrix:
    import loompy

    try:
        ds = loompy.connect(str(path), mode="r", validate=False)
    except Exception as err:
        raise InputError(
            f"cannot open as .loom: {err}", file=source, fix="check that it is a loom file"
        ) from err
    try:
        return _from_loom(ds, source, layer, gene_id_column)
    except BaseException:
        ds.close()
        raise


def _from_loom(ds: Any, source: str, layer: str | None, gene_id_column: str | None) -> CellMatrix:
    n_genes, n_cells = ds.shape
    layer_name = "" if layer is None else layer
    # loompy's attribute and layer managers are not dicts: list their keys() explicitly.
    all_layers = list(ds.layers.keys())
    layer_names = [k for k in all_layers if k]
    if layer_name not in all_layers:
        raise _missing_layer(layer_name, layer_names, source)
    _check_shape(n_cells, n_genes, source)
    row_attrs = {
        k: _strings(ds.ra[k]) for k in list(ds.ra.keys()) if np.asarray(ds.ra[k]).ndim == 1
    }
    if not row_attrs:
        raise InputError(
            "the .loom has no row (gene) attributes, so its genes have no ids",
            file=source,
            where="row attributes",
            fix="add a row attribute 'ensembl_id' with each gene's Ensembl id",
        )
    names = next((row_attrs[k] for k in _SYMBOL_COLUMNS if k in row_attrs), None)
    ids, symbols = _pick_genes(names, row_attrs, gene_id_column, source, "row attribute")
    if ids is None:
        raise InputError(
            "no gene id row attribute (ensembl_id, Accession or Gene) among: "
            + ", ".join(repr(k) for k in row_attrs),
            file=source,
            where="row attributes",
            fix="add a row attribute 'ensembl_id', or name the one to use with gene_id_column",
        )
    columns: dict[str, np.ndarray] = {}
    for k in list(ds.ca.keys()):
        value = np.asarray(ds.ca[k])
        if value.ndim == 1:
            columns[k] = _strings(value) if value.dtype.kind in "OSU" else value
    cell_key = next((k for k in _CELL_ID_ATTRS if k in columns), None)
    index = columns[cell_key] if cell_key else np.arange(n_cells).astype(str)
    obs = pd.DataFrame(columns, index=pd.Index(index, dtype=object))
    return CellMatrix(
        source=source,
        n_cells=n_cells,
        gene_ids=ids,
        gene_symbols=symbols,
        obs=_obs_frame(obs),
        layer=layer,
        layers=tuple(layer_names),
        _rows=_LoomRows(ds, layer_name),
    )


# ---------------------------------------------------------------------------------------------
# 10x: CellRanger HDF5 and matrix directories


def _no_layers(layer: str | None, source: str, kind: str) -> None:
    if layer is not None:
        raise InputError(
            f"layer {layer!r} does not exist ({kind} has no layers)",
            file=source,
            fix="leave the layer out",
        )


def _tenx_genes(
    ids: np.ndarray,
    names: np.ndarray | None,
    types: np.ndarray | None,
    gene_id_column: str | None,
    source: str,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gene ids, symbols and the columns to keep (Gene Expression features only)."""
    keep = None
    if (
        types is not None
        and (types != "Gene Expression").any()
        and (types == "Gene Expression").any()
    ):
        # Antibody, CRISPR guide ... features are not genes: the tokenizer must not see them.
        keep = np.flatnonzero(types == "Gene Expression")
        ids = ids[keep]
        names = None if names is None else names[keep]
    if gene_id_column in (None, "id", "gene_ids"):
        return ids, names, keep
    if gene_id_column in ("name", "gene_symbols") and names is not None:
        return names, None, keep
    have = "'id', 'name'" if names is not None else "'id'"
    raise InputError(
        f"gene id column {gene_id_column!r} does not exist (there are: {have})",
        file=source,
        fix="pass gene_id_column='id' (Ensembl ids) or 'name' (symbols)",
    )


def _open_10x_h5(
    path: Path, source: str, layer: str | None, gene_id_column: str | None, backed: bool | None
) -> CellMatrix:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise InputError(
            f"cannot open as HDF5: {err}", file=source, fix="check that it is a 10x .h5 file"
        ) from err
    try:
        if handle.attrs.get("encoding-type") == "anndata":
            # An AnnData file named .h5: read it as one.
            handle.close()
            return _open_h5ad(path, source, layer, gene_id_column, backed)
        return _from_10x_h5(handle, source, layer, gene_id_column)
    except BaseException:
        handle.close()
        raise


def _from_10x_h5(
    handle: Any, source: str, layer: str | None, gene_id_column: str | None
) -> CellMatrix:
    groups = list(handle.keys())
    if "matrix" not in handle:
        raise InputError(
            "no 'matrix' group, so not a CellRanger v3+ .h5 (groups: "
            + (", ".join(repr(g) for g in groups) or "none")
            + "; a CellRanger v2 file has one group per genome)",
            file=source,
            fix="use the CellRanger v3+ filtered_feature_bc_matrix.h5, or convert the file to "
            ".h5ad (scanpy.read_10x_h5(path, genome=...).write_h5ad(...))",
        )
    _no_layers(layer, source, "a 10x .h5")
    m = handle["matrix"]
    need = ("data", "indices", "indptr", "shape", "barcodes", "features")
    missing = [k for k in need if k not in m]
    if missing:
        raise InputError(
            "the 'matrix' group lacks " + ", ".join(repr(k) for k in missing),
            file=source,
            where="matrix",
            fix="use an unmodified CellRanger v3+ .h5",
        )
    n_genes, n_cells = (int(x) for x in m["shape"][:])
    _check_shape(n_cells, n_genes, source)
    f = m["features"]
    ids = _strings(f["id"][:])
    names = _strings(f["name"][:]) if "name" in f else None
    types = _strings(f["feature_type"][:]) if "feature_type" in f else None
    barcodes = _strings(m["barcodes"][:])
    if len(ids) != n_genes or len(barcodes) != n_cells or m["indptr"].shape[0] != n_cells + 1:
        raise InputError(
            f"shape {n_genes} x {n_cells} disagrees with {len(ids)} features, "
            f"{len(barcodes)} barcodes and {m['indptr'].shape[0]} indptr entries",
            file=source,
            where="matrix",
            fix="use an unmodified CellRanger v3+ .h5",
        )
    ids, symbols, keep = _tenx_genes(ids, names, types, gene_id_column, source)
    obs = pd.DataFrame(index=pd.Index(barcodes, dtype=object))
    return CellMatrix(
        source=source,
        n_cells=n_cells,
        gene_ids=ids,
        gene_symbols=symbols,
        obs=obs,
        _rows=_CsrGroupRows(m, n_genes, handle),
        _keep=keep,
    )


def _find_mtx(directory: Path) -> Path | None:
    """The one ``*matrix.mtx(.gz)`` of a 10x directory (GEO adds prefixes), or None."""
    found = sorted(p for p in directory.iterdir() if re.search(r"matrix\.mtx(\.gz)?$", p.name))
    return found[0] if len(found) == 1 else None


def _open_text(path: Path) -> Any:
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _read_tsv(path: Path) -> pd.DataFrame:
    with _open_text(path) as fh:
        return pd.read_csv(fh, sep="\t", header=None, dtype=str, keep_default_na=False)


def _open_mtx(
    directory: Path,
    source: str,
    layer: str | None,
    gene_id_column: str | None,
    matrix: Path | None = None,
) -> CellMatrix:
    import scipy.io

    _no_layers(layer, source, "a 10x matrix directory")
    matrix = matrix or _find_mtx(directory)
    if matrix is None:
        raise InputError(
            "no single matrix.mtx(.gz) in the directory",
            file=source,
            fix="pass the 10x directory that holds matrix.mtx, features.tsv and barcodes.tsv",
        )
    prefix = re.sub(r"matrix\.mtx(\.gz)?$", "", matrix.name)

    def sibling(*stems: str) -> Path:
        for stem in stems:
            for ext in (".tsv.gz", ".tsv"):
                p = directory / f"{prefix}{stem}{ext}"
                if p.exists():
                    return p
        raise InputError(
            f"{prefix}{stems[0]}.tsv(.gz) is missing beside {matrix.name}",
            file=source,
            fix="a 10x directory needs matrix.mtx, features.tsv (or genes.tsv) and barcodes.tsv",
        )

    features_path = sibling("features", "genes")
    barcodes_path = sibling("barcodes")
    try:
        with gzip.open(matrix, "rb") if matrix.suffix == ".gz" else open(matrix, "rb") as fh:
            counts = scipy.io.mmread(fh)
    except (ValueError, OSError) as err:
        raise InputError(
            f"cannot read the Matrix Market file: {err}",
            file=matrix,
            fix="check that it is an unmodified 10x matrix.mtx",
        ) from err
    n_genes, n_cells = counts.shape
    features = _read_tsv(features_path)
    barcodes = _read_tsv(barcodes_path)
    for table, n, what, path in (
        (features, n_genes, "rows (genes)", features_path),
        (barcodes, n_cells, "columns (cells)", barcodes_path),
    ):
        if len(table) != n:
            raise InputError(
                f"{len(table)} lines, but {matrix.name} has {n} {what}",
                file=path,
                fix="use the files CellRanger wrote together",
            )
    _check_shape(n_cells, n_genes, source)
    ids = _strings(features[0].to_numpy())
    names = _strings(features[1].to_numpy()) if features.shape[1] > 1 else None
    types = _strings(features[2].to_numpy()) if features.shape[1] > 2 else None
    ids, symbols, keep = _tenx_genes(ids, names, types, gene_id_column, source)
    obs = pd.DataFrame(index=pd.Index(_strings(barcodes[0].to_numpy()), dtype=object))
    return CellMatrix(
        source=source,
        n_cells=n_cells,
        gene_ids=ids,
        gene_symbols=symbols,
        obs=obs,
        _rows=_MemoryRows(sp.csr_matrix(counts.T)),
        _keep=keep,
    )
