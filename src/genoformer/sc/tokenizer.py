"""Rank value encoding of single-cell transcriptomes, exactly as Geneformer does it, fast.

A cell becomes a "sentence" of gene tokens: each gene's count is divided by the cell's total
count, multiplied by 10,000 and divided by the gene's non-zero median over the pretraining
corpus; genes with no counts are dropped and the rest sorted by that value, descending, then
truncated to the model's input size (V1: 2,048 genes; V2: ``<cls>``, 4,094 genes, ``<eos>``).

Exactness. Geneformer's gene order is reproduced bit for bit, which needs its arithmetic:
``float64(float32(float32(count) * float32(1 / n_counts)) * float32(10000)) * float64(1 /
median)``. Gene ids are mapped through the vocabulary's ``id_mapping`` (Geneformer's Ensembl
mapping dictionary) and the counts of ids that map to one gene are summed.

Ties. Two genes of a cell with exactly the same value are ordered by token id, ascending.
Geneformer's order there is whatever numpy's unstable argsort gives; ours is stable and the
same on every machine and for every order of the input's genes.

Speed. Each chunk of cells is encoded by numba loops over the CSR arrays, and sorted with one
call of numpy's vectorised sort on 64-bit keys that pack (cell, value, position): the cell in
the top bits, then the leading bits of the value (descending), then the gene's position. Keys
that agree on cell and value bits (near or exact ties) are put in exact order afterwards, so
the truncated value bits never decide the order. The corpus is written as Arrow record batches
built from flat arrays, never from Python lists.

Binned encoding (``encoding="binned"``, scGPT's value binning) keeps the same input_ids and
adds a ``values`` column: per cell, the non-zero counts of the vocabulary genes go into
``n_bins - 1`` quantile bins of that cell's own non-zero counts (bins ``1 .. n_bins - 1``; 0 is
kept for ``<cls>``/``<eos>``, as for zero expression in scGPT). Edges are numpy's linear
quantiles at ``linspace(0, 1, n_bins - 1)``. A count that lies strictly between two edges gets
``np.digitize``'s bin; a count equal to one or more edges could fall in any of several bins,
which scGPT draws at random: here it gets the middle one (rounded down), so equal counts get
equal bins and bins never decrease as counts grow. Counts are binned as they are: scGPT bins
normalised, log1p-transformed expression, and per-cell scaling and log1p are increasing within
a cell, so they give the same bins (up to rounding where an edge is interpolated).
"""

from __future__ import annotations

import math
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numba
import numpy as np

from genoformer.engine.errors import InputError
from genoformer.sc.dictionaries import GeneVocabulary
from genoformer.sc.readers import CellMatrix, open_cells

if TYPE_CHECKING:  # datasets and pyarrow are imported when needed: workers do not need them
    import datasets
    import pyarrow as pa

__all__ = ["TokenizeResult", "encode_chunk", "load_corpus", "plan_genes", "tokenize"]

#: The share of the input's genes that must be in the vocabulary (else the ids are wrong).
MIN_GENE_SHARE = 0.2
#: Cells per chunk: large enough that numpy's sort and Arrow's batches amortise their calls.
CHUNK_SIZE = 1024
# Geneformer's normalisation target: counts per 10,000.
_TARGET_SUM = np.float32(10_000)
_RESERVED = ("input_ids", "values", "length", "cell_id", "cell_index")


@dataclass(frozen=True)
class TokenizeResult:
    """What :func:`tokenize` wrote.

    Attributes
    ----------
    out
        The corpus directory (Hugging Face ``datasets``, with our ``manifest.json``).
    n_cells
        Cells in the corpus.
    n_dropped
        Cells left out, by reason: ``filter_pass`` (the column is not 1) and ``no_tokens``
        (no counts on any vocabulary gene).
    gene_share
        Share of the input's genes found in the vocabulary.
    seconds
        Wall time of the whole run.
    """

    out: Path
    n_cells: int
    n_dropped: dict[str, int]
    gene_share: float
    seconds: float


# ---------------------------------------------------------------------------------------------
# Genes: from the input's columns to the vocabulary


@dataclass(frozen=True)
class GenePlan:
    """How the input's gene columns map to vocabulary genes.

    Attributes
    ----------
    column_gene
        Per input column, the index of its gene in ``tokens`` / ``inv_median``, or -1 when
        the gene is not in the vocabulary. Several columns may share a gene (summed).
    tokens
        Token id of each gene the input has, ascending.
    inv_median
        ``1 / median`` of each gene, in float64 (Geneformer multiplies by it).
    n_input, n_matched
        Input columns, and those in the vocabulary.
    by
        ``"ensembl"`` when the input's ids were Ensembl ids, ``"symbol"`` when gene symbols
        were mapped through the vocabulary's symbol dictionary.
    """

    column_gene: np.ndarray
    tokens: np.ndarray
    inv_median: np.ndarray
    n_input: int
    n_matched: int
    by: str

    @property
    def share(self) -> float:
        return self.n_matched / self.n_input if self.n_input else 0.0


def _ensembl_key(gene_id: str, mapping: Mapping[str, str]) -> str:
    key = gene_id.strip().upper()
    if key in mapping or "." not in key:
        return key
    # Versioned ids (ENSG00000141510.16) name the same gene as the unversioned one.
    return key.split(".", 1)[0]


def plan_genes(
    gene_ids: Sequence[str],
    vocabulary: GeneVocabulary,
    *,
    gene_symbols: Sequence[str] | None = None,
    min_gene_share: float = MIN_GENE_SHARE,
    source: str | None = None,
) -> GenePlan:
    """Map the input's genes to vocabulary genes, as Geneformer does.

    Ensembl ids are upper-cased and mapped through ``vocabulary.id_mapping`` (identity when
    it is empty); genes that do not end on a vocabulary gene with a median are dropped. When
    the ids are not Ensembl ids, gene symbols (``gene_symbols``, else the ids themselves) are
    mapped through ``vocabulary.symbol_to_id`` first.

    Raises
    ------
    InputError
        No gene matches, or fewer than ``min_gene_share`` of them.
    """
    from genoformer.sc.readers import _looks_ensembl

    ids = np.asarray(gene_ids, dtype=str)
    genes = vocabulary.gene_ids()
    index = {gene: i for i, gene in enumerate(genes)}  # gene_ids() is in token id order
    mapping = vocabulary.id_mapping
    by = "ensembl" if _looks_ensembl(ids) else "symbol"
    names = ids if by == "ensembl" or gene_symbols is None else np.asarray(gene_symbols, str)

    def target(name: str) -> str | None:
        if by == "symbol":
            ensembl = vocabulary.symbol_to_id.get(name) or vocabulary.symbol_to_id.get(
                name.strip().upper()
            )
            if ensembl is None:
                # V2's mapping dictionary also maps symbols to Ensembl ids.
                return mapping.get(name.strip().upper())
            name = ensembl
        key = _ensembl_key(name, mapping)
        return mapping.get(key) if mapping else key

    column_gene = np.full(len(names), -1, dtype=np.int32)
    for col, name in enumerate(names):
        gene = target(str(name)) if name else None
        if gene is not None:
            column_gene[col] = index.get(gene, -1)
    matched = column_gene >= 0
    n_matched = int(matched.sum())
    n_input = len(names)
    share = n_matched / n_input if n_input else 0.0
    if n_matched == 0:
        if by == "symbol":
            first = ", ".join(repr(str(n)) for n in names[:3])
            raise InputError(
                f"no Ensembl gene ids, and none of the {n_input:,} gene names ({first}, ...) "
                f"is a symbol in the {vocabulary.name} dictionaries",
                file=source,
                where="gene ids",
                fix="add Ensembl ids as var['ensembl_id'] (or name their column with "
                "gene_id_column / --gene-id-column), or pass human gene symbols",
            )
        first = ", ".join(repr(str(n)) for n in ids[:3])
        raise InputError(
            f"none of the {n_input:,} gene ids ({first}, ...) is in the {vocabulary.name} "
            "vocabulary",
            file=source,
            where="gene ids",
            fix="check that the genes are human Ensembl ids and that the dictionaries match "
            "the model (V1 or V2)",
        )
    if share < min_gene_share:
        what = "gene symbols" if by == "symbol" else "gene ids"
        raise InputError(
            f"only {n_matched:,} of {n_input:,} {what} ({share:.1%}) are in the "
            f"{vocabulary.name} vocabulary, fewer than min_gene_share={min_gene_share:g}",
            file=source,
            where="gene ids",
            fix="check the species, that gene_id_column names the Ensembl ids, and that the "
            "dictionaries match the model; or lower min_gene_share (--min-gene-share)",
        )
    # Only the genes the input has, kept in token id order so ties break by token id.
    used = np.unique(column_gene[matched])
    compact = np.full(len(genes), -1, dtype=np.int32)
    compact[used] = np.arange(len(used), dtype=np.int32)
    column_gene[matched] = compact[column_gene[matched]]
    used_genes = [genes[i] for i in used]
    tokens = np.array([vocabulary.token_ids[g] for g in used_genes], dtype=np.int32)
    inv_median = 1.0 / np.array([vocabulary.medians[g] for g in used_genes], dtype=np.float64)
    return GenePlan(column_gene, tokens, inv_median, n_input, n_matched, by)


# ---------------------------------------------------------------------------------------------
# The numeric core: one chunk of cells


@dataclass(frozen=True)
class EncodeOptions:
    """What :func:`encode_chunk` needs besides the counts."""

    max_genes: int  # genes kept per cell (input size less <cls> and <eos>)
    cls_id: int = -1  # -1: none
    eos_id: int = -1
    n_bins: int = 0  # 0: rank encoding only; else the scGPT bins of each gene


@dataclass
class EncodedChunk:
    """One chunk of encoded cells, as flat arrays.

    ``tokens[offsets[i]:offsets[i + 1]]`` are the input_ids of cell ``rows[i]`` (row within the
    chunk); ``values`` the same for the bins (binned encoding only).
    """

    tokens: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray
    values: np.ndarray | None
    n_empty: int


@numba.njit(cache=True, nogil=True)
def _normalise(data, indices, indptr, keep, scale, column_gene, inv_median, row_bits, pos_bits):  # noqa: ANN001, ANN202
    """Per kept cell: sum counts per gene, compute rank values, and pack the sort keys."""
    n_rows = indptr.size - 1
    capacity = indptr[n_rows] - indptr[0]
    gene = np.empty(capacity, np.int32)
    count = np.empty(capacity, np.float64)
    value = np.empty(capacity, np.float64)
    row_start = np.zeros(n_rows + 1, np.int64)
    acc = np.zeros(inv_median.size, np.float64)
    n = 0
    for r in range(n_rows):
        row_start[r] = n
        if not keep[r]:
            continue
        first = n
        for j in range(indptr[r], indptr[r + 1]):
            g = column_gene[indices[j]]
            if g < 0:
                continue
            c = np.float64(data[j])
            if c == 0.0:
                continue
            if acc[g] == 0.0:
                gene[n] = g
                n += 1
            acc[g] += c
        s = scale[r]
        m = first
        for k in range(first, n):
            g = gene[k]
            c = acc[g]
            acc[g] = 0.0
            if c <= 0.0:
                continue
            # Geneformer's arithmetic: float32 normalisation, float64 median scaling.
            x = np.float32(np.float32(c) * s) * np.float32(10000.0)
            gene[m] = g
            count[m] = c
            value[m] = np.float64(x) * inv_median[g]
            m += 1
        n = m
    row_start[n_rows] = n
    value = value[:n]
    keys = np.empty(n, np.uint64)
    bits = value.view(np.uint64)
    value_bits = 64 - row_bits - pos_bits
    drop = np.uint64(63 - value_bits)
    top = np.uint64(0x7FFFFFFFFFFFFFFF)
    for r in range(n_rows):
        high = np.uint64(r) << np.uint64(value_bits + pos_bits)
        for k in range(row_start[r], row_start[r + 1]):
            # Positive floats order as their bit patterns: top - bits orders them descending.
            prefix = (top - bits[k]) >> drop
            keys[k] = high | (prefix << np.uint64(pos_bits)) | np.uint64(k - row_start[r])
    return gene[:n], count[:n], value, keys, row_start


@numba.njit(cache=True, nogil=True)
def _quantile_edges(sorted_counts, n_edges):  # noqa: ANN001, ANN202
    """numpy's linear quantiles of ascending values at linspace(0, 1, n_edges)."""
    n = sorted_counts.size
    edges = np.empty(n_edges, np.float64)
    step = 1.0 / (n_edges - 1) if n_edges > 1 else 0.0
    for i in range(n_edges):
        q = 1.0 if i == n_edges - 1 else i * step
        h = (n - 1) * q
        lo = min(int(math.floor(h)), n - 1)
        hi = min(lo + 1, n - 1)
        t = h - lo
        a = sorted_counts[lo]
        b = sorted_counts[hi]
        d = b - a
        edges[i] = b - d * (1.0 - t) if t >= 0.5 else a + d * t
    return edges


@numba.njit(cache=True, nogil=True)
def _emit(keys, row_start, gene, count, value, tokens, pos_bits, max_genes, cls_id, eos_id, n_bins):  # noqa: ANN001, ANN202
    """Put near ties in exact order, truncate, add special tokens and (optionally) bins."""
    n = keys.size
    n_rows = row_start.size - 1
    pos_mask = (np.uint64(1) << np.uint64(pos_bits)) - np.uint64(1)
    order = np.empty(n, np.int64)
    # Keys are sorted by row first, so sorted position i belongs to the row whose slice holds i.
    r = 0
    for i in range(n):
        while row_start[r + 1] <= i:
            r += 1
        order[i] = row_start[r] + np.int64(keys[i] & pos_mask)
    # Entries whose keys agree above the position bits tie on the leading value bits:
    # order them exactly, by value descending then token id ascending (insertion sort: rare
    # and short runs).
    i = 0
    while i < n:
        j = i + 1
        head = keys[i] >> np.uint64(pos_bits)
        while j < n and (keys[j] >> np.uint64(pos_bits)) == head:
            j += 1
        if j - i > 1:
            for a in range(i + 1, j):
                item = order[a]
                v = value[item]
                t = tokens[gene[item]]
                b = a - 1
                while b >= i:
                    other = order[b]
                    vo = value[other]
                    if vo > v or (vo == v and tokens[gene[other]] < t):
                        break
                    order[b + 1] = other
                    b -= 1
                order[b + 1] = item
        i = j
    special = (1 if cls_id >= 0 else 0) + (1 if eos_id >= 0 else 0)
    out_tokens = np.empty(n + special * n_rows, np.int32)
    out_values = np.zeros(n + special * n_rows if n_bins > 0 else 0, np.int32)
    offsets = np.zeros(n_rows + 1, np.int64)
    rows = np.empty(n_rows, np.int64)
    n_out = 0
    w = 0
    for r in range(n_rows):
        a = row_start[r]
        size = row_start[r + 1] - a
        if size == 0:
            continue
        take = min(size, max_genes)
        if cls_id >= 0:
            out_tokens[w] = cls_id
            w += 1
        start = w
        for k in range(take):
            out_tokens[w] = tokens[gene[order[a + k]]]
            w += 1
        if n_bins > 0:
            edges = _quantile_edges(np.sort(count[a : a + size]), n_bins - 1)
            for k in range(take):
                c = count[order[a + k]]
                above = np.searchsorted(edges, c, side="right")  # edges <= c
                below = np.searchsorted(edges, c, side="left")  # edges < c
                out_values[start + k] = above if above == below else (below + 1 + above) // 2
        if eos_id >= 0:
            out_tokens[w] = eos_id
            w += 1
        rows[n_out] = r
        n_out += 1
        offsets[n_out] = w
    return out_tokens[:w], out_values[: w if n_bins > 0 else 0], offsets[: n_out + 1], rows[:n_out]


def _bits(n: int) -> int:
    return max(1, int(n - 1).bit_length())


def encode_chunk(
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
    keep: np.ndarray,
    n_counts: np.ndarray,
    plan: GenePlan,
    options: EncodeOptions,
) -> EncodedChunk:
    """Encode one chunk of cells given as CSR arrays of raw counts over the input's genes.

    Parameters
    ----------
    data, indices, indptr
        The chunk's CSR arrays (cells x input genes).
    keep
        Per cell: whether to encode it (``filter_pass``).
    n_counts
        Per cell: its total count (Geneformer divides by it).
    plan
        From :func:`plan_genes`.
    options
        Truncation, special tokens and bins.
    """
    n_rows = len(indptr) - 1
    # Round 1/n_counts to float32 as Geneformer's float32 matrix division does.
    with np.errstate(divide="ignore"):
        scale = (1.0 / np.asarray(n_counts, dtype=np.float64)).astype(np.float32)
    row_bits = _bits(n_rows)
    pos_bits = _bits(max(len(plan.tokens), 2))
    gene, count, value, keys, row_start = _normalise(
        data,
        indices,
        np.asarray(indptr, dtype=np.int64),
        np.asarray(keep, dtype=np.bool_),
        scale,
        plan.column_gene,
        plan.inv_median,
        row_bits,
        pos_bits,
    )
    keys.sort()  # numpy's vectorised sort: the hot spot, far faster than a per-cell argsort
    tokens, values, offsets, rows = _emit(
        keys,
        row_start,
        gene,
        count,
        value,
        plan.tokens,
        pos_bits,
        options.max_genes,
        options.cls_id,
        options.eos_id,
        options.n_bins,
    )
    n_kept = int(np.count_nonzero(keep))
    return EncodedChunk(
        tokens=tokens,
        offsets=offsets,
        rows=rows,
        values=values if options.n_bins > 0 else None,
        n_empty=n_kept - len(rows),
    )


# ---------------------------------------------------------------------------------------------
# Workers (spawn-safe: the plan is sent once, chunks one by one)

_WORKER: tuple[GenePlan, EncodeOptions] | None = None


def _init_worker(plan: GenePlan, options: EncodeOptions) -> None:
    global _WORKER
    _WORKER = (plan, options)


def _work(
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
    keep: np.ndarray,
    n_counts: np.ndarray,
) -> EncodedChunk:
    assert _WORKER is not None, "worker not initialised"
    return encode_chunk(data, indices, indptr, keep, n_counts, *_WORKER)


class _Encoder:
    """Encodes chunks in this process or in a pool, handing results back in input order."""

    def __init__(self, plan: GenePlan, options: EncodeOptions, processes: int) -> None:
        self.plan, self.options = plan, options
        self.pool = None
        self.pending: deque = deque()
        # Enough chunks in flight to keep every worker busy, few enough to bound memory.
        self.window = 2 * processes
        if processes > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(
                max_workers=processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(plan, options),
            )

    def submit(self, tag: Any, *arrays: np.ndarray) -> Iterator[tuple[Any, EncodedChunk]]:
        """Queue one chunk; yield the chunks (tag, result) that are done, in order."""
        if self.pool is None:
            yield tag, encode_chunk(*arrays, self.plan, self.options)
            return
        self.pending.append((tag, self.pool.submit(_work, *arrays)))
        while len(self.pending) >= self.window:
            done_tag, future = self.pending.popleft()
            yield done_tag, future.result()

    def drain(self) -> Iterator[tuple[Any, EncodedChunk]]:
        while self.pending:
            tag, future = self.pending.popleft()
            yield tag, future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


# ---------------------------------------------------------------------------------------------
# Cells: which to keep, their totals, their attributes


def _filter_pass(cells: CellMatrix) -> np.ndarray:
    if "filter_pass" not in cells.obs.columns:
        return np.ones(cells.n_cells, dtype=bool)
    # Geneformer keeps the cells whose filter_pass == 1 (True counts as 1).
    column = cells.obs["filter_pass"]
    values = np.asarray(column.astype(object), dtype=object)
    return np.array([v is not None and v is not np.nan and v == 1 for v in values], dtype=bool)


def _obs_n_counts(cells: CellMatrix) -> np.ndarray | None:
    if "n_counts" not in cells.obs.columns:
        return None
    import pandas as pd

    column = cells.obs["n_counts"]
    values = pd.to_numeric(column.astype(object), errors="coerce")
    return np.asarray(values, dtype=np.float64)


def _check_n_counts(
    n_counts: np.ndarray, keep: np.ndarray, chunk: Any, first: int, cells: CellMatrix, given: bool
) -> None:
    has_counts = np.diff(chunk.indptr) > 0
    bad = keep & has_counts & ~(np.isfinite(n_counts) & (n_counts > 0))
    if not bad.any():
        return
    row = first + int(np.argmax(bad))
    value = n_counts[row - first]
    if given:
        raise InputError(
            f"n_counts is {value!r}, expected the cell's total count (a positive number)",
            file=cells.source,
            where=f"cell {cells.obs.index[row]!r} (row {row}), obs column 'n_counts'",
            fix="fix or drop the obs column 'n_counts': without it the total is computed "
            "from the counts of all genes",
        )
    raise InputError(  # pragma: no cover - counts checked non-negative, so a total is positive
        f"the cell's total count is {value!r}", file=cells.source, where=f"row {row}"
    )


def _attribute_columns(
    cells: CellMatrix, cell_attributes: Sequence[str] | Mapping[str, str] | None
) -> dict[str, str]:
    """{obs column: corpus column} for the requested attributes (Geneformer's dict form too)."""
    if cell_attributes is None:
        return {}
    if isinstance(cell_attributes, str):
        cell_attributes = [cell_attributes]
    pairs = (
        dict(cell_attributes)
        if isinstance(cell_attributes, Mapping)
        else {a: a for a in cell_attributes}
    )
    have = [str(c) for c in cells.obs.columns]
    missing = [a for a in pairs if a not in cells.obs.columns]
    if missing:
        raise InputError(
            f"cell attribute {missing[0]!r} does not exist (obs columns: "
            + (", ".join(repr(c) for c in have) or "none")
            + ")",
            file=cells.source,
            where="cell attributes",
            fix="name existing obs columns (for a .loom: column attributes)",
        )
    out: dict[str, str] = {}
    for column, name in pairs.items():
        if name in ("cell_id", "cell_index"):
            continue  # always written: the cell's id and its row in the input
        if name in _RESERVED:
            raise InputError(
                f"cell attribute {column!r} would be written as {name!r}, a column the "
                "corpus already has",
                where="cell attributes",
                fix="rename it: cell_attributes={'" + str(column) + "': 'other_name'}",
            )
        out[column] = name
    return out


def _arrow_column(values: Any) -> pa.Array:
    """An obs column as an Arrow array: categories as their values, missing as null."""
    import pandas as pd
    import pyarrow as pa

    series = pd.Series(values)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: write them as text
        return pa.array(series.astype(str), from_pandas=True)


# ---------------------------------------------------------------------------------------------
# Output: Arrow batches -> a datasets corpus, written beside the target and renamed into place


def _token_dtype(vocabulary: GeneVocabulary) -> np.dtype:
    # Geneformer's V1 corpora hold int16 ids (its V1 token dictionary stores int16), its V2
    # corpora int32: write the same, so both tools read identical features.
    largest = max(vocabulary.token_ids.values(), default=0)
    if not vocabulary.has_cls_eos and largest < 2**15:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


class _CorpusWriter:
    """Streams record batches into one Arrow file, then saves it as a datasets corpus."""

    def __init__(
        self,
        directory: Path,
        token_dtype: np.dtype,
        binned: bool,
        attributes: dict[str, pa.Array],
        cell_ids: pa.Array,
    ) -> None:
        import pyarrow as pa

        self.directory = directory
        self.token_dtype = token_dtype
        self.attributes = attributes
        self.cell_ids = cell_ids
        fields = [pa.field("input_ids", pa.list_(pa.from_numpy_dtype(token_dtype)))]
        if binned:
            fields.append(pa.field("values", pa.list_(pa.int32())))
        fields += [pa.field(name, array.type) for name, array in attributes.items()]
        fields += [
            pa.field("cell_id", pa.string()),
            pa.field("cell_index", pa.int64()),
            pa.field("length", pa.int64()),
        ]
        self.schema = pa.schema(fields)
        # Outside `directory` itself: datasets refuses to save a dataset over its own files.
        self.stream_dir = directory / ".stream"
        self.stream_dir.mkdir()
        self.stream_path = self.stream_dir / "cells.arrow"
        self.sink = pa.OSFile(str(self.stream_path), "wb")
        self.writer = pa.ipc.new_stream(self.sink, self.schema)
        self.n_cells = 0

    def write(self, first: int, chunk: EncodedChunk) -> None:
        import pyarrow as pa

        if len(chunk.rows) == 0:
            return
        rows = first + chunk.rows
        offsets = pa.array(chunk.offsets.astype(np.int32))
        columns = [
            pa.ListArray.from_arrays(offsets, pa.array(chunk.tokens.astype(self.token_dtype)))
        ]
        if chunk.values is not None:
            columns.append(pa.ListArray.from_arrays(offsets, pa.array(chunk.values)))
        take = pa.array(rows)
        columns += [array.take(take) for array in self.attributes.values()]
        columns += [self.cell_ids.take(take), take, pa.array(np.diff(chunk.offsets))]
        self.writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.schema))
        self.n_cells += len(rows)

    def finish(self) -> None:
        """Close the stream and save it with ``datasets``' ``save_to_disk`` into the directory."""
        import datasets

        self.writer.close()
        self.sink.close()
        dataset = datasets.Dataset.from_file(str(self.stream_path))
        dataset.save_to_disk(str(self.directory))
        del dataset
        shutil.rmtree(self.stream_dir)

    def abort(self) -> None:
        try:
            self.writer.close()
            self.sink.close()
        except Exception:  # noqa: BLE001 - cleaning up after another error
            pass


def _is_corpus_dir(path: Path) -> bool:
    return (path / "manifest.json").exists() or (path / "state.json").exists()


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _is_corpus_dir(out))):
        raise InputError(
            "exists and is not a corpus genoformer may replace",
            file=out,
            fix="choose another --out, or remove it",
        )


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished corpus onto ``out``; an older corpus there is replaced."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _progress_bar(enabled: bool) -> Any:
    """A rich progress bar (on stderr) over the chunks of a run."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )
    return progress


# ---------------------------------------------------------------------------------------------
# The public API


def tokenize(
    source: str | os.PathLike | Any,
    *,
    out: str | os.PathLike,
    vocabulary: GeneVocabulary | str | os.PathLike,
    cell_attributes: Sequence[str] | Mapping[str, str] | None = None,
    encoding: Literal["rank", "binned"] = "rank",
    n_bins: int = 51,
    layer: str | None = None,
    gene_id_column: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    processes: int = 1,
    min_gene_share: float = MIN_GENE_SHARE,
    backed: bool | None = None,
    progress: bool = True,
) -> TokenizeResult:
    """Tokenize single-cell raw counts into a Geneformer corpus (rank value encoding).

    Parameters
    ----------
    source
        A .h5ad, .zarr, .loom, 10x .h5 file or matrix directory, or an AnnData object.
    out
        The corpus directory to write (Hugging Face ``datasets``, read by Geneformer's
        ``load_from_disk`` and by :func:`load_corpus`), with our ``manifest.json``. Written
        beside its final place and renamed there, so a killed run leaves nothing half-done;
        a corpus already there is replaced.
    vocabulary
        A :class:`GeneVocabulary`, ``"V1"``/``"V2"`` for Geneformer's dictionaries, or the
        path of a vocabulary file. Its input size and special tokens decide truncation and
        ``<cls>``/``<eos>``.
    cell_attributes
        obs columns to copy into the corpus (a list, or Geneformer's ``{obs column: corpus
        column}``). ``cell_id`` (the obs index) and ``cell_index`` (the row in the input)
        are always written.
    encoding
        ``"rank"`` (Geneformer) or ``"binned"``: the same input_ids plus a ``values`` column of
        scGPT-style per-cell quantile bins (see the module docstring).
    n_bins
        Bins of the binned encoding, 0 included (values run 1 .. n_bins - 1).
    layer, gene_id_column, backed
        How to read the input (see :func:`genoformer.sc.readers.open_cells`).
    chunk_size
        Cells per chunk.
    processes
        Worker processes that encode chunks (the output is the same for any number).
    min_gene_share
        Least share of the input's genes that must be in the vocabulary.
    progress
        Show a progress bar over chunks.

    Returns
    -------
    TokenizeResult
    """
    from genoformer.engine.runs import RunDir
    from genoformer.sc.dictionaries import resolve

    start = time.perf_counter()
    if encoding not in ("rank", "binned"):
        raise InputError(f"unknown encoding {encoding!r}", fix="use 'rank' or 'binned'")
    if encoding == "binned" and not 3 <= n_bins <= 2**15:
        raise InputError(f"n_bins={n_bins}, expected 3 to 32,768", fix="use e.g. 51 (scGPT)")
    if chunk_size < 1 or processes < 1:
        raise InputError(f"chunk_size={chunk_size}, processes={processes}; both must be at least 1")
    vocab = resolve(vocabulary)
    out = Path(out)
    _check_out(out)
    special = 2 if vocab.has_cls_eos else 0
    if vocab.input_size <= special:
        raise InputError(f"input size {vocab.input_size} leaves no room for genes")
    options = EncodeOptions(
        max_genes=vocab.input_size - special,
        cls_id=vocab.cls_id if vocab.has_cls_eos else -1,
        eos_id=vocab.eos_id if vocab.has_cls_eos else -1,
        n_bins=n_bins if encoding == "binned" else 0,
    )
    arguments = {
        "source": source if isinstance(source, (str, os.PathLike)) else "<AnnData>",
        "out": out,
        "vocabulary": vocab.name,
        "cell_attributes": cell_attributes,
        "encoding": encoding,
        "n_bins": n_bins if encoding == "binned" else None,
        "layer": layer,
        "gene_id_column": gene_id_column,
        "chunk_size": chunk_size,
        "processes": processes,
        "min_gene_share": min_gene_share,
        "backed": backed,
    }
    with open_cells(source, layer=layer, gene_id_column=gene_id_column, backed=backed) as cells:
        plan = plan_genes(
            cells.gene_ids,
            vocab,
            gene_symbols=cells.gene_symbols,
            min_gene_share=min_gene_share,
            source=cells.source,
        )
        attributes = _attribute_columns(cells, cell_attributes)
        keep_all = _filter_pass(cells)
        obs_counts = _obs_n_counts(cells)
        arrays = {name: _arrow_column(cells.obs[column]) for column, name in attributes.items()}
        cell_ids = _arrow_column(np.asarray(cells.obs.index, dtype=object).astype(str))

        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
        run = RunDir(tmp, command="sc tokenize", arguments=arguments)
        writer = encoder = None
        try:
            writer = _CorpusWriter(tmp, _token_dtype(vocab), encoding == "binned", arrays, cell_ids)
            encoder = _Encoder(plan, options, processes)
            n_empty = 0
            n_chunks = math.ceil(cells.n_cells / chunk_size)
            with _progress_bar(progress) as bar:
                name = Path(cells.source).name
                task = bar.add_task(f"tokenizing {name}", total=n_chunks)

                def written(done: Iterable[tuple[int, EncodedChunk]]) -> None:
                    nonlocal n_empty
                    for first, chunk in done:
                        writer.write(first, chunk)
                        n_empty += chunk.n_empty
                        bar.advance(task)

                with run.step("tokenize"):
                    for first, chunk in cells.chunks(chunk_size):
                        cells.check(chunk, first)
                        stop = first + chunk.shape[0]
                        keep = keep_all[first:stop]
                        if obs_counts is not None:
                            n_counts = obs_counts[first:stop]
                        else:  # the total over all genes, before dropping non-vocabulary ones
                            n_counts = np.asarray(chunk.sum(axis=1, dtype=np.float64)).ravel()
                        _check_n_counts(n_counts, keep, chunk, first, cells, obs_counts is not None)
                        written(
                            encoder.submit(
                                first, chunk.data, chunk.indices, chunk.indptr, keep, n_counts
                            )
                        )
                    written(encoder.drain())
            encoder.close()
            n_filtered = int(cells.n_cells - keep_all.sum())
            if writer.n_cells == 0:
                raise InputError(
                    f"no cell has counts on a gene of the {vocab.name} vocabulary "
                    f"({n_filtered:,} of {cells.n_cells:,} cells failed filter_pass)",
                    file=cells.source,
                    fix="check that the matrix holds counts and filter_pass keeps cells",
                )
            with run.step("save"):
                writer.finish()
            seconds = time.perf_counter() - start
            dropped = {"filter_pass": n_filtered, "no_tokens": n_empty}
            run.record_results(
                "tokenize",
                {
                    "cells_in": cells.n_cells,
                    "cells_out": writer.n_cells,
                    "dropped": dropped,
                    "genes": {
                        "input": plan.n_input,
                        "in_vocabulary": plan.n_matched,
                        "share": round(plan.share, 6),
                        "matched_by": plan.by,
                    },
                    "vocabulary": vocab.name,
                    "input_size": vocab.input_size,
                    "encoding": encoding,
                    "seconds": round(seconds, 3),
                    "cells_per_second": round(cells.n_cells / seconds, 1),
                },
            )
            run.finish()
            _move_into_place(tmp, out)
        except BaseException:
            if encoder is not None:
                encoder.close()
            if writer is not None:
                writer.abort()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return TokenizeResult(
        out=out,
        n_cells=writer.n_cells,
        n_dropped=dropped,
        gene_share=plan.share,
        seconds=time.perf_counter() - start,
    )


def load_corpus(path: str | os.PathLike) -> datasets.Dataset:
    """Load a tokenized corpus: ours, or one written by Geneformer's tokenizer.

    Raises
    ------
    InputError
        The path is missing, is not a ``datasets`` corpus, or has no ``input_ids`` column.
    """
    import datasets

    path = Path(path)
    if not path.exists():
        raise InputError("no such corpus", file=path, fix="pass the directory tokenize wrote")
    try:
        corpus = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as error:
        raise InputError(
            f"not a Hugging Face datasets corpus ({error})",
            file=path,
            fix="pass a directory written by `genoformer sc tokenize` or Geneformer's "
            "TranscriptomeTokenizer (save_to_disk)",
        ) from None
    if isinstance(corpus, datasets.DatasetDict):
        if len(corpus) != 1:
            raise InputError(
                f"holds several splits ({', '.join(corpus)}), expected one corpus",
                file=path,
                fix="pass the directory of one split",
            )
        corpus = next(iter(corpus.values()))
    if "input_ids" not in corpus.column_names:
        raise InputError(
            "has no 'input_ids' column (columns: " + ", ".join(corpus.column_names) + ")",
            file=path,
            fix="tokenize the cells first (`genoformer sc tokenize`)",
        )
    return corpus
