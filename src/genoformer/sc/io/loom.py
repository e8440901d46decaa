"""``.loom`` inputs (loompy): genes are rows and cells columns; cells read in column blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError, option
from genoformer.sc.io.matrix import (
    CELL_ID_ATTRS,
    SYMBOL_COLUMNS,
    CellMatrix,
    as_strings,
    check_shape,
    missing_layer,
    obs_frame,
    pick_genes,
)
from genoformer.sc.io.rows import LoomRows


def open_loom(path: Path, source: str, layer: str | None, gene_id_column: str | None) -> CellMatrix:
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
        raise missing_layer(layer_name, layer_names, source)
    check_shape(n_cells, n_genes, source)
    row_attrs = {
        k: as_strings(ds.ra[k]) for k in list(ds.ra.keys()) if np.asarray(ds.ra[k]).ndim == 1
    }
    if not row_attrs:
        raise InputError(
            "the .loom has no row (gene) attributes, so its genes have no ids",
            file=source,
            where="row attributes",
            fix="add a row attribute 'ensembl_id' with each gene's Ensembl id",
        )
    names = next((row_attrs[k] for k in SYMBOL_COLUMNS if k in row_attrs), None)
    ids, symbols = pick_genes(names, row_attrs, gene_id_column, source, "row attribute")
    if ids is None:
        raise InputError(
            "no gene id row attribute (ensembl_id, Accession or Gene) among: "
            + ", ".join(repr(k) for k in row_attrs),
            file=source,
            where="row attributes",
            fix=f"add a row attribute 'ensembl_id', or name the one to use with "
            f"{option('gene_id_column')}",
        )
    columns: dict[str, np.ndarray] = {}
    for k in list(ds.ca.keys()):
        value = np.asarray(ds.ca[k])
        if value.ndim == 1:
            columns[k] = as_strings(value) if value.dtype.kind in "OSU" else value
    cell_key = next((k for k in CELL_ID_ATTRS if k in columns), None)
    index = columns[cell_key] if cell_key else np.arange(n_cells).astype(str)
    obs = pd.DataFrame(columns, index=pd.Index(index, dtype=object))
    return CellMatrix(
        source=source,
        n_cells=n_cells,
        gene_ids=ids,
        gene_symbols=symbols,
        obs=obs_frame(obs),
        layer=layer,
        layers=tuple(layer_names),
        _rows=LoomRows(ds, layer_name),
    )
