"""Tokenize single-cell raw counts into a Geneformer corpus, exactly as Geneformer does, fast.

A cell becomes a "sentence" of gene tokens: each gene's count is divided by the cell's total
count, multiplied by 10,000 and divided by the gene's non-zero median over the pretraining
corpus; genes with no counts are dropped and the rest sorted by that value, descending, then
truncated to the model's input size (V1: 2,048 genes; V2: ``<cls>``, 4,094 genes, ``<eos>``).
:mod:`genoformer.sc.ranking` holds the arithmetic, the tie order (token id) and the binned
encoding; :mod:`genoformer.sc.corpus` the corpus layout. This module maps the input's genes to
the vocabulary, chooses the cells, reads them in chunks (in worker processes if asked) and
writes the corpus.

Genes, as in Geneformer: Ensembl ids are upper-cased and mapped through the vocabulary's
``id_mapping``, and the counts of ids that map to one gene are summed (Geneformer keeps two
columns with the same id apart; summing them is the only consistent reading). Inputs with gene
symbols instead of Ensembl ids are mapped through the symbol dictionary.

Cells, as in Geneformer: an obs column ``filter_pass`` keeps the cells where it is 1; each cell
is divided by its obs ``n_counts`` when that column exists (it may count genes the file no
longer holds), else by its total over all the input's genes, which raw counts always allow.
Cells left without any vocabulary gene are dropped and counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError, cli_option, command_line, option, setting
from genoformer.engine.options import with_overrides
from genoformer.engine.progress import progress_bar
from genoformer.sc.corpus import (
    CorpusWriter,
    check_out,
    corpus_schema,
    load_corpus,
    move_into_place,
    token_dtype,
)
from genoformer.sc.ranking import (
    EncodedChunk,
    EncodeOptions,
    GenePlan,
    encode_chunk,
    release_workspaces,
    row_totals,
)

if TYPE_CHECKING:  # the heavy modules load on use: spawned workers start without them
    import pyarrow as pa

    from genoformer.engine.runs import RunDir, RunResult
    from genoformer.sc.io import CellMatrix
    from genoformer.sc.vocabulary import GeneVocabulary

__all__ = ["TokenizeSettings", "load_corpus", "plan_genes", "tokenize"]

#: The share of the input's genes that must be in the vocabulary (else the ids are wrong).
MIN_GENE_SHARE = 0.2
#: Cells per chunk: large enough that numpy's sort and Arrow's batches amortise their calls.
CHUNK_SIZE = 1024
# Chunks per worker task at most (a task's cells become one shard of the corpus).
_TASK_CHUNKS = 64
_RESERVED = ("input_ids", "values", "length", "cell_id", "cell_index")


# ---------------------------------------------------------------------------------------------
# Genes: from the input's columns to the vocabulary


def _gene_indices(
    names: Sequence[str], mapping: Mapping[str, str], index: Mapping[str, int]
) -> np.ndarray:
    """Index in ``index`` of each id, upper-cased and mapped through ``mapping`` (-1: none)."""
    if mapping:
        found = [index.get(mapping.get(name.upper()), -1) for name in names]
    else:
        found = [index.get(name.upper(), -1) for name in names]
    indices = np.array(found, dtype=np.int32)
    for col in np.flatnonzero(indices < 0):
        key = names[col].upper()
        if "." in key:  # versioned ids (ENSG00000141510.16) name the unversioned gene
            base = key.split(".", 1)[0]
            indices[col] = index.get(mapping.get(base) if mapping else base, -1)
    return indices


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
    from genoformer.sc.io.matrix import looks_ensembl

    ids = np.asarray(gene_ids, dtype=str)
    genes = vocabulary.gene_ids()
    index = {gene: i for i, gene in enumerate(genes)}  # gene_ids() is in token id order
    mapping = vocabulary.id_mapping
    # Evenly spaced ids suffice to tell Ensembl ids from symbols, and keep this quick.
    by = "ensembl" if looks_ensembl(ids[:: max(1, len(ids) // 2000)]) else "symbol"
    names = ids if by == "ensembl" or gene_symbols is None else np.asarray(gene_symbols, str)
    listed = names.tolist()
    if by == "ensembl":
        column_gene = _gene_indices(listed, mapping, index)
    else:
        symbol_to_id = vocabulary.symbol_to_id
        ensembl = [symbol_to_id.get(n) or symbol_to_id.get(n.upper()) or "" for n in listed]
        column_gene = _gene_indices(ensembl, mapping, index)
        # V2's mapping dictionary maps symbols to Ensembl ids too.
        unmatched = np.flatnonzero(column_gene < 0)
        column_gene[unmatched] = _gene_indices([listed[i] for i in unmatched], mapping, index)
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
                f"{option('gene_id_column')}), or pass human gene symbols",
            )
        first = ", ".join(repr(str(n)) for n in ids[:3])
        raise InputError(
            f"none of the {n_input:,} gene ids ({first}, ...) is in the {vocabulary.name} "
            "vocabulary",
            file=source,
            where="gene ids",
            fix="check that the genes are human Ensembl ids, and that the vocabulary "
            f"({setting('vocabulary')}) is the one of the model they are for",
        )
    if share < min_gene_share:
        what = "gene symbols" if by == "symbol" else "gene ids"
        raise InputError(
            f"only {n_matched:,} of {n_input:,} {what} ({share:.1%}) are in the "
            f"{vocabulary.name} vocabulary, fewer than {setting('min_gene_share')} "
            f"{min_gene_share:g}",
            file=source,
            where="gene ids",
            fix=f"check the species, that {setting('gene_id_column')} names the Ensembl ids, "
            f"and that the vocabulary is the model's; or lower {setting('min_gene_share')}",
        )
    # Only the genes the input has (small work arrays), in token id order.
    used = np.unique(column_gene[matched])
    compact = np.full(len(genes), -1, dtype=np.int32)
    compact[used] = np.arange(len(used), dtype=np.int32)
    column_gene[matched] = compact[column_gene[matched]]
    used_genes = [genes[i] for i in used]
    tokens = np.array([vocabulary.token_ids[g] for g in used_genes], dtype=np.int32)
    inv_median = 1.0 / np.array([vocabulary.medians[g] for g in used_genes], dtype=np.float64)
    # Genes fed by more than one column: their counts are summed before ranking.
    shared = np.bincount(column_gene[matched], minlength=len(used)) > 1
    return GenePlan(column_gene, tokens, inv_median, n_input, n_matched, by, shared)


# ---------------------------------------------------------------------------------------------
# Cells: which to keep, their totals, their attributes


def _filter_pass(cells: CellMatrix) -> np.ndarray:
    """Per cell: whether to tokenize it (Geneformer keeps the cells whose filter_pass == 1)."""
    if "filter_pass" not in cells.obs.columns:
        return np.ones(cells.n_cells, dtype=bool)
    values = cells.obs["filter_pass"].astype(object).tolist()
    # True == 1 too; missing values (None, NaN) are not 1.
    return np.array([v is not None and v == 1 for v in values], dtype=bool)


def _bad_totals(n_counts: np.ndarray, keep: np.ndarray, indptr: np.ndarray) -> int | None:
    """The first kept cell with counts whose total is not a positive number, or None."""
    has_counts = np.diff(indptr) > 0
    bad = keep & has_counts & ~(np.isfinite(n_counts) & (n_counts > 0))
    return int(np.argmax(bad)) if bad.any() else None


def _totals_error(source: str, cell_id: str, row: int, value: float) -> InputError:
    return InputError(
        f"n_counts is {value:g}, expected the cell's total count (a positive number)",
        file=source,
        where=f"cell {cell_id!r} (row {row}), obs column 'n_counts'",
        fix="correct the obs column 'n_counts', or drop it: without it each cell's total is "
        "computed from its counts over all genes",
    )


def _totals(
    data: np.ndarray,
    indptr: np.ndarray,
    keep: np.ndarray,
    obs_counts: np.ndarray | None,
    source: str,
    first: int,
    cell_ids: Any,
) -> np.ndarray:
    """The cells' totals (``n_counts``): the obs column, else the sum over all genes."""
    if obs_counts is None:
        return row_totals(data, np.asarray(indptr, dtype=np.int64))
    bad = _bad_totals(obs_counts, keep, indptr)
    if bad is not None:
        cell_id = cell_ids[bad]
        cell_id = cell_id.as_py() if hasattr(cell_id, "as_py") else cell_id  # Arrow or pandas
        raise _totals_error(source, str(cell_id), first + bad, float(obs_counts[bad]))
    return obs_counts


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
    missing = [a for a in pairs if a not in cells.obs.columns]
    if missing:
        have = ", ".join(repr(str(c)) for c in cells.obs.columns) or "none"
        raise InputError(
            f"cell attribute {missing[0]!r} does not exist (cell attributes: {have})",
            file=cells.source,
            where=setting("cell_attributes", flag="--attribute"),
            fix="name existing obs columns (for a .loom: column attributes)",
        )
    out: dict[str, str] = {}
    for column, name in pairs.items():
        if name in ("cell_id", "cell_index"):
            continue  # always written: the cell's id and its row in the input
        if name in _RESERVED:
            rename = (
                f"rename the obs column {column!r} in the file"
                if command_line()
                else f"rename it, e.g. cell_attributes={{{column!r}: '{name}_label'}}"
            )
            raise InputError(
                f"cell attribute {column!r} would be written as {name!r}, a column the "
                "corpus already has",
                file=cells.source,
                where=setting("cell_attributes", flag="--attribute"),
                fix=rename,
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
# One chunk: counts -> Arrow record batch


@dataclass(frozen=True)
class _Job:
    """What encoding any chunk needs besides its counts (sent to workers with each task)."""

    plan: GenePlan
    options: EncodeOptions
    schema: pa.Schema
    tokens: np.dtype
    source: str


def _record_batch(
    job: _Job,
    first: int,
    encoded: EncodedChunk,
    attributes: Sequence[pa.Array],
    cell_ids: pa.Array,
) -> pa.RecordBatch | None:
    """The corpus rows of one chunk; ``attributes`` and ``cell_ids`` hold the chunk's cells."""
    import pyarrow as pa

    if len(encoded.rows) == 0:
        return None
    offsets = pa.array(encoded.offsets.astype(np.int32))
    tokens = encoded.tokens.astype(job.tokens, copy=False)
    columns = [pa.ListArray.from_arrays(offsets, pa.array(tokens))]
    if encoded.values is not None:
        columns.append(pa.ListArray.from_arrays(offsets, pa.array(encoded.values)))
    local = pa.array(encoded.rows)
    columns += [array.take(local) for array in attributes]
    columns += [
        cell_ids.take(local),
        pa.array(first + encoded.rows),
        pa.array(np.diff(encoded.offsets)),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=job.schema)


def _encode(job: _Job, counts: tuple, keep: np.ndarray, n_counts: np.ndarray) -> EncodedChunk:
    data, indices, indptr = counts
    return encode_chunk(data, indices, indptr, keep, n_counts, job.plan, job.options)


# ---------------------------------------------------------------------------------------------
# Workers (spawn-safe). Given a file, a worker reads its own range of cells and writes it as one
# Arrow file that becomes a shard of the corpus, so counts and tokens never go through pipes;
# an .h5ad stored by cell is read straight from its CSR arrays, without the cell and gene
# tables or anndata. Given an AnnData object, this process sends chunks and gets tokens back.


_OPENED: dict[tuple, Any] = {}


def _rows(reader: tuple) -> Any:
    """This process's row reader of ``reader`` (``(kind, path, layer[, gene_id_column])``),
    opened once."""
    if reader not in _OPENED:
        from genoformer.sc.io.rows import open_rows

        _OPENED[reader] = open_rows(*reader)
    return _OPENED[reader]


def _not_counts(data: np.ndarray, indptr: np.ndarray) -> tuple[int, float] | None:
    """(row, value) of the first stored value that is not a count, or None."""
    if data.size == 0:
        return None
    if np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_:
        bad = data < 0
    else:
        bad = (data < 0) | (np.floor(data) != data)
    if not bad.any():
        return None
    at = int(np.argmax(bad))
    return int(np.searchsorted(indptr, at, side="right")) - 1, float(data[at])


def _warm_worker() -> None:
    """Worker start-up: load the compiled kernels now, while the parent sets up."""
    plan = GenePlan(
        column_gene=np.zeros(1, np.int32),
        tokens=np.ones(1, np.int32),
        inv_median=np.ones(1),
        n_input=1,
        n_matched=1,
        by="ensembl",
        shared=np.zeros(1, np.bool_),
    )
    one = np.ones(1, np.int64)
    encode_chunk(
        np.ones(1, np.float32),
        np.zeros(1, np.int32),
        np.array([0, 1]),
        one.astype(bool),
        one,
        plan,
        EncodeOptions(max_genes=1),
    )
    row_totals(np.ones(1, np.float32), np.array([0, 1]))


def _nothing() -> None:
    pass


def _range_task(
    job: _Job,
    reader: tuple,
    first: int,
    stop: int,
    chunk_size: int,
    keep: np.ndarray,
    obs_counts: np.ndarray | None,
    attributes: Sequence[pa.Array],
    cell_ids: pa.Array,
    part: Path,
) -> tuple[int, int, tuple[int, float] | None]:
    """Encode cells ``first .. stop`` into the Arrow file ``part``.

    Returns (cells written, cells without tokens, and the (row, value) of a value that is not
    a count, which stops the task: the parent reports it).
    """
    from genoformer.sc.corpus import ArrowStream

    rows = _rows(reader)
    stream = ArrowStream(part, job.schema)
    n_empty = 0
    try:
        for a in range(first, stop, chunk_size):
            b = min(a + chunk_size, stop)
            block = rows.read(a, b)
            data, indices = block.data, block.indices
            indptr = block.indptr.astype(np.int64, copy=False)
            bad = _not_counts(data, indptr)
            if bad is not None:
                return stream.n_cells, n_empty, (a + bad[0], bad[1])
            local = slice(a - first, b - first)
            n_counts = _totals(
                data,
                indptr,
                keep[local],
                None if obs_counts is None else obs_counts[local],
                job.source,
                a,
                cell_ids.slice(a - first, b - a),
            )
            encoded = _encode(job, (data, indices, indptr), keep[local], n_counts)
            n_empty += encoded.n_empty
            stream.write(
                _record_batch(
                    job,
                    a,
                    encoded,
                    [x.slice(a - first, b - a) for x in attributes],
                    cell_ids.slice(a - first, b - a),
                )
            )
    finally:
        stream.close()
    return stream.n_cells, n_empty, None


def _chunk_task(job: _Job, counts: tuple, keep: np.ndarray, n_counts: np.ndarray) -> EncodedChunk:
    return _encode(job, counts, keep, n_counts)


def _start_pool(processes: int) -> Any:
    """A process pool whose workers start now, loading kernels while this process sets up.

    Workers are started by a fork server where the platform has one (Linux, macOS), else
    spawned: either way from a fresh interpreter, never forked from this process and its
    open files. The fork server starts once per session, with this module imported and the
    kernels loaded (:mod:`genoformer.sc._forkserver`), so later pools start in milliseconds.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["__main__", "genoformer.sc._forkserver"])
    else:
        context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=_warm_worker)
    for _ in range(processes):  # each submit starts one more worker while none is idle
        pool.submit(_nothing)
    return pool


# ---------------------------------------------------------------------------------------------
# Running the chunks


@dataclass
class _Run:
    """The cells of one run and where they go."""

    job: _Job
    cells: CellMatrix
    chunk_size: int
    keep: np.ndarray
    obs_counts: np.ndarray | None
    attributes: list[pa.Array]
    cell_ids: pa.Array
    corpus: CorpusWriter
    advance: Any
    n_empty: int = 0

    def slices(self, first: int, stop: int) -> tuple:
        n = stop - first
        counts = None if self.obs_counts is None else self.obs_counts[first:stop]
        attributes = [a.slice(first, n) for a in self.attributes]
        return self.keep[first:stop], counts, attributes, self.cell_ids.slice(first, n)

    def chunk_totals(self, chunk: Any, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Check a chunk read here and return its cells' (keep, totals)."""
        stop = first + chunk.shape[0]
        keep, counts, _, _ = self.slices(first, stop)
        self.cells.check(chunk, first)
        ids = self.cells.obs.index[first:stop]
        totals = _totals(chunk.data, chunk.indptr, keep, counts, self.cells.source, first, ids)
        return keep, totals

    def write(self, first: int, n: int, encoded: EncodedChunk) -> None:
        """Write the encoded chunk of cells ``first .. first + n``."""
        _, _, attributes, cell_ids = self.slices(first, first + n)
        self.corpus.write(_record_batch(self.job, first, encoded, attributes, cell_ids))
        self.n_empty += encoded.n_empty
        self.advance()


def _in_process(run: _Run) -> None:
    """Every chunk read and encoded in this process."""
    for first, chunk in run.cells.chunks(run.chunk_size):
        keep, totals = run.chunk_totals(chunk, first)
        encoded = _encode(run.job, (chunk.data, chunk.indices, chunk.indptr), keep, totals)
        run.write(first, chunk.shape[0], encoded)


def _pooled_chunks(run: _Run, pool: Any, window: int) -> None:
    """Chunks read here, encoded by the workers, written here in input order."""
    pending: deque = deque()
    for first, chunk in run.cells.chunks(run.chunk_size):
        keep, totals = run.chunk_totals(chunk, first)
        counts = (chunk.data, chunk.indices, chunk.indptr)
        future = pool.submit(_chunk_task, run.job, counts, keep, totals)
        pending.append((first, chunk.shape[0], future))
        while len(pending) >= window:
            done_first, n, done = pending.popleft()
            run.write(done_first, n, done.result())
    while pending:
        done_first, n, done = pending.popleft()
        run.write(done_first, n, done.result())


def _pooled_ranges(run: _Run, pool: Any, reader: tuple, processes: int, window: int) -> None:
    """Ranges of cells read, encoded and written by the workers; their files become shards."""
    from genoformer.sc.io import check_raw_counts

    n_cells, size = run.cells.n_cells, run.chunk_size
    # About four tasks per worker, for balance, and at most _TASK_CHUNKS chunks each.
    per_task = min(_TASK_CHUNKS, max(1, math.ceil(n_cells / (4 * processes * size))))
    step = per_task * size
    parts = run.corpus.directory / ".parts"
    parts.mkdir()
    pending: deque = deque()

    def collect() -> None:
        part, first, stop, future = pending.popleft()
        written, empty, bad = future.result()
        if bad is not None:  # the readers' message, naming the cell
            row, value = bad
            single = _single_value_matrix(value)
            check_raw_counts(
                single,
                run.cells.source,
                row,
                layer=run.cells.layer,
                cell_ids=run.cells.obs.index,
                layers=run.cells.layers,
            )
            raise InputError(f"value {value:g} is not a count", file=run.cells.source)
        if written:
            run.corpus.adopt(part, written)
        else:
            part.unlink(missing_ok=True)
        run.n_empty += empty
        for _ in range(math.ceil((stop - first) / size)):
            run.advance()

    for first in range(0, n_cells, step):
        stop = min(first + step, n_cells)
        keep, counts, attributes, cell_ids = run.slices(first, stop)
        part = parts / f"part-{first:012d}.arrow"
        future = pool.submit(
            _range_task,
            run.job,
            reader,
            first,
            stop,
            size,
            keep,
            counts,
            attributes,
            cell_ids,
            part,
        )
        pending.append((part, first, stop, future))
        while len(pending) >= window:
            collect()
    while pending:
        collect()
    shutil.rmtree(parts)


def _single_value_matrix(value: float) -> Any:
    import scipy.sparse as sp

    return sp.csr_matrix((np.array([value]), np.array([0]), np.array([0, 1])), shape=(1, 1))


# ---------------------------------------------------------------------------------------------
# The public API


@dataclass(frozen=True)
class TokenizeSettings:
    """How :func:`tokenize` reads and encodes (each also a keyword argument of it).

    Attributes
    ----------
    cell_attributes
        obs columns to copy into the corpus (a list, or Geneformer's ``{obs column: corpus
        column}``). ``cell_id`` (the obs index) and ``cell_index`` (the row in the input)
        are always written.
    encoding
        ``"rank"`` (Geneformer) or ``"binned"``: the same input_ids plus a ``values`` column of
        scGPT-style per-cell quantile bins (see :mod:`genoformer.sc.ranking`).
    n_bins
        Bins of the binned encoding, 0 included (values run 1 .. n_bins - 1).
    layer, gene_id_column, backed
        How to read the input (see :func:`genoformer.sc.io.open_cells`). By default an
        .h5ad stored by cell (CSR) is read from disk chunk by chunk, whatever its size: the
        tokenizer reads each cell once.
    chunk_size
        Cells per chunk.
    processes
        Processes that encode chunks; the corpus is the same for any number. Given a file,
        each worker reads its own cells from disk; given an AnnData object, this process
        reads the chunks and sends them.
    min_gene_share
        Least share of the input's genes that must be in the vocabulary.
    progress
        Show a progress bar over chunks.
    overwrite
        Replace what an earlier run wrote to ``out`` (without it, such an ``out`` is refused).
    """

    cell_attributes: Sequence[str] | Mapping[str, str] | None = None
    encoding: Literal["rank", "binned"] = "rank"
    n_bins: int = 51
    layer: str | None = None
    gene_id_column: str | None = None
    chunk_size: int = CHUNK_SIZE
    processes: int = 1
    min_gene_share: float = MIN_GENE_SHARE
    backed: bool | None = None
    progress: bool = True
    overwrite: bool = False


@shared_docs
def tokenize(
    source: str | os.PathLike | Any,
    *,
    out: str | os.PathLike,
    vocabulary: GeneVocabulary | str | os.PathLike,
    dictionaries: str | os.PathLike | None = None,
    settings: TokenizeSettings | None = None,
    **overrides: Any,
) -> RunResult:
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
    {dictionaries}
    {settings:TokenizeSettings}
        How to read and encode, e.g. ``processes=2, cell_attributes=["cell_type"]``.

    Returns
    -------
    RunResult
        ``run_dir`` is the corpus; ``metrics``: ``n_cells`` (cells written), ``n_dropped``
        (by reason: ``filter_pass``, the column is not 1; ``no_tokens``, no counts on any
        vocabulary gene), ``gene_share`` (share of the input's genes in the vocabulary),
        ``seconds``; ``outputs["corpus"]``: its Arrow files.
    """
    from genoformer.engine.runs import RunDir
    from genoformer.sc.io import open_cells
    from genoformer.sc.vocabulary import resolve

    start = time.perf_counter()
    options = with_overrides(TokenizeSettings, settings, overrides, "tokenize")
    _check_settings(options)
    vocab = resolve(vocabulary, dictionaries)
    out = Path(out)
    check_out(out, options.overwrite)
    arguments = {
        "source": source if isinstance(source, (str, os.PathLike)) else "<AnnData>",
        "out": out,
        "vocabulary": vocab.name,
        **{k: v for k, v in dataclasses.asdict(options).items() if k not in _UNRECORDED},
        "n_bins": options.n_bins if options.encoding == "binned" else None,
    }
    backed, reader = _reading_plan(source, options)
    request = _Request(
        vocab, _encode_options(vocab, options.encoding, options.n_bins), options, reader, start
    )
    pool = _start_pool(options.processes) if options.processes > 1 else None
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        layer, gene_id_column = options.layer, options.gene_id_column
        with open_cells(source, layer=layer, gene_id_column=gene_id_column, backed=backed) as cells:
            manifest = RunDir(tmp, command="sc tokenize", arguments=arguments)
            metrics = _write_corpus(manifest, cells, request, pool)
            written = manifest.finish(metrics)
        move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        release_workspaces()
        if pool is not None:
            # Their work is done (or abandoned): let the workers exit in their own time.
            pool.shutdown(wait=False, cancel_futures=True)
    written.metrics["seconds"] = time.perf_counter() - start
    return written.relocated(out)


# Settings that do not change the corpus, left out of its recorded arguments (and fingerprint).
_UNRECORDED = ("progress", "overwrite")


@dataclass(frozen=True)
class _Request:
    """What one :func:`tokenize` call asks for, once its arguments are checked."""

    vocab: GeneVocabulary
    options: EncodeOptions
    settings: TokenizeSettings
    reader: tuple | None  # how workers read their own cells (None: this process reads)
    start: float


def _check_settings(settings: TokenizeSettings) -> None:
    if settings.encoding not in ("rank", "binned"):
        raise InputError(
            f"unknown encoding {settings.encoding!r}",
            where=cli_option("encoding"),
            fix="use 'rank' or 'binned'",
        )
    if settings.encoding == "binned" and not 3 <= settings.n_bins <= 2**15:
        raise InputError(
            f"{settings.n_bins} bins, expected 3 to 32,768",
            where=setting("n_bins"),
            fix="use e.g. 51 (scGPT)",
        )
    for name, value in (("chunk_size", settings.chunk_size), ("processes", settings.processes)):
        if value < 1:
            raise InputError(
                f"{value}, expected 1 or more", where=setting(name), fix="use 1 or more"
            )


def _encode_options(vocab: GeneVocabulary, encoding: str, n_bins: int) -> EncodeOptions:
    special = 2 if vocab.has_cls_eos else 0
    if vocab.input_size <= special:
        raise InputError(f"input size {vocab.input_size} leaves no room for genes")
    return EncodeOptions(
        max_genes=vocab.input_size - special,
        cls_id=vocab.cls_id if vocab.has_cls_eos else -1,
        eos_id=vocab.eos_id if vocab.has_cls_eos else -1,
        n_bins=n_bins if encoding == "binned" else 0,
    )


def _reading_plan(source: Any, settings: TokenizeSettings) -> tuple[bool | None, tuple | None]:
    """Whether to read from disk, and how worker processes read their own cells (if they do)."""
    from genoformer.sc.io.rows import is_csr_h5ad

    layer, backed, processes = settings.layer, settings.backed, settings.processes
    csr_file = is_csr_h5ad(source, layer)
    if backed is None and csr_file:
        backed = True
    reader = None
    if processes > 1 and isinstance(source, (str, os.PathLike)):
        if csr_file:
            reader = ("csr", str(source), layer)
        elif Path(source).suffix.lower() in (".zarr", ".loom", ".h5", ".hdf5"):
            reader = ("cells", str(source), layer, settings.gene_id_column)
        # (a 10x matrix directory is text, parsed whole: this process reads it)
        if reader is not None:
            backed = True  # this process only reads the cell and gene tables
    return backed, reader


def _write_corpus(manifest: RunDir, cells: CellMatrix, request: _Request, pool: Any) -> dict:
    """Tokenize every cell into the corpus beside ``manifest``; the run's metrics."""
    vocab = request.vocab
    plan = plan_genes(
        cells.gene_ids,
        vocab,
        gene_symbols=cells.gene_symbols,
        min_gene_share=request.settings.min_gene_share,
        source=cells.source,
    )
    columns = _attribute_columns(cells, request.settings.cell_attributes)
    attributes = [_arrow_column(cells.obs[column]) for column in columns]
    tokens = token_dtype(vocab)
    types = {name: a.type for name, a in zip(columns.values(), attributes, strict=True)}
    schema = corpus_schema(tokens, request.settings.encoding == "binned", types)
    corpus = CorpusWriter(manifest.path, schema)
    keep = _filter_pass(cells)
    n_chunks = math.ceil(cells.n_cells / request.settings.chunk_size)
    if pool is not None and n_chunks < 2:  # nothing to share out
        pool.shutdown(wait=False, cancel_futures=True)
        pool = None
    with (
        progress_bar(enabled=request.settings.progress, unit="chunks") as bar,
        manifest.step("tokenize"),
    ):
        task = bar.add_task(f"tokenizing {Path(cells.source).name}", total=n_chunks)
        run = _Run(
            job=_Job(plan, request.options, schema, tokens, cells.source),
            cells=cells,
            chunk_size=request.settings.chunk_size,
            keep=keep,
            obs_counts=cells.totals(),
            attributes=attributes,
            cell_ids=_arrow_column(np.asarray(cells.obs.index, dtype=object).astype(str)),
            corpus=corpus,
            advance=lambda: bar.advance(task),
        )
        try:
            window = 2 * request.settings.processes
            if pool is None:
                _in_process(run)
            elif request.reader is None:
                _pooled_chunks(run, pool, window=window)
            else:
                _pooled_ranges(run, pool, request.reader, request.settings.processes, window=window)
        finally:
            corpus.close()
    return _finish_corpus(manifest, run, plan, request)


def _finish_corpus(manifest: RunDir, run: _Run, plan: GenePlan, request: _Request) -> dict:
    """Seal the corpus, record what was tokenized; the run's metrics."""
    from genoformer.sc.vocabulary import CORPUS_COPY, is_release

    cells, corpus, vocab = run.cells, run.corpus, request.vocab.name
    n_filtered = int(cells.n_cells - run.keep.sum())
    n_written = corpus.n_cells
    if n_written == 0:
        raise InputError(
            f"no cell has counts on a gene of the {vocab} vocabulary "
            f"({n_filtered:,} of {cells.n_cells:,} cells failed filter_pass)",
            file=cells.source,
            fix="check that the matrix holds counts and that filter_pass keeps cells",
        )
    # A fingerprint that names what was tokenized (datasets caches by it).
    fingerprint = hashlib.sha256(
        json.dumps(manifest.manifest["arguments"], sort_keys=True).encode()
        + f"{cells.n_cells}:{n_written}".encode()
    ).hexdigest()[:16]
    corpus.finish(fingerprint)
    manifest.record_output("corpus", [manifest.path / f["filename"] for f in corpus.data_files])
    if not is_release(vocab):  # the corpus carries its vocabulary (Geneformer's: by name)
        manifest.record_output("vocabulary", request.vocab.save(manifest.path / CORPUS_COPY))
    dropped = {"filter_pass": n_filtered, "no_tokens": run.n_empty}
    seconds = time.perf_counter() - request.start
    manifest.record_results(
        "tokenize",
        {
            "cells_in": cells.n_cells,
            "cells_out": n_written,
            "dropped": dropped,
            "genes": {
                "input": plan.n_input,
                "in_vocabulary": plan.n_matched,
                "share": round(plan.share, 6),
                "matched_by": plan.by,
            },
            "vocabulary": vocab,
            "input_size": request.vocab.input_size,
            "encoding": request.settings.encoding,
            "seconds": round(seconds, 3),
            "cells_per_second": round(cells.n_cells / seconds, 1),
        },
    )
    return {"n_cells": n_written, "n_dropped": dropped, "gene_share": plan.share}
