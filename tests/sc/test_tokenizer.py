"""Rank value tokenizer: Geneformer's own tokens, tie order, invariants, errors, processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import anndata as ad
import datasets
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genoformer.engine.errors import InputError
from genoformer.sc.ranking import EncodeOptions, encode_chunk
from genoformer.sc.tokenizer import load_corpus, plan_genes, tokenize
from genoformer.sc.vocabulary import GeneVocabulary
from tests.conftest import shared_data

FIXTURES = "geneformer/fixtures"


# ---------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def geneformer_vocabularies() -> dict[str, GeneVocabulary]:
    directory = shared_data("geneformer")
    return {v: GeneVocabulary.geneformer(v, directory) for v in ("V1", "V2")}


def reference_tokens(dense: np.ndarray, plan_tokens: dict, n_counts: np.ndarray, **kw) -> list:
    """Geneformer's arithmetic in plain numpy, ties by token id: the oracle for the kernels.

    ``plan_tokens`` maps column -> (token, median); columns sharing a token are summed.
    """
    max_genes, cls_id, eos_id = kw["max_genes"], kw.get("cls_id"), kw.get("eos_id")
    tokens = sorted({t for t, _ in plan_tokens.values()})
    medians = {t: m for t, m in plan_tokens.values()}
    out = []
    for row, total in zip(dense, n_counts, strict=True):
        summed = {t: 0.0 for t in tokens}
        for col, (token, _) in plan_tokens.items():
            summed[token] += row[col]
        ids = np.array([t for t in tokens if summed[t] > 0], dtype=np.int64)
        if ids.size == 0:
            out.append(None)
            continue
        counts = np.array([summed[t] for t in ids], dtype=np.float32)
        scale = np.float32(1.0 / np.float64(total))
        x = (counts * scale).astype(np.float32) * np.float32(10_000)
        values = x.astype(np.float64) * (1.0 / np.array([medians[t] for t in ids]))
        order = np.lexsort((ids, -values))[:max_genes]
        cell = ids[order].tolist()
        if cls_id is not None:
            cell = [cls_id, *cell, eos_id]
        out.append((cell, counts[order], counts))
    return out


def reference_bins(ordered: np.ndarray, nonzero: np.ndarray, n_bins: int) -> list[int]:
    """The documented binning: numpy quantile edges, middle bin for counts on edges."""
    edges = np.quantile(nonzero.astype(np.float64), np.linspace(0, 1, n_bins - 1))
    above = np.searchsorted(edges, ordered, side="right")
    below = np.searchsorted(edges, ordered, side="left")
    return np.where(above == below, above, (below + 1 + above) // 2).tolist()


def small_vocabulary(medians: list[float], *, v2: bool, input_size: int) -> GeneVocabulary:
    genes = {f"ENSG{i:011d}": m for i, m in enumerate(medians)}
    special = ("pad", "mask", "cls", "eos") if v2 else ("pad", "mask")
    symbols = {f"GENE{i}": f"ENSG{i:011d}" for i in range(len(medians))}
    return GeneVocabulary.from_medians(
        genes, name="test", input_size=input_size, special=special, symbol_to_id=symbols
    )


def encode_dense(dense, gene_ids, vocabulary, n_counts=None, n_bins=0, keep=None):
    """encode_chunk on a dense matrix: list of (tokens, values) per cell, None when dropped."""
    matrix = sp.csr_matrix(dense)
    plan = plan_genes(gene_ids, vocabulary, min_gene_share=0.0)
    v2 = vocabulary.has_cls_eos
    options = EncodeOptions(
        max_genes=vocabulary.input_size - (2 if v2 else 0),
        cls_id=vocabulary.cls_id if v2 else -1,
        eos_id=vocabulary.eos_id if v2 else -1,
        n_bins=n_bins,
    )
    if n_counts is None:
        n_counts = dense.sum(axis=1).astype(np.float64)
    keep = np.ones(dense.shape[0], bool) if keep is None else keep
    encoded = encode_chunk(
        matrix.data, matrix.indices, matrix.indptr, keep, n_counts, plan, options
    )
    cells: list = [None] * dense.shape[0]
    for i, row in enumerate(encoded.rows):
        a, b = encoded.offsets[i], encoded.offsets[i + 1]
        values = None if encoded.values is None else encoded.values[a:b].tolist()
        cells[row] = (encoded.tokens[a:b].tolist(), values)
    return cells


def make_adata(dense, gene_ids, obs=None, var_names=None) -> ad.AnnData:
    n_cells = dense.shape[0]
    obs = obs if obs is not None else pd.DataFrame(index=[f"c{i}" for i in range(n_cells)])
    var = pd.DataFrame(
        {"ensembl_id": gene_ids},
        index=var_names if var_names is not None else [f"g{i}" for i in range(len(gene_ids))],
    )
    return ad.AnnData(X=sp.csr_matrix(dense.astype(np.float32)), obs=obs, var=var)


def corpus_tokens(corpus: datasets.Dataset) -> dict[int, list[int]]:
    return dict(zip(corpus["cell_index"], corpus["input_ids"], strict=True))


# ---------------------------------------------------------------------------------------------
# conformance with Geneformer's own tokenizer


def fixture_tokens(dataset: str, version: str) -> list[dict]:
    path = shared_data(f"{FIXTURES}/tokens/{dataset}.{version}.tokens.jsonl")
    with path.open() as handle:
        return [json.loads(line) for line in handle]


@pytest.mark.realdata
@pytest.mark.parametrize("dataset", ["pbmc68k", "celltypist559"])
@pytest.mark.parametrize("version", ["V1", "V2"])
def test_tokens_equal_geneformer(dataset, version, geneformer_vocabularies, tmp_path):
    source = shared_data(f"{FIXTURES}/inputs/{dataset}.h5ad")
    labels = ["bulk_labels"] if dataset == "pbmc68k" else None
    result = tokenize(
        source,
        out=tmp_path / "corpus",
        vocabulary=geneformer_vocabularies[version],
        cell_attributes=labels,
        progress=False,
    )
    corpus = load_corpus(result.run_dir)
    expected = fixture_tokens(dataset, version)
    assert result.metrics["n_cells"] == len(corpus) == len(expected)
    assert result.metrics["n_dropped"] == {"filter_pass": 0, "no_tokens": 0}
    rows = {row["cell_index"]: row for row in corpus}
    differing = [
        cell["cell_index"]
        for cell in expected
        if rows[cell["cell_index"]]["input_ids"] != cell["input_ids"]
        or rows[cell["cell_index"]]["length"] != cell["length"]
    ]
    assert differing == [], f"{len(differing)} cells differ from Geneformer's"
    assert [rows[c["cell_index"]]["cell_id"] for c in expected] == [c["cell_id"] for c in expected]
    if labels:
        assert [rows[c["cell_index"]]["bulk_labels"] for c in expected] == [
            c["bulk_labels"] for c in expected
        ]
    # the same features as Geneformer's own corpus of this vocabulary
    info = json.loads(
        shared_data(
            f"{FIXTURES}/geneformer_datasets/pbmc68k_{version}.dataset/dataset_info.json"
        ).read_text()
    )
    assert (
        corpus.features["input_ids"].feature.dtype
        == info["features"]["input_ids"]["feature"]["dtype"]
    )
    assert corpus.features["length"].dtype == "int64"
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["results"]["tokenize"]["cells_out"] == len(expected)
    assert manifest["results"]["tokenize"]["genes"]["share"] == pytest.approx(
        result.metrics["gene_share"]
    )


@pytest.mark.realdata
@pytest.mark.parametrize("version", ["V1", "V2"])
def test_geneformer_corpora_load(version):
    corpus = load_corpus(shared_data(f"{FIXTURES}/geneformer_datasets/pbmc68k_{version}.dataset"))
    expected = fixture_tokens("pbmc68k", version)
    tokens = corpus_tokens(corpus)
    assert {c["cell_index"]: c["input_ids"] for c in expected} == tokens
    assert corpus["length"] == [len(t) for t in corpus["input_ids"]]


# ---------------------------------------------------------------------------------------------
# ties, near ties and invariants


def test_exact_ties_are_ordered_by_token_id():
    # Genes 0..3 have the same median; with equal counts their values are exactly equal.
    vocabulary = small_vocabulary([2.0, 2.0, 2.0, 2.0, 0.5], v2=False, input_size=10)
    ids = np.array([f"ENSG{i:011d}" for i in range(5)])
    dense = np.array([[3, 3, 3, 3, 1], [1, 1, 1, 1, 0]], dtype=np.float32)
    token = {g: vocabulary.token_ids[g] for g in ids}
    for order in (np.arange(5), np.array([3, 1, 4, 0, 2]), np.arange(5)[::-1]):
        cells = encode_dense(dense[:, order], ids[order], vocabulary)
        # cell 0: gene 4 (3x smaller count, 4x smaller median) first; then the tie by token id
        assert cells[0][0] == [token[ids[4]]] + [token[ids[i]] for i in range(4)]
        assert cells[1][0] == [token[ids[i]] for i in range(4)]


def test_near_ties_are_ordered_by_value_not_token_id():
    # Medians one float64 step apart: values differ in the last bit, so the order is by value,
    # even against the token order (the 32-bit sort keys cannot see the difference).
    m = 1.5
    medians = [m, np.nextafter(m, 0), np.nextafter(np.nextafter(m, 0), 0), m]
    vocabulary = small_vocabulary(medians, v2=True, input_size=10)
    ids = np.array([f"ENSG{i:011d}" for i in range(4)])
    dense = np.array([[2, 2, 2, 2]], dtype=np.float32)
    tokens = encode_dense(dense, ids, vocabulary)[0][0]
    t = [vocabulary.token_ids[g] for g in ids]
    # smaller median -> larger value -> earlier; genes 0 and 3 tie exactly -> token order
    assert tokens == [vocabulary.cls_id, t[2], t[1], t[0], t[3], vocabulary.eos_id]


MEDIANS = [0.25, 0.5, 1.0, 1.0, 1.0, 1.5, 2.0, float(np.nextafter(2.0, 3.0)), 3.0, 7.0]


@st.composite
def cells_and_genes(draw):
    n_genes = draw(st.integers(1, 12))
    n_cells = draw(st.integers(1, 6))
    counts = draw(
        st.lists(
            st.lists(st.integers(0, 6), min_size=n_genes, max_size=n_genes),
            min_size=n_cells,
            max_size=n_cells,
        )
    )
    # vocabulary genes 0..9; input columns name them (repeats are summed) or unknown genes
    columns = draw(st.lists(st.integers(0, 11), min_size=n_genes, max_size=n_genes))
    columns[draw(st.integers(0, n_genes - 1))] = draw(st.integers(0, 9))  # one known gene
    medians = draw(st.lists(st.sampled_from(MEDIANS), min_size=10, max_size=10))
    input_size = draw(st.integers(3, 12))
    v2 = draw(st.booleans())
    return np.array(counts, dtype=np.float32), columns, medians, input_size, v2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cells_and_genes(), st.randoms(use_true_random=False))
def test_tokens_match_reference_and_invariants(case, rnd):
    dense, columns, medians, input_size, v2 = case
    vocabulary = small_vocabulary(medians, v2=v2, input_size=input_size)
    ids = np.array([f"ENSG{c:011d}" for c in columns])
    n_counts = dense.sum(axis=1) + 1.0  # as when genes outside the input count too
    cells = encode_dense(dense, ids, vocabulary, n_counts=n_counts)
    plan_tokens = {
        col: (vocabulary.token_ids[g], vocabulary.medians[g])
        for col, g in enumerate(ids)
        if g in vocabulary.medians
    }
    special = 2 if v2 else 0
    reference = reference_tokens(
        dense,
        plan_tokens,
        n_counts,
        max_genes=input_size - special,
        cls_id=vocabulary.cls_id if v2 else None,
        eos_id=vocabulary.eos_id if v2 else None,
    )
    for cell, expected in zip(cells, reference, strict=True):
        assert (cell is None) == (expected is None)
        if cell is None:
            continue
        tokens = cell[0]
        assert tokens == expected[0]
        assert len(tokens) <= input_size
        assert len(set(tokens)) == len(tokens)
        if v2:
            assert tokens[0] == vocabulary.cls_id and tokens[-1] == vocabulary.eos_id
            assert vocabulary.cls_id not in tokens[1:-1] and vocabulary.eos_id not in tokens[1:-1]
        else:
            assert not {vocabulary.cls_id, vocabulary.eos_id} & set(tokens)
    # the input's gene order does not matter
    order = list(range(len(columns)))
    rnd.shuffle(order)
    assert encode_dense(dense[:, order], ids[order], vocabulary, n_counts=n_counts) == cells


@settings(max_examples=100, deadline=None)
@given(cells_and_genes(), st.sampled_from([3, 5, 11, 51]))
def test_binned_values(case, n_bins):
    dense, columns, medians, input_size, v2 = case
    vocabulary = small_vocabulary(medians, v2=v2, input_size=input_size)
    ids = np.array([f"ENSG{c:011d}" for c in columns])
    ranked = encode_dense(dense, ids, vocabulary)
    binned = encode_dense(dense, ids, vocabulary, n_bins=n_bins)
    plan_tokens = {
        col: (vocabulary.token_ids[g], vocabulary.medians[g])
        for col, g in enumerate(ids)
        if g in vocabulary.medians
    }
    reference = reference_tokens(
        dense, plan_tokens, dense.sum(axis=1), max_genes=input_size - (2 if v2 else 0)
    )
    for rank_cell, bin_cell, expected in zip(ranked, binned, reference, strict=True):
        if rank_cell is None:
            assert bin_cell is None
            continue
        tokens, values = bin_cell
        assert tokens == rank_cell[0]  # the same input_ids as the rank encoding
        assert len(values) == len(tokens)
        genes = values[1:-1] if v2 else values
        if v2:
            assert values[0] == values[-1] == 0
        assert all(1 <= v <= n_bins - 1 for v in genes)
        _, ordered_counts, all_counts = expected
        assert genes == reference_bins(ordered_counts, all_counts, n_bins)
        # monotone in expression: more counts never get a lower bin, equal counts equal bins
        for a in range(len(genes)):
            for b in range(len(genes)):
                if ordered_counts[a] < ordered_counts[b]:
                    assert genes[a] <= genes[b]
                elif ordered_counts[a] == ordered_counts[b]:
                    assert genes[a] == genes[b]


# ---------------------------------------------------------------------------------------------
# genes, cells and attributes through tokenize


def test_duplicate_gene_ids_are_summed(tmp_path):
    vocabulary = small_vocabulary([1.0, 2.0, 4.0], v2=True, input_size=10)
    ids = np.array([f"ENSG{i:011d}" for i in range(3)])
    dense = np.array([[1, 5, 2], [3, 0, 1]], dtype=np.float32)
    # gene 1 split over two columns (and an Ensembl version suffix on one of them)
    split = np.array([[1, 2, 3, 2], [3, 0, 0, 1]], dtype=np.float32)
    split_ids = np.array([ids[0], ids[1], ids[1] + ".7", ids[2]])
    whole = tokenize(make_adata(dense, ids), out=tmp_path / "a", vocabulary=vocabulary)
    parts = tokenize(make_adata(split, split_ids), out=tmp_path / "b", vocabulary=vocabulary)
    assert corpus_tokens(load_corpus(whole.run_dir)) == corpus_tokens(load_corpus(parts.run_dir))


def test_gene_symbols_are_mapped(tmp_path):
    vocabulary = small_vocabulary([1.0, 2.0, 4.0, 0.5], v2=False, input_size=10)
    dense = np.array([[1, 5, 2, 0, 7], [3, 0, 1, 1, 2]], dtype=np.float32)
    ids = np.array([f"ENSG{i:011d}" for i in range(4)] + ["ENSG99999999999"])
    by_id = tokenize(make_adata(dense, ids), out=tmp_path / "id", vocabulary=vocabulary)
    symbols = [f"gene{i}" for i in range(4)] + ["NOTAGENE"]  # case-insensitive match
    adata = ad.AnnData(
        X=sp.csr_matrix(dense),
        obs=pd.DataFrame(index=["c0", "c1"]),
        var=pd.DataFrame(index=symbols),
    )
    by_symbol = tokenize(adata, out=tmp_path / "symbol", vocabulary=vocabulary)
    assert corpus_tokens(load_corpus(by_id.run_dir)) == corpus_tokens(
        load_corpus(by_symbol.run_dir)
    )
    assert by_symbol.metrics["gene_share"] == pytest.approx(4 / 5)
    manifest = json.loads((by_symbol.run_dir / "manifest.json").read_text())
    assert manifest["results"]["tokenize"]["genes"]["matched_by"] == "symbol"


def test_filter_pass_and_empty_cells_are_dropped_and_counted(tmp_path):
    vocabulary = small_vocabulary([1.0, 2.0], v2=True, input_size=10)
    ids = np.array(["ENSG00000000000", "ENSG00000000001", "ENSG00000000077"])
    dense = np.array(
        [[1, 2, 0], [4, 0, 1], [0, 0, 5], [2, 2, 2], [0, 0, 0]], dtype=np.float32
    )  # cell 2: counts only outside the vocabulary; cell 4: no counts at all
    obs = pd.DataFrame(
        {"filter_pass": [1, 0, 1, True, 1], "label": list("abcde")},
        index=[f"c{i}" for i in range(5)],
    )
    result = tokenize(
        make_adata(dense, ids, obs),
        out=tmp_path / "corpus",
        vocabulary=vocabulary,
        cell_attributes={"label": "cell_type"},
        min_gene_share=0.5,
    )
    corpus = load_corpus(result.run_dir)
    assert result.metrics["n_dropped"] == {"filter_pass": 1, "no_tokens": 2}
    assert corpus["cell_index"] == [0, 3]
    assert corpus["cell_id"] == ["c0", "c3"]
    assert corpus["cell_type"] == ["a", "d"]
    assert corpus["length"] == [4, 4]
    manifest = json.loads((result.run_dir / "manifest.json").read_text())["results"]["tokenize"]
    assert manifest["dropped"] == {"filter_pass": 1, "no_tokens": 2}
    assert manifest["cells_in"] == 5 and manifest["cells_out"] == 2


def test_n_counts_computed_over_all_genes_when_absent(tmp_path):
    vocabulary = small_vocabulary([1.0, 2.0, 3.0], v2=False, input_size=10)
    rng = np.random.default_rng(3)
    dense = rng.poisson(3, size=(20, 4)).astype(np.float32)
    ids = np.array([f"ENSG{i:011d}" for i in range(3)] + ["ENSG00000000099"])
    given_counts = pd.DataFrame({"n_counts": dense.sum(axis=1)}, index=[f"c{i}" for i in range(20)])
    computed = tokenize(
        make_adata(dense, ids), out=tmp_path / "a", vocabulary=vocabulary, min_gene_share=0.5
    )
    given = tokenize(
        make_adata(dense, ids, given_counts),
        out=tmp_path / "b",
        vocabulary=vocabulary,
        min_gene_share=0.5,
    )
    assert corpus_tokens(load_corpus(computed.run_dir)) == corpus_tokens(load_corpus(given.run_dir))
    reference = encode_dense(dense, ids, vocabulary, n_counts=dense.sum(axis=1))
    assert list(corpus_tokens(load_corpus(computed.run_dir)).values()) == [
        c[0] for c in reference if c
    ]


def test_rerun_replaces_a_corpus_and_failures_leave_nothing(tmp_path):
    vocabulary = small_vocabulary([1.0, 2.0], v2=True, input_size=10)
    ids = np.array(["ENSG00000000000", "ENSG00000000001"])
    dense = np.array([[1, 2], [3, 1], [2, 2]], dtype=np.float32)
    out = tmp_path / "corpus"
    tokenize(make_adata(dense, ids), out=out, vocabulary=vocabulary)
    with pytest.raises(InputError, match="holds a corpus already") as refused:
        tokenize(make_adata(dense[:2], ids), out=out, vocabulary=vocabulary)
    assert "overwrite=True" in refused.value.fix and len(load_corpus(out)) == 3
    tokenize(make_adata(dense[:2], ids), out=out, vocabulary=vocabulary, overwrite=True)
    assert len(load_corpus(out)) == 2
    # the third cell's counts are not integers: found in the second chunk, after the first
    # chunk was written; nothing of this run may remain
    bad = dense.copy()
    bad[2, 0] = 0.5
    with pytest.raises(InputError, match="raw counts"):
        tokenize(make_adata(bad, ids), out=tmp_path / "new", vocabulary=vocabulary, chunk_size=1)
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


# ---------------------------------------------------------------------------------------------
# errors


@pytest.fixture(scope="module")
def vocab3() -> GeneVocabulary:
    return small_vocabulary([1.0, 2.0, 3.0], v2=True, input_size=10)


IDS3 = np.array([f"ENSG{i:011d}" for i in range(3)])


def test_log_normalised_counts_are_refused(tmp_path, vocab3):
    dense = np.log1p(np.array([[1, 2, 3], [0, 4, 1]], dtype=np.float32))
    with pytest.raises(InputError, match="raw counts") as error:
        tokenize(make_adata(dense, IDS3), out=tmp_path / "c", vocabulary=vocab3)
    assert "layer" in str(error.value)


def test_no_ensembl_ids_and_no_known_symbols(tmp_path, vocab3):
    adata = ad.AnnData(
        X=sp.csr_matrix(np.ones((2, 3), np.float32)),
        obs=pd.DataFrame(index=["a", "b"]),
        var=pd.DataFrame(index=["foo", "bar", "baz"]),
    )
    with pytest.raises(InputError, match="no Ensembl gene ids") as error:
        tokenize(adata, out=tmp_path / "c", vocabulary=vocab3)
    assert "'foo'" in str(error.value) and "ensembl_id" in str(error.value)


def test_too_few_genes_in_the_vocabulary(tmp_path, vocab3):
    ids = np.array([IDS3[0]] + [f"ENSMUSG{i:011d}" for i in range(9)])
    dense = np.ones((2, 10), np.float32)
    with pytest.raises(InputError, match=r"only 1 of 10 gene ids \(10.0%\)") as error:
        tokenize(make_adata(dense, ids), out=tmp_path / "c", vocabulary=vocab3)
    assert "min_gene_share" in str(error.value)
    result = tokenize(
        make_adata(dense, ids), out=tmp_path / "c", vocabulary=vocab3, min_gene_share=0.1
    )
    assert result.metrics["gene_share"] == pytest.approx(0.1)


def test_bad_n_counts(tmp_path, vocab3):
    obs = pd.DataFrame({"n_counts": [6.0, np.nan]}, index=["a", "b"])
    dense = np.array([[1, 2, 3], [0, 4, 1]], dtype=np.float32)
    with pytest.raises(InputError, match="n_counts is nan") as error:
        tokenize(make_adata(dense, IDS3, obs), out=tmp_path / "c", vocabulary=vocab3)
    assert "cell 'b' (row 1)" in str(error.value)


def test_unknown_or_clashing_cell_attribute(tmp_path, vocab3):
    obs = pd.DataFrame({"cell_type": ["x", "y"]}, index=["a", "b"])
    adata = make_adata(np.array([[1, 2, 3], [0, 4, 1]], np.float32), IDS3, obs)
    with pytest.raises(InputError, match=r"'celltype' does not exist.*'cell_type'"):
        tokenize(adata, out=tmp_path / "c", vocabulary=vocab3, cell_attributes=["celltype"])
    with pytest.raises(InputError, match="already has"):
        tokenize(
            adata, out=tmp_path / "c", vocabulary=vocab3, cell_attributes={"cell_type": "length"}
        )


def test_out_that_is_not_a_corpus_is_left_alone(tmp_path, vocab3):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    adata = make_adata(np.array([[1, 2, 3]], np.float32), IDS3)
    with pytest.raises(InputError, match="not a corpus"):
        tokenize(adata, out=tmp_path / "c", vocabulary=vocab3)
    assert (tmp_path / "c" / "notes.txt").read_text() == "mine"


def test_load_corpus_errors(tmp_path):
    with pytest.raises(InputError, match="no such corpus"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a Hugging Face datasets corpus"):
        load_corpus(tmp_path / "empty")
    datasets.Dataset.from_dict({"x": [1, 2]}).save_to_disk(str(tmp_path / "other"))
    with pytest.raises(InputError, match="no 'input_ids' column"):
        load_corpus(tmp_path / "other")


# ---------------------------------------------------------------------------------------------
# several processes


def assert_same_corpus(a: Path, b: Path) -> None:
    left, right = load_corpus(a), load_corpus(b)
    assert left.features == right.features
    assert left.to_dict() == right.to_dict()


@pytest.fixture(scope="module")
def pbmc_filtered() -> ad.AnnData:
    adata = ad.read_h5ad(shared_data(f"{FIXTURES}/inputs/pbmc68k.h5ad"))
    adata.obs["filter_pass"] = (np.arange(adata.n_obs) % 7 != 0).astype(int)
    return adata


@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["h5ad", "anndata", "zarr"])
def test_processes_give_the_same_corpus(kind, pbmc_filtered, geneformer_vocabularies, tmp_path):
    # .h5ad: workers read their cells from the CSR arrays; AnnData: this process sends them;
    # .zarr: workers open it with the readers. Binned values, filter_pass, attributes too.
    if kind == "h5ad":
        source = tmp_path / "cells.h5ad"
        pbmc_filtered.write_h5ad(source)
    elif kind == "zarr":
        source = tmp_path / "cells.zarr"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pbmc_filtered.write_zarr(source)
    else:
        source = pbmc_filtered
    options = dict(
        vocabulary=geneformer_vocabularies["V2"],
        chunk_size=64,
        encoding="binned",
        cell_attributes=["louvain"],
        progress=False,
    )
    one = tokenize(source, out=tmp_path / "one", **options)
    two = tokenize(source, out=tmp_path / "two", processes=2, **options)
    assert_same_corpus(one.run_dir, two.run_dir)
    assert (
        one.metrics["n_dropped"] == two.metrics["n_dropped"] == {"filter_pass": 100, "no_tokens": 0}
    )
    expected = {c["cell_index"]: c["input_ids"] for c in fixture_tokens("pbmc68k", "V2")}
    tokens = corpus_tokens(load_corpus(two.run_dir))
    assert tokens == {i: ids for i, ids in expected.items() if i % 7 != 0}


@pytest.mark.realdata
def test_processes_on_a_large_file(geneformer_vocabularies, tmp_path):
    source = shared_data(f"{FIXTURES}/inputs/celltypist559.h5ad")
    vocabulary = geneformer_vocabularies["V2"]
    one = tokenize(source, out=tmp_path / "one", vocabulary=vocabulary, chunk_size=50)
    three = tokenize(
        source, out=tmp_path / "three", vocabulary=vocabulary, chunk_size=50, processes=3
    )
    assert_same_corpus(one.run_dir, three.run_dir)


def test_counts_that_are_not_integers_found_by_a_worker(tmp_path, vocab3):
    dense = np.tile(np.array([[1, 2, 3]], np.float32), (300, 1))
    dense[250, 1] = 2.5
    source = tmp_path / "cells.h5ad"
    make_adata(dense, IDS3).write_h5ad(source)
    with pytest.raises(InputError, match=r"raw counts.*") as error:
        tokenize(source, out=tmp_path / "c", vocabulary=vocab3, chunk_size=16, processes=2)
    assert "cell 'c250' (row 250)" in str(error.value)
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------------------
# the corpus on disk


def test_corpus_shards_and_files_as_save_to_disk_writes_them(tmp_path, vocab3, monkeypatch):
    import genoformer.sc.corpus as corpus_module

    rng = np.random.default_rng(0)
    dense = rng.poisson(2, size=(500, 3)).astype(np.float32) + 1
    obs = pd.DataFrame({"group": list("ab") * 250}, index=[f"c{i}" for i in range(500)])
    adata = make_adata(dense, IDS3, obs)
    whole = tokenize(adata, out=tmp_path / "whole", vocabulary=vocab3, cell_attributes=["group"])
    monkeypatch.setattr(corpus_module, "SHARD_BYTES", 2_000)
    sharded = tokenize(
        adata, out=tmp_path / "sharded", vocabulary=vocab3, cell_attributes=["group"], chunk_size=32
    )
    shards = sorted(p.name for p in sharded.run_dir.glob("data-*.arrow"))
    assert len(shards) > 3 and shards[-1].endswith(f"-of-{len(shards):05d}.arrow")
    assert_same_corpus(whole.run_dir, sharded.run_dir)
    # the same dataset_info.json and state.json datasets' save_to_disk writes
    reference = tmp_path / "reference"
    load_corpus(whole.run_dir).save_to_disk(str(reference))
    for name in ("dataset_info.json", "state.json"):
        ours, theirs = (json.loads((d / name).read_text()) for d in (whole.run_dir, reference))
        if name == "state.json":
            ours.pop("_fingerprint"), theirs.pop("_fingerprint")
        assert ours == theirs


# ---------------------------------------------------------------------------------------------
# bounded memory on a file larger than the cap

MEMORY_CAP_MIB = 100

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    from pathlib import Path

    import numpy as np

    from genoformer.sc.vocabulary import GeneVocabulary
    from genoformer.sc.tokenizer import tokenize

    def anon_mib():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024

    source, warm, out, directory = sys.argv[1:5]
    vocabulary = GeneVocabulary.geneformer("V2", directory)
    # load the compiled kernels and the writing code once, then measure
    tokenize(warm, out=out + "_warm", vocabulary=vocabulary, backed=True, progress=False)
    base = anon_mib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon_mib())
            time.sleep(0.002)

    thread = threading.Thread(target=sample)
    thread.start()
    result = tokenize(
        source, out=out, vocabulary=vocabulary, backed=True, chunk_size=256, progress=False
    )
    done.set()
    thread.join()
    print(json.dumps({"growth_mib": peak[0] - base, "cells": result.metrics["n_cells"]}))
    """
)


@pytest.mark.realdata
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_backed_run_stays_under_memory_cap(tmp_path):
    fixture = shared_data(f"{FIXTURES}/inputs/celltypist559.h5ad")
    small = ad.read_h5ad(fixture)
    copies = 20  # 11,180 cells, about 160 MiB of counts
    big = ad.AnnData(
        X=sp.vstack([small.X] * copies, format="csr"),
        obs=pd.DataFrame(
            {"n_counts": np.tile(small.obs["n_counts"].to_numpy(), copies)},
            index=[f"cell{i}" for i in range(small.n_obs * copies)],
        ),
        var=small.var,
    )
    source = tmp_path / "big.h5ad"
    big.write_h5ad(source)
    counts_mib = (big.X.data.nbytes + big.X.indices.nbytes) / 2**20
    del big
    assert source.stat().st_size / 2**20 > 1.5 * MEMORY_CAP_MIB
    script = tmp_path / "measure.py"
    script.write_text(_MEMORY_SCRIPT)
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(source),
            str(fixture),
            str(tmp_path / "out"),
            str(shared_data("geneformer")),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["cells"] == small.n_obs * copies
    # anonymous memory: what the run needs; the Arrow file datasets maps while saving is
    # page cache, not counted
    assert measured["growth_mib"] < MEMORY_CAP_MIB < counts_mib


def test_cli_refuses_to_tokenize_over_a_corpus_without_overwrite(tmp_path, capsys):
    from genoformer.cli import main

    source = shared_data(f"{FIXTURES}/inputs/pbmc68k.h5ad")
    args = ["sc", "tokenize", str(source), "--out", str(tmp_path / "corpus"), "--vocabulary", "V1"]
    for extra, code in (([], 0), ([], 2), (["--overwrite"], 0)):
        with pytest.raises(SystemExit) as done:
            main([*args, *extra])
        assert (done.value.code or 0) == code
    err = capsys.readouterr().err
    assert f"{tmp_path / 'corpus'}: holds a corpus already" in err and "--overwrite" in err
    assert len(load_corpus(tmp_path / "corpus")) == 700
