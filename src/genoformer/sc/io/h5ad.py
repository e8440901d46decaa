"""AnnData inputs: in memory, ``.h5ad`` and ``.zarr``, whole or backed (one chunk at a time).

An .h5ad or .zarr is read whole when small, and from disk one chunk of cells at a time
("backed") when it is larger than :data:`BACKED_MAX_BYTES` or a quarter of the available
memory, or when ``backed=True``; backed reading slices the on-disk CSR group
(``data``/``indices``/``indptr``), so only the rows of one chunk are in memory.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from genoformer.engine.errors import InputError
from genoformer.sc.io.matrix import (
    CellMatrix,
    as_strings,
    check_shape,
    frame_columns,
    missing_layer,
    obs_frame,
    pick_genes,
)
from genoformer.sc.io.rows import CscGroupRows, CsrGroupRows, DenseDatasetRows, MemoryRows, Rows

if TYPE_CHECKING:
    import pandas as pd

#: An .h5ad/.zarr larger than this is read backed (from disk, one chunk at a time) by default.
BACKED_MAX_BYTES = 1 << 30


#: ... as is one larger than this share of the memory available when it is opened.
BACKED_MEMORY_FRACTION = 0.25


def is_anndata(obj: Any) -> bool:
    try:
        import anndata
    except ImportError:  # pragma: no cover - anndata is a dependency of the sc pillar
        return False
    return isinstance(obj, anndata.AnnData)


def from_anndata(
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
        raise missing_layer(layer, layers, source)
    check_shape(adata.n_obs, var.shape[0], source)
    return _matrix(source, adata.obs, var, gene_id_column, (layer, layers), MemoryRows(matrix))


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


#: How an AnnData file is read whole: anndata's reader, the format as errors name it, the fix.
_WHOLE_READERS = {
    "h5ad": ("read_h5ad", ".h5ad", "check that it is an AnnData file"),
    "zarr": ("read_zarr", "AnnData zarr", "check that it was written by anndata (write_zarr)"),
}


def open_anndata_file(
    path: Path,
    source: str,
    layer: str | None,
    gene_id_column: str | None,
    backed: bool | None,
    kind: Literal["h5ad", "zarr"],
) -> CellMatrix:
    """An .h5ad or .zarr (``kind``): read whole, or backed (see the module's text)."""
    if not _want_backed(path, backed):
        return _read_whole(kind, path, source, layer, gene_id_column)
    if kind == "zarr":
        return _from_group(_open_zarr_group(path, source), None, source, layer, gene_id_column)
    handle = open_hdf5(path, source, fix="check that it is an .h5ad file")
    with closed_on_error(handle):
        return _from_group(handle, handle, source, layer, gene_id_column)


def _open_zarr_group(path: Path, source: str) -> Any:
    import zarr

    try:
        return zarr.open_group(path, mode="r")
    except Exception as err:
        raise InputError(
            f"cannot open as zarr: {err}", file=source, fix="check that it is a zarr store"
        ) from err


def _read_whole(
    kind: str, path: Path, source: str, layer: str | None, gene_id_column: str | None
) -> CellMatrix:
    """The whole file read into memory by anndata's reader of ``kind``."""
    import anndata

    reader, name, fix = _WHOLE_READERS[kind]
    try:
        adata = getattr(anndata, reader)(path)
    except Exception as err:  # h5py/zarr/anndata raise many types for a damaged file
        raise InputError(f"cannot read as {name}: {err}", file=source, fix=fix) from err
    return from_anndata(adata, source, layer, gene_id_column)


def open_hdf5(path: Path, source: str, fix: str) -> Any:
    """``path`` opened read-only with h5py, or an error naming the file."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"cannot open as HDF5: {err}", file=source, fix=fix) from err


@contextlib.contextmanager
def closed_on_error(handle: Any) -> Iterator[None]:
    """Close ``handle`` if the block fails (on success, the opened matrix owns it)."""
    try:
        yield
    except BaseException:
        handle.close()
        raise


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
        raise missing_layer(layer, layers, source)
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
    check_shape(n_cells, n_genes, source)
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
    rows: Rows
    if kind in ("csr_matrix", "csr"):
        rows = CsrGroupRows(element, n_genes, handle)
    elif kind in ("csc_matrix", "csc"):
        warnings.warn(
            f"{source}: {where} is stored by gene (CSC): each chunk of cells scans the whole "
            "matrix; for speed rewrite it by cell (adata.X = adata.X.tocsr()) or read it "
            "into memory (backed=False)",
            stacklevel=3,
        )
        rows = CscGroupRows(element, n_genes, handle)
    elif hasattr(element, "shape") and len(element.shape) == 2:
        rows = DenseDatasetRows(element, handle)
    else:
        raise InputError(
            f"{where} has an unsupported encoding {kind!r}",
            file=source,
            fix="rewrite it as a CSR or dense matrix with anndata",
        )
    return _matrix(source, obs, var, gene_id_column, (layer, layers), rows)


def _matrix(
    source: str,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    gene_id_column: str | None,
    layers: tuple[str | None, Sequence[str]],
    rows: Rows,
) -> CellMatrix:
    """The opened AnnData matrix: its cell table, its genes (ids and symbols among the var
    columns), ``(the layer read, the layers there are)`` and its row reader."""
    names = as_strings(var.index.to_numpy(dtype=object))
    ids, symbols = pick_genes(names, frame_columns(var), gene_id_column, source, "var column")
    return CellMatrix(
        source=source,
        n_cells=len(obs),
        gene_ids=ids,
        gene_symbols=symbols,
        obs=obs_frame(obs),
        layer=layers[0],
        layers=tuple(layers[1]),
        _rows=rows,
    )
