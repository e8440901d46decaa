"""Pictures of cell embeddings: UMAP and clustered heatmap (PNG + HTML), from embed and tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from genoformer.engine.errors import InputError
from genoformer.sc.plots import (
    embedding_heatmap,
    embedding_umap,
    label_means,
    plot_embeddings,
    umap_coordinates,
)
from tests.conftest import shared_data


def page_text(path) -> str:
    """The HTML page with plotly's JSON escapes of < and > undone."""
    return path.read_text().replace("\\u003c", "<").replace("\\u003e", ">")


@pytest.fixture(scope="module")
def clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three well separated groups of 20 cells in 8 dimensions."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(3, 8))
    labels = np.repeat(np.array(["B cell", "T cell", "NK"]), 20)
    values = centres[np.repeat(np.arange(3), 20)] + rng.normal(size=(60, 8))
    ids = np.array([f"cell{i:02d}" for i in range(60)])
    return values.astype(np.float32), labels, ids


@pytest.fixture(scope="module")
def layout(clusters) -> np.ndarray:
    return umap_coordinates(clusters[0], seed=3)


def test_umap_is_seeded_and_keeps_groups_apart(clusters, layout):
    values, labels, _ = clusters
    assert layout.shape == (60, 2)
    np.testing.assert_allclose(umap_coordinates(values, seed=3), layout)
    centres = {name: layout[labels == name].mean(axis=0) for name in np.unique(labels)}
    spread = max(np.linalg.norm(layout[labels == n] - c, axis=1).mean() for n, c in centres.items())
    gaps = [np.linalg.norm(a - b) for a in centres.values() for b in centres.values() if a is not b]
    assert min(gaps) > 2 * spread


def test_umap_files_and_hover(clusters, layout, tmp_path):
    values, labels, ids = clusters
    written = embedding_umap(
        values, labels, tmp_path / "umap", cell_ids=ids, label="cell_type", coordinates=layout
    )
    assert [p.name for p in written] == ["umap.png", "umap.html"]
    assert written[0].read_bytes()[:4] == b"\x89PNG"
    page = page_text(written[1])
    # Every cell's hover text names the cell and its label.
    assert "cell07<br>cell_type: B cell" in page
    assert "cell45<br>cell_type: NK" in page


def test_umap_of_a_continuous_attribute(clusters, layout, tmp_path):
    values, _, _ = clusters
    depth = np.linspace(100.0, 900.0, 60)
    written = embedding_umap(
        values, depth, tmp_path / "depth", label="n_counts", coordinates=layout
    )
    assert "n_counts: 100.0" in page_text(written[1])


def test_label_means_and_heatmap(clusters, tmp_path):
    values, labels, _ = clusters
    means = label_means(values, labels)
    assert list(means.index) == ["B cell", "NK", "T cell"]
    np.testing.assert_allclose(means.loc["NK"].to_numpy(), values[40:].mean(axis=0), rtol=1e-6)
    written = embedding_heatmap(values, labels, tmp_path / "heatmap", label="cell_type")
    assert [p.name for p in written] == ["heatmap.png", "heatmap.html"]
    page = page_text(written[1])
    assert "cell_type: NK<br>dimension " in page
    assert "z-score" in page


def test_plot_embeddings_from_a_table(clusters, layout, tmp_path):
    values, labels, ids = clusters
    table = pd.DataFrame(values, columns=[str(i) for i in range(8)])
    table.insert(0, "cell_type", labels)
    table.insert(0, "cell_id", ids)
    table.to_parquet(tmp_path / "cells.parquet", index=False)
    written = plot_embeddings(tmp_path / "cells.parquet", label="cell_type", out=tmp_path / "fig")
    assert {p.name for files in written.values() for p in files} == {
        "umap.png",
        "umap.html",
        "heatmap.png",
        "heatmap.html",
    }
    with pytest.raises(InputError, match="no column 'louvain'.*cell_type"):
        plot_embeddings(tmp_path / "cells.parquet", label="louvain", out=tmp_path / "fig")
    with pytest.raises(InputError, match="no embedding columns"):
        plot_embeddings(table[["cell_id", "cell_type"]], label="cell_type", out=tmp_path)


def test_embed_draws_the_pictures_when_given_a_label(tmp_path):
    from genoformer.sc.embeddings import embed

    fixtures = shared_data("geneformer/fixtures")
    result = embed(
        fixtures / "models" / "v2tiny_random",
        fixtures / "geneformer_datasets" / "pbmc68k_V2.dataset",
        out=tmp_path / "run",
        label="bulk_labels",
        dictionaries=shared_data("geneformer"),
        max_cells=60,
        progress=False,
    )
    names = {p.name for key in ("umap", "heatmap") for p in result.outputs[key]}
    assert names == {"umap.png", "umap.html", "heatmap.png", "heatmap.html"}
    first = result.table("cells").iloc[0]
    page = page_text(tmp_path / "run" / "figures" / "umap.html")
    assert f"{first['cell_id']}<br>bulk_labels: {first['bulk_labels']}" in page
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["outputs"]["umap"] == ["figures/umap.png", "figures/umap.html"]
