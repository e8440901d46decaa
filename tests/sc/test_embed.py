"""Cell and gene embeddings: Geneformer's EmbExtractor outputs, layers, order, outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from genoformer.cli import main
from genoformer.engine.errors import InputError
from genoformer.sc.embeddings import (
    embed,
    embedding_matrix,
    extract_embeddings,
    hidden_state_index,
)
from genoformer.sc.models import build_model, load_model, model_config
from genoformer.sc.tokenizer import tokenize
from genoformer.sc.vocabulary import GeneVocabulary
from tests.conftest import shared_data

FIXTURES = "geneformer/fixtures"
#: The brief's tolerance; Geneformer's own runs differ by up to 8e-7 between batch sizes.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def dictionaries() -> Path:
    return shared_data("geneformer")


@pytest.fixture(scope="module")
def vocabularies(dictionaries: Path) -> dict[str, GeneVocabulary]:
    return {v: GeneVocabulary.geneformer(v, dictionaries) for v in ("V1", "V2")}


def fixture(relative: str) -> Path:
    return shared_data(f"{FIXTURES}/{relative}")


def geneformer_embeddings(name: str) -> tuple[np.ndarray, np.ndarray]:
    """An EmbExtractor CSV as (cell_index, embeddings), rows sorted by cell_index."""
    table = pd.read_csv(fixture(f"embeddings/{name}"), index_col=0)
    table = table.sort_values("cell_index")
    dims = [c for c in table.columns if c.isdigit()]
    return table["cell_index"].to_numpy(), table[dims].to_numpy(np.float32)


def compare(ours: np.ndarray, cell_index: np.ndarray, name: str) -> float:
    """Largest absolute difference from Geneformer's embeddings, cells matched on cell_index."""
    index, theirs = geneformer_embeddings(name)
    row = {c: i for i, c in enumerate(cell_index)}
    assert set(index) <= set(row), "cells missing from our embeddings"
    diff = float(np.abs(ours[[row[c] for c in index]] - theirs).max())
    print(f"{name}: {len(index)} cells, max abs diff {diff:.2e}")
    return diff


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, vocabularies) -> dict[str, Path]:
    """Small random V1 and V2 checkpoints on disk (2 layers, hidden 128)."""
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for name, vocab in vocabularies.items():
        model = build_model("tiny", vocab, seed=1)
        model.save_pretrained(root / name)
        paths[name] = root / name
    return paths


def small_corpus(version: str, n: int = 24) -> datasets.Dataset:
    corpus = datasets.load_from_disk(str(fixture(f"geneformer_datasets/pbmc68k_{version}.dataset")))
    return corpus.select(range(n))


# ---------------------------------------------------------------------------------------------
# Conformance with Geneformer's EmbExtractor


def test_v1_cell_embeddings_match_geneformer_at_both_layers(dictionaries):
    # One forward pass gives both layers (the pass runs the 6 layers once).
    result = extract_embeddings(
        fixture("models/gf6L_random"),
        fixture("geneformer_datasets/pbmc68k_V1.dataset"),
        emb_mode="cell",
        emb_layers=(-1, 0),
        dictionaries=dictionaries,
    )
    index = result.obs["cell_index"].to_numpy()
    assert len(index) == 700
    assert result.vocabulary.name == "gc30M"
    assert compare(result.cells[-1], index, "pbmc68k_V1_gf6L_cell_Lm1_bs100.csv") < TOLERANCE
    assert compare(result.cells[0], index, "pbmc68k_V1_gf6L_cell_L0_bs100.csv") < TOLERANCE
    assert compare(result.cells[-1], index, "pbmc68k_V1_gf6L_cell_Lm1_bs16.csv") < TOLERANCE
    # The two layers really differ (the comparison would not catch a swapped layer otherwise).
    assert np.abs(result.cells[-1] - result.cells[0]).max() > 0.1


@pytest.mark.parametrize("mode", ["cls", "cell"])
def test_v2_embeddings_match_geneformer(mode, dictionaries):
    result = extract_embeddings(
        fixture("models/v2tiny_random"),
        fixture("geneformer_datasets/pbmc68k_V2.dataset"),
        emb_mode=mode,
        dictionaries=dictionaries,
    )
    assert result.vocabulary.name == "gc104M"
    index = result.obs["cell_index"].to_numpy()
    assert compare(result.cells[-1], index, f"pbmc68k_V2_v2tiny_{mode}_Lm1_bs100.csv") < TOLERANCE


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_our_tokenization_gives_geneformer_embeddings(
    version, tmp_path, vocabularies, dictionaries
):
    corpus = tokenize(
        fixture("inputs/pbmc68k.h5ad"),
        out=tmp_path / "corpus",
        vocabulary=vocabularies[version],
        cell_attributes=["bulk_labels"],
        progress=False,
    ).run_dir
    model, reference, n = {
        "V1": ("gf6L_random", "pbmc68k_V1_gf6L_cell_Lm1_bs100.csv", 60),
        "V2": ("v2tiny_random", "pbmc68k_V2_v2tiny_cell_Lm1_bs100.csv", 100),
    }[version]
    # The manifest names the vocabulary.
    result = extract_embeddings(
        fixture(f"models/{model}"), corpus, max_cells=n, dictionaries=dictionaries
    )
    index = result.obs["cell_index"].to_numpy()
    np.testing.assert_array_equal(index, np.arange(len(index)))  # the input's order
    index_ref, theirs = geneformer_embeddings(reference)
    ours = result.cells[-1]
    diff = float(np.abs(ours - theirs[np.searchsorted(index_ref, index)]).max())
    print(f"our {version} corpus ({len(index)} cells) against {reference}: max abs diff {diff:.2e}")
    assert diff < TOLERANCE


# ---------------------------------------------------------------------------------------------
# Layers, order, batches, genes


def manual_hidden_states(model_dir: Path, corpus: datasets.Dataset) -> list[list[np.ndarray]]:
    """Each cell alone through the full masked-LM model: all hidden states, no padding."""
    model = load_model(model_dir)
    states = []
    with torch.inference_mode():
        for ids in corpus["input_ids"]:
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
            states.append([h[0].numpy() for h in out.hidden_states])
    return states


def test_layers_follow_geneformer_numbering(tiny_models, vocabularies):
    corpus = small_corpus("V2", 6)
    states = manual_hidden_states(tiny_models["V2"], corpus)
    result = extract_embeddings(
        tiny_models["V2"],
        corpus,
        emb_mode="cell",
        emb_layers=(-2, -1, 0),
        batch_size=4,
        vocabulary=vocabularies["V2"],
    )
    for layer in (-2, -1, 0):
        index = hidden_state_index(layer, 2)
        # Gene tokens only: <cls> first and <eos> last are left out.
        expected = np.stack([s[index][1:-1].mean(axis=0) for s in states])
        np.testing.assert_allclose(result.cells[layer], expected, atol=TOLERANCE)
    cls = extract_embeddings(
        tiny_models["V2"], corpus, emb_mode="cls", emb_layers=(0,), vocabulary=vocabularies["V2"]
    )
    np.testing.assert_allclose(cls.cells[0], np.stack([s[2][0] for s in states]), atol=TOLERANCE)
    assert hidden_state_index(-1, 6) == 5
    assert hidden_state_index(0, 6) == 6


def test_results_come_back_in_input_order_whatever_the_batches(tiny_models, vocabularies):
    corpus = small_corpus("V1", 16)
    shuffled = corpus.select(np.random.default_rng(0).permutation(16))
    by_one = extract_embeddings(
        tiny_models["V1"], corpus, batch_size=1, vocabulary=vocabularies["V1"]
    )
    by_seven = extract_embeddings(
        tiny_models["V1"], shuffled, batch_size=7, vocabulary=vocabularies["V1"]
    )
    np.testing.assert_array_equal(by_seven.obs["cell_id"], shuffled["cell_id"])
    order = {c: i for i, c in enumerate(corpus["cell_id"])}
    rows = [order[c] for c in shuffled["cell_id"]]
    np.testing.assert_allclose(by_seven.cells[-1], by_one.cells[-1][rows], atol=TOLERANCE)


def test_gene_embeddings_average_each_gene_over_its_cells(tiny_models, vocabularies):
    corpus = small_corpus("V2", 8)
    states = manual_hidden_states(tiny_models["V2"], corpus)
    result = extract_embeddings(
        tiny_models["V2"],
        corpus,
        emb_layers=(-1,),
        genes=True,
        batch_size=3,
        vocabulary=vocabularies["V2"],
    )
    sums: dict[int, list] = {}
    for ids, cell in zip(corpus["input_ids"], states, strict=True):
        for position, token in enumerate(ids[1:-1], start=1):
            sums.setdefault(token, []).append(cell[1][position])
    assert result.gene_tokens.tolist() == sorted(sums)
    assert result.gene_cells.tolist() == [len(sums[t]) for t in sorted(sums)]
    expected = np.stack([np.mean(sums[t], axis=0) for t in sorted(sums)])
    np.testing.assert_allclose(result.genes[-1], expected, atol=TOLERANCE)
    assert 2 not in sums and 3 not in sums  # no <cls>/<eos> among the genes


# ---------------------------------------------------------------------------------------------
# What embed writes


def test_embed_writes_tables_anndata_and_manifest(tiny_models, tmp_path, vocabularies):
    source = fixture("inputs/pbmc68k.h5ad")
    corpus = tokenize(
        source,
        out=tmp_path / "corpus",
        vocabulary=vocabularies["V2"],
        cell_attributes=["bulk_labels", "phase"],
        progress=False,
    ).run_dir
    result = embed(
        tiny_models["V2"],
        corpus,
        out=tmp_path / "run",
        genes=True,
        adata=source,
        vocabulary=vocabularies["V2"],
        max_cells=25,
        progress=False,
    )
    run = tmp_path / "run"
    cells = pd.read_parquet(run / "cell_embeddings.parquet")
    columns = ["cell_id", "cell_index", "bulk_labels", "phase"] + [str(i) for i in range(128)]
    assert list(cells.columns) == columns
    np.testing.assert_array_equal(cells["cell_index"], np.arange(25))
    csv = pd.read_csv(run / "cell_embeddings.csv")
    np.testing.assert_allclose(
        csv[columns[4:]].to_numpy(), cells[columns[4:]].to_numpy(), atol=1e-6
    )
    np.testing.assert_allclose(
        embedding_matrix(result.table("cells")), cells[columns[4:]].to_numpy()
    )

    written = ad.read_h5ad(run / "embeddings.h5ad")
    obsm = written.obsm["X_genoformer"]
    assert obsm.shape == (700, 128)
    np.testing.assert_allclose(obsm[:25], embedding_matrix(result.table("cells")))
    assert np.isnan(obsm[25:]).all()  # cells not embedded

    genes = pd.read_parquet(run / "gene_embeddings.parquet")
    assert list(genes.columns[:4]) == ["token_id", "gene_id", "symbol", "n_cells"]
    vocab = vocabularies["V2"]
    pairs = zip(genes["gene_id"], genes["token_id"], strict=True)
    assert all(vocab.token_ids[gene] == token for gene, token in pairs)
    varm = written.varm["X_genoformer"]
    row = {g: i for i, g in enumerate(written.var["ensembl_id"])}
    for _, gene in genes.head(5).iterrows():
        np.testing.assert_allclose(varm[row[gene["gene_id"]]], gene[columns[4:]].to_numpy(float))
    assert np.isfinite(varm).all(axis=1).sum() == len(genes)

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["results"]["embed"]["n_cells"] == 25
    assert manifest["results"]["embed"]["adata"] == {"cells": 25, "genes": len(genes)}
    assert manifest["outputs"]["cells"] == "cell_embeddings.parquet"


def test_embed_puts_embeddings_into_an_anndata_object(tiny_models, tmp_path, vocabularies):
    corpus = small_corpus("V1", 10)
    adata = ad.read_h5ad(fixture("inputs/pbmc68k.h5ad"))
    result = embed(
        tiny_models["V1"],
        corpus,
        out=tmp_path / "run",
        adata=adata,
        vocabulary=vocabularies["V1"],
        progress=False,
    )
    rows = result.table("cells")["cell_index"].to_numpy()
    np.testing.assert_allclose(
        adata.obsm["X_genoformer"][rows], embedding_matrix(result.table("cells"))
    )
    assert not (tmp_path / "run" / "embeddings.h5ad").exists()


def test_cli_embed(tiny_models, tmp_path, dictionaries, capsys):
    corpus = tmp_path / "corpus"
    small_corpus("V1", 12).save_to_disk(str(corpus))
    args = ["sc", "embed", str(tiny_models["V1"]), str(corpus), "--out", str(tmp_path / "run")]
    args += ["--dictionaries", str(dictionaries), "--batch-size", "5"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--emb-layer", "0"])
    assert exit_info.value.code in (0, None)
    assert "12 cell embeddings" in capsys.readouterr().out
    table = pd.read_parquet(tmp_path / "run" / "cell_embeddings.parquet")
    assert len(table) == 12
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--emb-layer", "3", "--overwrite"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--emb-layer 3 is out of range" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# Bad input


def test_vocabulary_size_mismatch(dictionaries):
    # A V1 model (25,426 tokens) on a V2 corpus (20,275).
    with pytest.raises(InputError, match=r"25,426 tokens but the gc104M dictionary has 20,275"):
        extract_embeddings(
            fixture("models/gf6L_random"), small_corpus("V2", 4), dictionaries=dictionaries
        )


def test_v2_corpus_with_v1_vocabulary_is_refused(dictionaries):
    with pytest.raises(InputError, match="tokenized for a V2 model"):
        extract_embeddings(
            fixture("models/gf6L_random"),
            small_corpus("V2", 4),
            vocabulary="V1",
            dictionaries=dictionaries,
        )


def test_v1_corpus_with_v2_vocabulary_is_refused(dictionaries):
    with pytest.raises(InputError, match="do not start with <cls>"):
        extract_embeddings(
            fixture("models/v2tiny_random"),
            small_corpus("V1", 4),
            vocabulary="V2",
            dictionaries=dictionaries,
        )


def test_corpus_tokenized_for_a_larger_input_size(tmp_path, dictionaries):
    corpus = tmp_path / "corpus"
    small_corpus("V1", 4).save_to_disk(str(corpus))
    manifest = {"results": {"tokenize": {"vocabulary": "gc30M", "input_size": 4096}}}
    (corpus / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="input size of 4,096 tokens but the model reads at most"):
        extract_embeddings(fixture("models/gf6L_random"), corpus, dictionaries=dictionaries)


def test_cells_longer_than_the_model_reads(tmp_path, vocabularies):
    model = build_model(model_config("tiny", vocabularies["V1"], max_position_embeddings=100))
    with pytest.raises(InputError, match=r"more tokens \(\d+\) than the model reads \(100"):
        extract_embeddings(model, small_corpus("V1", 4), vocabulary=vocabularies["V1"])


@pytest.mark.parametrize("layer", [-3, 1, 2.0])
def test_emb_layer_out_of_range(layer, tiny_models, vocabularies):
    with pytest.raises(InputError, match="emb_layer"):
        extract_embeddings(
            tiny_models["V1"],
            small_corpus("V1", 2),
            emb_layers=(layer,),
            vocabulary=vocabularies["V1"],
        )


def test_cls_mode_needs_cls_tokens(tiny_models, vocabularies):
    with pytest.raises(InputError, match="emb_mode='cls' needs a <cls> token"):
        extract_embeddings(
            tiny_models["V1"], small_corpus("V1", 2), emb_mode="cls", vocabulary=vocabularies["V1"]
        )


def test_corpus_without_input_ids(tmp_path, tiny_models, vocabularies):
    cells = datasets.Dataset.from_dict({"cell_id": ["a", "b"], "length": [3, 4]})
    with pytest.raises(InputError, match="has no 'input_ids' column"):
        extract_embeddings(tiny_models["V1"], cells, vocabulary=vocabularies["V1"])
    cells.save_to_disk(str(tmp_path / "corpus"))
    with pytest.raises(InputError, match="has no 'input_ids' column") as error:
        embed(tiny_models["V1"], tmp_path / "corpus", out=tmp_path / "run")
    assert str(tmp_path / "corpus") in str(error.value)


def test_unknown_label_and_wrong_anndata(tmp_path, tiny_models, vocabularies):
    corpus = small_corpus("V1", 5)
    with pytest.raises(InputError, match="no cell attribute 'cell_type'.*bulk_labels"):
        embed(tiny_models["V1"], corpus, out=tmp_path / "run", label="cell_type")
    other = ad.AnnData(np.zeros((700, 3), dtype=np.float32))
    with pytest.raises(InputError, match="do not match their row of the AnnData"):
        embed(
            tiny_models["V1"],
            corpus,
            out=tmp_path / "run2",
            adata=other,
            vocabulary=vocabularies["V1"],
            progress=False,
        )


def test_custom_vocabulary_named_in_the_manifest_must_be_passed(tmp_path):
    corpus = tmp_path / "corpus"
    small_corpus("V1", 3).save_to_disk(str(corpus))
    manifest = {"results": {"tokenize": {"vocabulary": "my_atlas", "input_size": 2048}}}
    (corpus / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="vocabulary 'my_atlas'"):
        extract_embeddings(fixture("models/gf6L_random"), corpus)
