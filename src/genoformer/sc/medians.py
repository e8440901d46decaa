"""Gene medians: each gene's median of non-zero normalised expression across a corpus.

Geneformer divides a cell's normalised counts by these medians before ranking its genes, so
a gene that is highly expressed everywhere (a housekeeping gene) ranks below one that is
unusually high in this cell. For a corpus of .h5ad/.loom/.zarr/10x files:

- each cell's counts are divided by its total and multiplied by 10,000. The total is the
  ``n_counts`` cell attribute when present (as the tokenizer does), else the sum over all
  of the cell's genes;
- cells whose ``filter_pass`` attribute is present and not 1 are left out, as the
  tokenizer leaves them out;
- gene ids are mapped through ``id_mapping`` when one is given (ids it does not know are
  left out, as are genes with an empty id); the counts of ids that map to one gene (or of
  one id that appears twice) are summed within each cell first;
- a gene's median is over the cells where it is not zero. A gene that is never expressed
  has no median and is left out of the vocabulary (it stays in the table, with
  ``n_nonzero`` 0).

Two ways to compute it:

- exact (default): every non-zero value is kept in memory (12 bytes each, twice that
  while they are grouped by gene) and the median taken as ``numpy.median`` does; for
  corpora whose non-zeros fit in memory.
- streaming: a histogram per gene over fine log-spaced bins, with memory independent of the
  number of cells (see :class:`StreamingMedians` for the bound on the relative error).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError
from genoformer.engine.options import with_overrides
from genoformer.engine.progress import progress_bar
from genoformer.engine.runs import RunDir, write_table
from genoformer.sc.io import CellMatrix, open_cells
from genoformer.sc.vocabulary import GeneVocabulary

TARGET_SUM = 10_000.0
VOCABULARY_FILE = "vocabulary.json"
TABLE_FILE = "gene_medians.tsv"
_INPUT_SUFFIXES = (".h5ad", ".loom", ".zarr", ".h5")


# ---------------------------------------------------------------------------------------
# Accumulators: feed (gene, value) pairs chunk by chunk, then ask for the medians
# ---------------------------------------------------------------------------------------


class ExactMedians:
    """Exact medians: keeps every non-zero value (8 bytes) and its gene (4 bytes)."""

    def __init__(self) -> None:
        self._genes: list[np.ndarray] = []
        self._values: list[np.ndarray] = []

    def add(self, genes: np.ndarray, values: np.ndarray) -> None:
        """Add non-zero ``values`` of the genes with indices ``genes``."""
        self._genes.append(np.asarray(genes, dtype=np.int32))
        self._values.append(np.asarray(values, dtype=np.float64))

    def result(self, n_genes: int) -> tuple[np.ndarray, np.ndarray]:
        """``(medians, n_nonzero)`` for genes ``0..n_genes-1``; NaN where no value."""
        genes = np.concatenate(self._genes) if self._genes else np.zeros(0, np.int32)
        values = np.concatenate(self._values) if self._values else np.zeros(0)
        self._genes, self._values = [genes], [values]  # the pieces can go now
        # One row holding every pair; converting it to CSC groups the values by gene with a
        # counting sort, far faster than a stable argsort of the gene indices.
        grouped = sp.csr_matrix(
            (values, genes, np.array([0, len(values)])), shape=(1, n_genes)
        ).tocsc()
        del genes, values
        bounds, data = grouped.indptr, grouped.data
        n_nonzero = np.diff(bounds).astype(np.int64)
        medians = np.full(n_genes, np.nan)
        for gene in np.flatnonzero(n_nonzero):
            part = data[bounds[gene] : bounds[gene + 1]]
            n = len(part)
            low, high = (n - 1) // 2, n // 2
            part = np.partition(part, [low, high])
            # The mean of the two middle values, added then halved: numpy.median's arithmetic.
            medians[gene] = (part[low] + part[high]) / 2
        return medians, n_nonzero


class StreamingMedians:
    """Approximate medians from a histogram per gene over log-spaced bins.

    Each octave ``[2**e, 2**(e+1))`` is cut into ``bins_per_octave`` bins of equal width
    (the top mantissa bits of the float64 value, so a value's bin is exact). A median is
    read off the histogram as the point of its bin that minimises the worst relative error;
    with bins of relative width ``d = 1 / bins_per_octave`` at most, the relative error of
    every median is at most ``d / (2 + d)``: 0.39% for the default 128 bins per octave,
    0.195% for 256.

    Memory is ``n_genes x octaves spanned x bins_per_octave x 4`` bytes, whatever the number
    of cells: normalised values between 1e-2 and 1e4 span 20 octaves, so 40,000 genes take
    410 MB at 128 bins per octave (205 MB at 64, with a bound of 0.78%). The range of
    octaves grows as values arrive.
    """

    def __init__(self, bins_per_octave: int = 128) -> None:
        if (
            bins_per_octave < 1
            or bins_per_octave & (bins_per_octave - 1)
            or bins_per_octave > 2**20
        ):
            raise ValueError(f"bins_per_octave must be a power of two, got {bins_per_octave}")
        self.bins_per_octave = bins_per_octave
        self._shift = 52 - (bins_per_octave.bit_length() - 1)  # float64 has 52 mantissa bits
        self._counts = np.zeros((0, 0), dtype=np.uint32)
        self._first = 0  # absolute bin index of column 0
        self._n_nonzero = np.zeros(0, dtype=np.int64)

    @property
    def relative_error(self) -> float:
        """The bound on the relative error of every median."""
        width = 1.0 / self.bins_per_octave
        return width / (2 + width)

    def _bins(self, values: np.ndarray) -> np.ndarray:
        # For positive floats, the bit pattern read as an integer increases with the value;
        # dropping the low mantissa bits leaves (exponent, top mantissa bits): the bin.
        return np.ascontiguousarray(values, dtype=np.float64).view(np.int64) >> self._shift

    def _edges(self, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low = (bins << self._shift).view(np.float64)
        high = ((bins + 1) << self._shift).view(np.float64)
        return low, high

    def _fit(self, n_genes: int, low_bin: int, high_bin: int) -> None:
        """Grow the histogram to ``n_genes`` rows and bins ``low_bin..high_bin``."""
        rows, width = self._counts.shape
        octave = self.bins_per_octave
        first, stop = self._first, self._first + width
        if width == 0:
            first, stop = low_bin, low_bin
        # Whole octaves, so that growing again is rare.
        first = min(first, low_bin // octave * octave)
        stop = max(stop, (high_bin // octave + 1) * octave)
        if n_genes <= rows and first == self._first and stop - first == width:
            return
        counts = np.zeros((max(rows, n_genes), stop - first), dtype=np.uint32)
        if width:
            offset = self._first - first
            counts[:rows, offset : offset + width] = self._counts
        self._counts, self._first = counts, first
        self._n_nonzero = np.concatenate(
            [self._n_nonzero, np.zeros(len(counts) - len(self._n_nonzero), np.int64)]
        )

    def add(self, genes: np.ndarray, values: np.ndarray) -> None:
        """Add non-zero (positive) ``values`` of the genes with indices ``genes``."""
        genes = np.asarray(genes, dtype=np.int64)
        if len(genes) == 0:
            return
        bins = self._bins(values)
        self._fit(int(genes.max()) + 1, int(bins.min()), int(bins.max()))
        width = self._counts.shape[1]
        keys = np.sort(genes * width + (bins - self._first))
        # Run-length counts of the sorted keys: one scattered add per distinct (gene, bin).
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        counts = np.diff(np.r_[starts, len(keys)])
        self._counts.reshape(-1)[keys[starts]] += counts.astype(np.uint32)
        self._n_nonzero += np.bincount(genes, minlength=len(self._n_nonzero))

    def result(self, n_genes: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """``(medians, n_nonzero)`` for genes ``0..n_genes-1``; NaN where no value."""
        self._fit(n_genes, self._first, self._first)
        n_nonzero = self._n_nonzero[:n_genes].copy()
        medians = np.full(n_genes, np.nan)
        low_rank, high_rank = (n_nonzero - 1) // 2, n_nonzero // 2
        for start in range(0, n_genes, block):
            rows = slice(start, min(start + block, n_genes))
            seen = np.cumsum(self._counts[rows], axis=1, dtype=np.int64)
            point = np.zeros(seen.shape[0])
            for rank in (low_rank[rows], high_rank[rows]):
                # The bin of the rank-th smallest value: bins whose cumulative count <= rank.
                bins = (seen <= rank[:, None]).sum(axis=1) + self._first
                low, high = self._edges(bins)
                # Harmonic mean of the edges: equal worst relative error on either side.
                point += 2 * low * high / (low + high)
            medians[rows] = np.where(n_nonzero[rows] > 0, point / 2, np.nan)
        return medians, n_nonzero


# ---------------------------------------------------------------------------------------
# Reading a corpus into normalised non-zero values per gene
# ---------------------------------------------------------------------------------------


def _expand(inputs: Any) -> list[Any]:
    """Files (and AnnData objects) of the corpus; a folder of inputs expands to its files."""
    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    found: list[Any] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            found.append(item)  # an AnnData object
            continue
        path = Path(item)
        is_store = path.suffix == ".zarr" or any(
            (path / marker).exists() for marker in (".zgroup", "zarr.json")
        )
        tenx = path.is_dir() and any(
            p.name.endswith(("matrix.mtx", "matrix.mtx.gz")) for p in path.iterdir()
        )
        if path.is_dir() and not is_store and not tenx:
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in _INPUT_SUFFIXES)
            if not files:
                raise InputError(
                    "no .h5ad, .loom, .zarr or .h5 files in the folder",
                    file=path,
                    fix="pass the files of the corpus, or the folder that holds them",
                )
            found.extend(files)
        else:
            found.append(item)
    if not found:
        raise InputError("empty corpus: no input files", fix="pass one or more .h5ad/.loom files")
    return found


@dataclass
class _GeneIndex:
    """Gene ids of the whole corpus, numbered in order of first appearance."""

    id_mapping: dict[str, str] | None
    ids: list[str]
    numbers: dict[str, int]
    symbols: dict[str, str]

    def columns(
        self, cells: CellMatrix, stats: dict[str, int]
    ) -> tuple[np.ndarray, sp.csr_matrix | None]:
        """Corpus gene number of each column (-1: left out), and a column-summing matrix
        when several columns map to one gene."""
        targets = []
        for gene in cells.gene_ids:
            if self.id_mapping is not None:
                gene = self.id_mapping.get(gene) or self.id_mapping.get(gene.upper(), "")
            targets.append(str(gene))
        local = {t: i for i, t in enumerate(dict.fromkeys(t for t in targets if t))}
        for gene in local:
            if gene not in self.numbers:
                self.numbers[gene] = len(self.ids)
                self.ids.append(gene)
        column_target = np.array([local.get(t, -1) for t in targets], dtype=np.int64)
        stats["genes_without_id"] += int((column_target < 0).sum())
        if cells.gene_symbols is not None:
            for symbol, gene in zip(cells.gene_symbols, targets, strict=True):
                if symbol and gene:
                    self.symbols.setdefault(str(symbol), gene)
        number = np.array([self.numbers[g] for g in local], dtype=np.int64)
        kept = np.flatnonzero(column_target >= 0)
        if len(local) == len(kept):
            return np.where(column_target >= 0, number[column_target], -1), None
        summing = sp.csr_matrix(
            (np.ones(len(kept)), (kept, column_target[kept])),
            shape=(len(column_target), len(local)),
        )
        return number, summing


def _kept_cells(cells: CellMatrix) -> np.ndarray | None:
    if "filter_pass" not in cells.obs.columns:
        return None
    return (cells.obs["filter_pass"] == 1).to_numpy(dtype=bool)


def _normalised(
    cells: CellMatrix, index: _GeneIndex, chunk_size: int, stats: dict[str, int]
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """``(corpus gene numbers, normalised values, cells read)`` of the non-zeros, chunk by
    chunk."""
    genes_of_column, summing = index.columns(cells, stats)
    all_known = bool((genes_of_column >= 0).all())
    totals_attr = cells.totals()
    passing = _kept_cells(cells)
    for start, chunk in cells.chunks(chunk_size):
        chunk_rows = chunk.shape[0]
        stop = start + chunk_rows
        cells.check(chunk, start)
        rows = np.arange(start, stop)
        if passing is not None:
            keep = passing[start:stop]
            chunk, rows = chunk[keep], rows[keep]
        chunk = chunk.astype(np.float64)  # a copy, so dropping stored zeros is safe
        chunk.eliminate_zeros()
        if totals_attr is not None:
            totals = totals_attr[rows]
        else:
            totals = np.asarray(chunk.sum(axis=1)).ravel()
        if summing is not None:
            chunk = sp.csr_matrix(chunk @ summing)
        has_counts = np.diff(chunk.indptr) > 0
        bad = has_counts & ~(totals > 0)  # also NaN
        if bad.any():
            row = int(rows[np.argmax(bad)])
            raise InputError(
                f"n_counts is {float(totals[np.argmax(bad)]):g} for a cell with counts",
                file=cells.source,
                where=f"cell {cells.obs.index[row]!r} (row {row})",
                fix="give every cell its total count in n_counts, or drop the column",
            )
        per_value = np.repeat(np.where(has_counts, totals, 1.0), np.diff(chunk.indptr))
        values = chunk.data / per_value * TARGET_SUM
        genes = genes_of_column[chunk.indices]
        if not all_known:
            known = genes >= 0
            genes, values = genes[known], values[known]
        stats["cells"] += len(rows)
        stats["cells_filtered_out"] += chunk_rows - len(rows)
        stats["cells_with_counts"] += int(has_counts.sum())
        yield genes, values, chunk_rows


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A callback ``(description, done, total)`` for a progress bar (drawn only when ``show``)."""
    with progress_bar(enabled=show, unit="cells", transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=total)
            bar.update(tasks[description], completed=done)

        yield update


# ---------------------------------------------------------------------------------------
# The public function
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediansSettings:
    """How :func:`gene_medians` reads and what vocabulary it makes (each also a keyword
    argument of it).

    Attributes
    ----------
    streaming
        Approximate the medians with bounded memory (:class:`StreamingMedians`) instead of
        keeping every non-zero value.
    chunk_size
        Cells read at a time.
    name, input_size, special
        The vocabulary's name, model input size and special tokens (see
        :meth:`GeneVocabulary.from_medians`: special tokens first, then genes by id).
    layer, gene_id_column, backed
        Passed to :func:`~genoformer.sc.io.open_cells`.
    id_mapping
        Map gene ids (or their upper case) to the ids of the vocabulary; ids it lacks are
        left out, ids that map to one gene have their counts summed. Stored in the
        vocabulary so the tokenizer maps the same way.
    symbol_to_id
        Symbol to Ensembl id map stored in the vocabulary; by default the symbols the inputs
        have beside their Ensembl ids.
    bins_per_octave
        Resolution of the streaming histograms (a power of two).
    progress
        Show a progress bar per input.
    overwrite
        Replace what an earlier run wrote to ``out`` (without it, such an ``out`` is refused).
    """

    streaming: bool = False
    chunk_size: int = 1024
    name: str = "custom"
    input_size: int = 4096
    special: Iterable[str] = ("pad", "mask", "cls", "eos")
    layer: str | None = None
    gene_id_column: str | None = None
    id_mapping: dict[str, str] | None = None
    symbol_to_id: dict[str, str] | None = None
    bins_per_octave: int = 128
    backed: bool | None = None
    progress: bool = False
    overwrite: bool = False


@shared_docs
def gene_medians(
    inputs: str | os.PathLike | Any | Sequence[str | os.PathLike | Any],
    *,
    out: str | os.PathLike | None = None,
    settings: MediansSettings | None = None,
    **overrides: Any,
) -> GeneVocabulary:
    """Each gene's median of non-zero normalised expression across a corpus, as a vocabulary.

    Parameters
    ----------
    inputs
        A .h5ad, .loom, .zarr or 10x file, an AnnData object, a folder of such files, or a
        list of these. Raw counts.
    out
        A run directory to write ``vocabulary.json`` (:meth:`GeneVocabulary.save`),
        ``gene_medians.tsv`` (``gene_id``, ``n_nonzero`` cells, ``median``; every gene,
        also those never expressed) and ``manifest.json``.
    {settings:MediansSettings}
        For example ``streaming=True``.

    Returns
    -------
    GeneVocabulary
        Genes with at least one non-zero value, with their medians.
    """
    started = time.perf_counter()
    options = with_overrides(MediansSettings, settings, overrides, "gene_medians")
    if options.chunk_size < 1:
        raise InputError(
            f"chunk size {options.chunk_size}, expected at least 1",
            fix="pass --chunk-size 1 or more",
        )
    sources = _expand(inputs)
    accumulator, index, stats = _accumulate(sources, options)
    medians, n_nonzero = accumulator.result(len(index.ids))
    if not np.isfinite(medians).any():
        raise InputError(
            f"empty corpus: no cell has a non-zero count ({stats['cells']} cells read)",
            file=str(sources[0]) if len(sources) == 1 else None,
            fix="pass raw counts with expressed genes (and filter_pass = 1 for some cells)",
        )
    expressed = {g: float(m) for g, m in zip(index.ids, medians, strict=True) if np.isfinite(m)}
    symbols = (
        options.symbol_to_id
        if options.symbol_to_id is not None
        else {s: g for s, g in index.symbols.items() if g in expressed}
    )
    vocabulary = GeneVocabulary.from_medians(
        expressed,
        name=options.name,
        input_size=options.input_size,
        special=options.special,
        symbol_to_id=symbols,
        id_mapping=options.id_mapping,
    )
    if out is not None:
        table = pd.DataFrame({"gene_id": index.ids, "n_nonzero": n_nonzero, "median": medians})
        arguments = {
            **dataclasses.asdict(options),
            "inputs": [
                str(s) if isinstance(s, (str, os.PathLike)) else "<AnnData>" for s in sources
            ],
            "special": list(options.special),
            "id_mapping": None
            if options.id_mapping is None
            else f"{len(options.id_mapping)} entries",
            "bins_per_octave": options.bins_per_octave if options.streaming else None,
        }
        for unrecorded in ("symbol_to_id", "backed", "progress"):
            arguments.pop(unrecorded)
        results = {
            **stats,
            "genes": len(index.ids),
            "genes_with_median": len(expressed),
            "relative_error_bound": accumulator.relative_error if options.streaming else 0.0,
            "seconds": round(time.perf_counter() - started, 3),
        }
        _write_run(
            Path(out), vocabulary, table.sort_values("gene_id", kind="stable"), arguments, results
        )
    return vocabulary


def _accumulate(
    sources: list[Any], options: MediansSettings
) -> tuple[ExactMedians | StreamingMedians, _GeneIndex, dict[str, int]]:
    """Every non-zero normalised value of every input, gathered gene by gene."""
    accumulator: ExactMedians | StreamingMedians = (
        StreamingMedians(options.bins_per_octave) if options.streaming else ExactMedians()
    )
    index = _GeneIndex(id_mapping=options.id_mapping, ids=[], numbers={}, symbols={})
    stats = dict.fromkeys(
        ("files", "cells", "cells_with_counts", "cells_filtered_out", "genes_without_id"), 0
    )
    read = {"layer": options.layer, "gene_id_column": options.gene_id_column}
    with _progress(options.progress) as show:
        for source in sources:
            with open_cells(source, backed=options.backed, **read) as cells:
                label = f"medians: {Path(cells.source).name}"
                done = 0
                chunks = _normalised(cells, index, options.chunk_size, stats)
                for genes, values, n_read in chunks:
                    accumulator.add(genes, values)
                    done += n_read
                    show(label, done, cells.n_cells)
            stats["files"] += 1
    return accumulator, index, stats


def _write_run(
    out: Path,
    vocabulary: GeneVocabulary,
    table: pd.DataFrame,
    arguments: dict[str, Any],
    results: dict[str, Any],
) -> None:
    run = RunDir(out, command="sc medians", arguments=arguments, overwrite=arguments["overwrite"])
    run.record_output("vocabulary", vocabulary.save(run.file(VOCABULARY_FILE)))
    run.record_output("table", write_table(run.file(TABLE_FILE), table))
    run.record_results("medians", results)
    run.finish()
