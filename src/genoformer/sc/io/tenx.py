"""10x Genomics inputs: CellRanger's ``.h5`` (read from disk, never whole; only "Gene
Expression" features kept) and the matrix directory (``matrix.mtx(.gz)``, ``features.tsv``
or ``genes.tsv``, ``barcodes.tsv``: Matrix Market is text, so it is parsed whole)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from genoformer.engine.errors import InputError, option
from genoformer.sc.io.h5ad import closed_on_error, open_anndata_file, open_hdf5
from genoformer.sc.io.matrix import CellMatrix, as_strings, check_shape, read_failure
from genoformer.sc.io.rows import CsrGroupRows, MemoryRows, Rows


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
        fix=f"pass {option('gene_id_column', 'id')} (Ensembl ids) or 'name' (symbols)",
    )


def open_10x_h5(
    path: Path, source: str, layer: str | None, gene_id_column: str | None, backed: bool | None
) -> CellMatrix:
    handle = open_hdf5(path, source, fix="check that it is a 10x .h5 file")
    with closed_on_error(handle):
        if handle.attrs.get("encoding-type") == "anndata":
            # An AnnData file named .h5: read it as one.
            handle.close()
            return open_anndata_file(path, source, layer, gene_id_column, backed, "h5ad")
        return _from_10x_h5(handle, source, layer, gene_id_column)


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
    check_shape(n_cells, n_genes, source)
    f = m["features"]
    ids = as_strings(f["id"][:])
    names = as_strings(f["name"][:]) if "name" in f else None
    types = as_strings(f["feature_type"][:]) if "feature_type" in f else None
    barcodes = as_strings(m["barcodes"][:])
    if len(ids) != n_genes or len(barcodes) != n_cells or m["indptr"].shape[0] != n_cells + 1:
        raise InputError(
            f"shape {n_genes} x {n_cells} disagrees with {len(ids)} features, "
            f"{len(barcodes)} barcodes and {m['indptr'].shape[0]} indptr entries",
            file=source,
            where="matrix",
            fix="use an unmodified CellRanger v3+ .h5",
        )
    rows = CsrGroupRows(m, n_genes, handle)
    return _matrix(source, (ids, names, types), barcodes, gene_id_column, rows)


def find_mtx(directory: Path) -> Path | None:
    """The one ``*matrix.mtx(.gz)`` of a 10x directory (GEO adds prefixes), or None."""
    found = sorted(p for p in directory.iterdir() if re.search(r"matrix\.mtx(\.gz)?$", p.name))
    return found[0] if len(found) == 1 else None


def _open_file(path: Path, binary: bool = False) -> Any:
    """``path`` opened for reading (bytes or text), through gzip when it ends in ``.gz``."""
    mode = "rb" if binary else "rt"
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)


def _read_tsv(path: Path) -> pd.DataFrame:
    with _open_file(path) as fh:
        return pd.read_csv(fh, sep="\t", header=None, dtype=str, keep_default_na=False)


def open_mtx(
    directory: Path,
    source: str,
    layer: str | None,
    gene_id_column: str | None,
    matrix: Path | None = None,
) -> CellMatrix:
    import scipy.io

    _no_layers(layer, source, "a 10x matrix directory")
    matrix = matrix or find_mtx(directory)
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
    unreadable = "cannot read the Matrix Market file: {error}"
    fix = "check that it is an unmodified 10x matrix.mtx"
    with read_failure(matrix, unreadable, fix), _open_file(matrix, binary=True) as fh:
        counts = scipy.io.mmread(fh)
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
    check_shape(n_cells, n_genes, source)
    ids = as_strings(features[0].to_numpy())
    names = as_strings(features[1].to_numpy()) if features.shape[1] > 1 else None
    types = as_strings(features[2].to_numpy()) if features.shape[1] > 2 else None
    cells = as_strings(barcodes[0].to_numpy())
    rows = MemoryRows(sp.csr_matrix(counts.T))
    return _matrix(source, (ids, names, types), cells, gene_id_column, rows)


def _matrix(
    source: str,
    features: tuple[np.ndarray, np.ndarray | None, np.ndarray | None],
    barcodes: np.ndarray,
    gene_id_column: str | None,
    rows: Rows,
) -> CellMatrix:
    """The opened 10x matrix: its features ``(ids, names, types)``, barcodes and rows."""
    ids, symbols, keep = _tenx_genes(*features, gene_id_column, source)
    return CellMatrix(
        source=source,
        n_cells=len(barcodes),
        gene_ids=ids,
        gene_symbols=symbols,
        obs=pd.DataFrame(index=pd.Index(barcodes, dtype=object)),
        _rows=rows,
        _keep=keep,
    )
