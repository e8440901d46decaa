"""The numeric core of the rank value encoding: one chunk of cells, CSR counts in, tokens out.

Arithmetic. Geneformer's gene order is reproduced bit for bit, which needs its arithmetic:
``float64(float32(float32(count) * float32(1 / n_counts)) * float32(10000)) * float64(1 /
median)``; plain float64 reorders near-equal genes in about 2% of cells. Counts of input
columns that map to one gene are summed first; zero counts are dropped.

Ties. Genes of a cell with exactly equal values are ordered by token id, ascending (stable,
and the same for any order of the input's genes); Geneformer's order there is that of numpy's
unstable argsort.

Speed. numba loops over the CSR arrays compute each cell's values and a 32-bit sort key per
gene: the value's bits relative to the cell's largest value (descending), then the gene's
position in the cell. Each cell's keys are sorted by numpy's vectorised sort, the hot spot,
several times faster than an argsort of the values; keys that agree above the position bits
(values within about 1e-5 of each other, or equal) are then put in exact order by value and
token id, so the truncated bits never decide the order. Work buffers are reused from chunk to
chunk. The module imports only numpy and numba, so that worker processes start quickly.

Binned encoding (scGPT's value binning): per cell, the non-zero counts of the vocabulary genes
go into ``n_bins - 1`` quantile bins of that cell's own non-zero counts (bins ``1 ..
n_bins - 1``; 0 is kept for ``<cls>``/``<eos>``, as for zero expression in scGPT). Edges are
numpy's linear quantiles at ``linspace(0, 1, n_bins - 1)``. A count strictly between two edges
gets ``np.digitize``'s bin; a count equal to one or more edges could fall in any of several
bins, which scGPT draws at random: here it gets the middle one (rounded down), so equal counts
get equal bins and bins never decrease as counts grow. Counts are binned as they are: scGPT
bins normalised, log1p-transformed expression, and per-cell scaling and log1p are increasing
within a cell, so they give the same bins (up to rounding where an edge is interpolated).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numba
import numpy as np

__all__ = [
    "EncodeOptions",
    "EncodedChunk",
    "GenePlan",
    "encode_chunk",
    "release_workspaces",
    "row_totals",
]


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
    shared
        Per gene: whether several input columns map to it (their counts are summed).
    codes
        ``column_gene`` with shared genes as ``-2 - gene`` (derived).
    """

    column_gene: np.ndarray
    tokens: np.ndarray
    inv_median: np.ndarray
    n_input: int
    n_matched: int
    by: str
    shared: np.ndarray

    codes: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # column_gene with shared genes as -2 - gene: the kernel needs one lookup per count.
        codes = self.column_gene.copy()
        shared = (codes >= 0) & self.shared[np.maximum(codes, 0)]
        codes[shared] = -2 - codes[shared]
        object.__setattr__(self, "codes", codes)

    @property
    def share(self) -> float:
        return self.n_matched / self.n_input if self.n_input else 0.0


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
def _bit_length(x):
    n = 0
    while x > 0:
        x >>= np.uint64(1)
        n += 1
    return n


@numba.njit(cache=True, nogil=True, inline="always")
def _rank_value(count, scale, inv_median):
    """Geneformer's arithmetic, the one place it is written: float32 normalisation
    (``scale`` is float32(1 / n_counts)), then float64 median scaling."""
    return np.float64(np.float32(count * scale) * np.float32(10000.0)) * inv_median


@numba.njit(cache=True, nogil=True, inline="always")
def _entry(n, g, c, scale, inv_median, gene, count, value):
    """Write a cell's entry ``n``: gene ``g`` with count ``c`` and its rank value."""
    gene[n] = g
    count[n] = c
    value[n] = _rank_value(c, scale, inv_median[g])


@numba.njit(cache=True, nogil=True)
def _normalise(
    data,
    indices,
    indptr,
    keep,
    scale,
    codes,
    inv_median,
    gene,
    count,
    value,
    keys,
    row_start,
    acc,
    stack,
):
    """Per kept cell: sum counts per gene, compute rank values, and pack 32-bit sort keys.

    Writes into the work buffers (``gene`` .. ``stack``) and returns the number of entries.
    The key of a cell's entry k is ``(descending value bits) << p | k``, p the bits of the
    cell's entry count; the value bits, taken relative to the cell's own range of values,
    resolve values about 1e-5 apart, so exact order has to be restored only for rare near ties.
    """
    bits = value.view(np.uint64)
    n = 0
    for r in range(indptr.size - 1):
        row_start[r] = n
        if not keep[r]:
            continue
        first = n
        n_shared = 0
        s = scale[r]
        for j in range(indptr[r], indptr[r + 1]):
            g = codes[indices[j]]
            c = np.float32(data[j])
            if g < 0 or c == 0:
                if g < -1 and c != 0:  # several input columns map to this gene: sum them first
                    g = -2 - g
                    if acc[g] == 0:
                        stack[n_shared] = g
                        n_shared += 1
                    acc[g] += c
                continue
            _entry(n, g, c, s, inv_median, gene, count, value)
            n += 1
        for i in range(n_shared):
            g = stack[i]
            _entry(n, g, np.float32(acc[g]), s, inv_median, gene, count, value)
            acc[g] = 0
            n += 1
        if n == first:
            continue
        # Positive floats order as their bit patterns.
        high = bits[first:n].max()
        low = bits[first:n].min()
        pos_bits = _bit_length(np.uint64(n - first - 1))
        shift = max(0, _bit_length(high - low) - (32 - pos_bits))
        for k in range(first, n):
            prefix = (high - bits[k]) >> np.uint64(shift)
            keys[k] = np.uint32((prefix << np.uint64(pos_bits)) | np.uint64(k - first))
    row_start[indptr.size - 1] = n
    return n


@numba.njit(cache=True, nogil=True)
def _quantile_edges(sorted_counts, n_edges):
    """numpy's linear quantiles of ascending values at linspace(0, 1, n_edges)."""
    n = sorted_counts.size
    edges = np.empty(n_edges, np.float64)
    step = 1.0 / (n_edges - 1)
    for i in range(n_edges):
        q = 1.0 if i == n_edges - 1 else i * step
        h = (n - 1) * q
        lo = min(int(math.floor(h)), n - 1)
        hi = min(lo + 1, n - 1)
        t = h - lo
        a = sorted_counts[lo]
        d = sorted_counts[hi] - a
        edges[i] = sorted_counts[hi] - d * (1.0 - t) if t >= 0.5 else a + d * t
    return edges


@numba.njit(cache=True, nogil=True)
def _order_run(order, start, stop, value, gene, tokens):
    """Insertion sort of order[start:stop] by value descending, then token id ascending."""
    for p in range(start + 1, stop):
        item = order[p]
        v = value[item]
        t = tokens[gene[item]]
        q = p - 1
        while q >= start:
            other = order[q]
            if value[other] > v or (value[other] == v and tokens[gene[other]] < t):
                break
            order[q + 1] = other
            q -= 1
        order[q + 1] = item


@numba.njit(cache=True, nogil=True)
def _emit(
    keys,
    row_start,
    gene,
    count,
    value,
    tokens,
    max_genes,
    cls_id,
    eos_id,
    n_bins,
    order,
    out_tokens,
    out_values,
    offsets,
    rows,
):
    """Per cell: decode the sorted keys, order near ties exactly, truncate, add specials/bins.

    Returns the number of cells written and of tokens written.
    """
    n_out = 0
    w = 0
    offsets[0] = 0
    for r in range(row_start.size - 1):
        a = row_start[r]
        size = row_start[r + 1] - a
        if size == 0:
            continue
        pos_bits = np.uint32(_bit_length(np.uint64(size - 1)))
        mask = (np.uint32(1) << pos_bits) - np.uint32(1)
        # Keys equal above the position bits hold values too close for 32 bits: put them in
        # exact order, value descending then token id ascending (short, rare runs).
        run = 0
        head = keys[a] >> pos_bits
        order[a] = a + np.int64(keys[a] & mask)
        for i in range(1, size + 1):
            if i < size:
                key = keys[a + i]
                order[a + i] = a + np.int64(key & mask)
                if key >> pos_bits == head:
                    continue
                head = key >> pos_bits
            if i - run > 1:
                _order_run(order, a + run, a + i, value, gene, tokens)
            run = i
        take = min(size, max_genes)
        if cls_id >= 0:
            out_tokens[w] = cls_id
            if n_bins > 0:
                out_values[w] = 0
            w += 1
        for k in range(take):
            out_tokens[w + k] = tokens[gene[order[a + k]]]
        if n_bins > 0:
            edges = _quantile_edges(np.sort(count[a : a + size]), n_bins - 1)
            for k in range(take):
                c = count[order[a + k]]
                above = np.searchsorted(edges, c, side="right")  # edges <= c
                below = np.searchsorted(edges, c, side="left")  # edges < c
                out_values[w + k] = above if above == below else (below + 1 + above) // 2
        w += take
        if eos_id >= 0:
            out_tokens[w] = eos_id
            if n_bins > 0:
                out_values[w] = 0
            w += 1
        rows[n_out] = r
        n_out += 1
        offsets[n_out] = w
    return n_out, w


class _Workspace:
    """Work buffers reused from chunk to chunk (fresh ones would cost page faults each time)."""

    def __init__(self, n_genes: int) -> None:
        self.acc = np.zeros(n_genes, np.float64)
        self.stack = np.empty(n_genes, np.int32)
        self.entries = self.cells = self.outputs = -1

    def ensure(self, nnz: int, n_rows: int) -> None:
        """Buffers for a chunk of ``n_rows`` cells and ``nnz`` stored counts."""
        if nnz > self.entries:
            self.entries = max(nnz, int(self.entries * 1.25))
            self.gene = np.empty(self.entries, np.int32)
            self.count = np.empty(self.entries, np.float32)
            self.value = np.empty(self.entries, np.float64)
            self.keys = np.empty(self.entries, np.uint32)
            self.order = np.empty(self.entries, np.int64)
        if n_rows > self.cells:
            self.cells = n_rows
            self.row_start = np.empty(n_rows + 1, np.int64)
            self.offsets = np.empty(n_rows + 1, np.int64)
            self.rows = np.empty(n_rows, np.int64)
        if nnz + 2 * n_rows > self.outputs:
            self.outputs = max(nnz + 2 * n_rows, int(self.outputs * 1.25))
            self.out_tokens = np.empty(self.outputs, np.int32)
            self.out_values = np.empty(self.outputs, np.int32)


# One set of buffers per thread (the kernels release the GIL) and vocabulary size.
_LOCAL = threading.local()


def _workspace(n_genes: int) -> _Workspace:
    spaces = getattr(_LOCAL, "spaces", None)
    if spaces is None:
        spaces = _LOCAL.spaces = {}
    if n_genes not in spaces:
        spaces[n_genes] = _Workspace(n_genes)
    return spaces[n_genes]


def release_workspaces() -> None:
    """Free this thread's work buffers (kept between chunks, and between runs until now)."""
    _LOCAL.spaces = {}


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
        From :func:`genoformer.sc.tokenizer.plan_genes`.
    options
        Truncation, special tokens and bins.
    """
    n_rows = len(indptr) - 1
    indptr = np.asarray(indptr, dtype=np.int64)
    nnz = int(indptr[-1] - indptr[0])
    ws = _workspace(len(plan.tokens))
    ws.ensure(nnz, n_rows)
    # Geneformer multiplies by 1 / n_counts rounded to float32 (its float32 matrix division).
    with np.errstate(divide="ignore"):
        scale = (1.0 / np.asarray(n_counts, dtype=np.float64)).astype(np.float32)
    row_start = ws.row_start[: n_rows + 1]
    n = _normalise(
        data,
        indices,
        indptr,
        np.asarray(keep, dtype=np.bool_),
        scale,
        plan.codes,
        plan.inv_median,
        ws.gene,
        ws.count,
        ws.value,
        ws.keys,
        row_start,
        ws.acc,
        ws.stack,
    )
    # Each cell's keys sorted by numpy's vectorised sort (32-bit keys sort fastest): the hot
    # spot of the whole tokenizer, several times faster than a per-cell argsort of the values.
    starts = row_start.tolist()
    keys = ws.keys
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        if b - a > 1:
            keys[a:b].sort()
    n_out, w = _emit(
        keys[:n],
        row_start,
        ws.gene,
        ws.count,
        ws.value,
        plan.tokens,
        options.max_genes,
        options.cls_id,
        options.eos_id,
        options.n_bins,
        ws.order,
        ws.out_tokens,
        ws.out_values,
        ws.offsets,
        ws.rows,
    )
    n_kept = int(np.count_nonzero(keep))
    return EncodedChunk(
        tokens=ws.out_tokens[:w].copy(),
        offsets=ws.offsets[: n_out + 1].copy(),
        rows=ws.rows[:n_out].copy(),
        values=ws.out_values[:w].copy() if options.n_bins > 0 else None,
        n_empty=n_kept - n_out,
    )


@numba.njit(cache=True, nogil=True)
def row_totals(data, indptr):
    """Each row's total count (float64) of a CSR matrix."""
    totals = np.zeros(indptr.size - 1, np.float64)
    for r in range(indptr.size - 1):
        s = 0.0
        for j in range(indptr[r], indptr[r + 1]):
            s += data[j]
        totals[r] = s
    return totals
