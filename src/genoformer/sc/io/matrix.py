"""The opened count matrix every reader returns, its raw-count check, and gene/cell ids.

:class:`CellMatrix` holds a matrix's cell and gene annotations and reads its counts in
chunks of cells through a row reader (:mod:`genoformer.sc.io.rows`); the helpers here pick
the Ensembl ids and symbols among the gene columns of any format.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from genoformer.engine.errors import InputError, option
from genoformer.sc.io.rows import Rows

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")


_ID_COLUMNS = ("ensembl_id", "ensembl_ids", "gene_ids", "gene_id", "Accession", "feature_id")


SYMBOL_COLUMNS = (
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


CELL_ID_ATTRS = ("CellID", "obs_names", "cell_id", "cell_ids", "barcode", "barcodes")


def _raw_fix(layer: str | None, layers: Sequence[str]) -> str:
    """Where to read raw counts from instead: another layer of the input, when it has one."""
    others = [x for x in layers if x != layer]
    if not others:
        return (
            "pass raw counts (whole numbers of reads or UMIs, before any normalisation); this "
            "input has no other layer to read them from"
        )
    listed = ", ".join(repr(x) for x in others)
    choose = option("layer", others[0]) or "another layer"
    raw = " ('raw' is adata.raw)" if "raw" in others else ""
    return f"read the raw counts from another layer of this input ({listed}{raw}), e.g. {choose}"


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
    _rows: Rows | None = field(default=None, repr=False)
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
            yield start, self.rows(start, min(start + size, self.n_cells))

    def rows(self, start: int, stop: int) -> sp.csr_matrix:
        """The raw counts of cells ``start .. stop``: cells x genes CSR, sorted indices."""
        if self._rows is None:
            raise ValueError(f"{self.source}: the cell matrix is closed")
        block = self._rows.read(start, stop)
        if self._keep is not None:
            block = block[:, self._keep]
        block = sp.csr_matrix(block)
        block.sort_indices()
        return block

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

    def totals(self) -> np.ndarray | None:
        """The obs column ``n_counts`` (each cell's total count, Geneformer's name) as
        float64, or None without one. Missing values are NaN (the readers refuse them for
        cells with counts); a value that is not a number is bad input naming its cell."""
        if "n_counts" not in self.obs.columns:
            return None
        given = self.obs["n_counts"].astype(object)
        values = pd.to_numeric(given, errors="coerce")
        text = (values.isna() & given.notna()).to_numpy()
        if text.any():
            row = int(np.argmax(text))
            raise InputError(
                f"n_counts is {given.iloc[row]!r}, not a number",
                file=self.source,
                where=f"cell {str(self.obs.index[row])!r} (row {row}), obs column 'n_counts'",
                fix="store each cell's total count as a number, or drop the column: without it "
                "each cell's total is computed from its counts over all genes",
            )
        return np.asarray(values, dtype=np.float64)

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
    raise InputError(
        f"{matrix} does not hold raw counts ({kind})",
        file=source,
        where=cell,
        fix=_raw_fix(layer, layers),
    )


def as_strings(values: Any) -> np.ndarray:
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


def looks_ensembl(values: np.ndarray) -> bool:
    """True when most non-empty values are Ensembl gene ids (ENSG..., ENSMUSG..., ...)."""
    present = [v for v in values if v]
    if not present:
        return False
    hits = sum(1 for v in present if _ENSEMBL.match(v))
    return hits >= 0.5 * len(present)


def pick_genes(
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
                fix=f"name one of the existing {what}s with {option('gene_id_column')}",
            )
    elif "ensembl_id" in columns:
        ids = columns["ensembl_id"]
    elif names is not None and looks_ensembl(names):
        ids = names
    else:
        found = next(
            (columns[c] for c in _ID_COLUMNS if c in columns and looks_ensembl(columns[c])), None
        )
        ids = found if found is not None else names
    if ids is None:
        return ids, None  # the caller reports the lack of any gene names
    symbols = None
    if names is not None and not np.array_equal(names, ids):
        symbols = names
    else:
        for c in SYMBOL_COLUMNS:
            if c in columns and not np.array_equal(columns[c], ids):
                symbols = columns[c]
                break
    if symbols is not None and not looks_ensembl(ids):
        symbols = None  # ids are symbols themselves
    return ids, symbols


def frame_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """String columns of a var table (the only ones that can hold gene ids)."""
    out = {}
    for c in frame.columns:
        col = frame[c]
        if (
            isinstance(col.dtype, pd.CategoricalDtype)
            or col.dtype == object
            or (pd.api.types.is_string_dtype(col.dtype))
        ):
            out[str(c)] = as_strings(col.to_numpy(dtype=object))
    return out


def obs_frame(obs: pd.DataFrame) -> pd.DataFrame:
    obs = obs.copy()
    obs.index = pd.Index(as_strings(obs.index.to_numpy(dtype=object)), dtype=object)
    return obs


def check_shape(n_cells: int, n_genes: int, source: str) -> None:
    if n_cells == 0 or n_genes == 0:
        raise InputError(
            f"empty matrix ({n_cells} cells x {n_genes} genes)",
            file=source,
            fix="pass a matrix with at least one cell and one gene",
        )


@contextlib.contextmanager
def read_failure(file: str | os.PathLike | None, message: str, fix: str) -> Iterator[None]:
    """Raise an OSError or ValueError of the block (a file that cannot be read or parsed) as
    an :class:`InputError` about ``file``: ``message`` with ``{error}`` in it filled in."""
    try:
        yield
    except (OSError, ValueError) as error:
        raise InputError(message.format(error=error), file=file, fix=fix) from error


def missing_layer(layer: str, layers: Sequence[str], source: str) -> InputError:
    have = ", ".join(repr(x) for x in layers) or "none"
    return InputError(
        f"layer {layer!r} does not exist (layers: {have})",
        file=source,
        fix="pass one of the existing layers, or leave the layer out to read X",
    )
