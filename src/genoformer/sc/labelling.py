"""``sc predict`` on an .h5ad: its cells tokenized with the run's vocabulary, and the labels
and probabilities written into a copy of the AnnData (``.obs`` / ``.obsm``) beside the table.

The vocabulary is the one the classifier was trained with: the run's ``--vocabulary``, else
the copy the training corpus keeps (``vocabulary.json``), else the release its config names
(V1, V2). The copy of the AnnData gets, for the run's label ``L``: ``obs["L_predicted"]``,
``obs["L_probability"]`` (of the predicted class), ``obsm["L_probabilities"]`` (a column per
class, in ``uns["L_classes"]`` order). Cells the tokenizer left out (no gene of the
vocabulary) have no prediction: empty ``obs`` values and NaN probabilities.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genoformer.engine.runs import atomic_path

__all__ = ["ADATA_FILE", "is_cells_file", "run_vocabulary", "tokenize_cells", "write_labelled"]

#: The labelled copy of the input AnnData, in the predictions' run directory.
ADATA_FILE = "cells.h5ad"


def is_cells_file(path: Path) -> bool:
    """Whether ``sc predict`` tokenizes ``path`` itself (an .h5ad) rather than reading a corpus."""
    return path.suffix == ".h5ad"


def run_vocabulary(manifest: dict[str, Any], config: Any) -> str:
    """The vocabulary the run's classifier was trained with (see the module's docstring)."""
    from genoformer.sc.vocabulary import CORPUS_COPY

    arguments = manifest.get("arguments", {})
    if arguments.get("vocabulary"):
        return str(arguments["vocabulary"])
    copy = Path(arguments.get("corpus", "")) / CORPUS_COPY
    if arguments.get("corpus") and copy.exists():
        return str(copy)
    return str(getattr(config, "vocabulary", "V2"))


def tokenize_cells(path: Path, out: Path, vocabulary: Any, dictionaries: Any, label: Any) -> Path:
    """Tokenize the .h5ad's cells into a corpus at ``out`` (with the label, when the cells
    have it, so that the predictions are scored)."""
    import anndata

    from genoformer.sc.tokenizer import tokenize

    columns = anndata.read_h5ad(path, backed="r").obs.columns
    attributes = [label] if isinstance(label, str) and label in columns else None
    tokenize(
        path,
        out=out,
        vocabulary=vocabulary,
        dictionaries=dictionaries,
        cell_attributes=attributes,
        progress=False,
    )
    return out


def write_labelled(
    path: Path, out: Path, table: pd.DataFrame, probabilities: np.ndarray, label: str
) -> Path:
    """A copy of the .h5ad at ``path`` with the predictions in ``.obs`` / ``.obsm``."""
    import anndata

    adata = anndata.read_h5ad(path)
    classes = [c.removeprefix("p_") for c in table.columns if c.startswith("p_")]
    rows = table["cell_index"].to_numpy(np.int64)
    predicted = np.full(adata.n_obs, None, dtype=object)
    predicted[rows] = table["predicted"].to_numpy()
    best = np.full(adata.n_obs, np.nan)
    best[rows] = table["probability"].to_numpy()
    every = np.full((adata.n_obs, len(classes)), np.nan)
    every[rows] = probabilities
    adata.obs[f"{label}_predicted"] = pd.Categorical(predicted, categories=classes)
    adata.obs[f"{label}_probability"] = best
    adata.obsm[f"{label}_probabilities"] = every
    adata.uns[f"{label}_classes"] = np.asarray(classes, dtype=object)
    with atomic_path(out) as tmp:
        adata.write_h5ad(tmp)
    return Path(os.fspath(out))
