"""A Dask engine: apply a per-chunk function to every chunk of variants on a cluster.

The client never reads genotypes. It splits the selected variants into the same blocks
``source.chunks(chunk_size, ...)`` would yield and submits one task per block; each task
opens the genotype file on its worker (once per worker thread, then cached), reads its own
block and returns ``func(variant_indices, G)``. Only the file path, the block's indices and
the (small) results cross the network, so the workers must see the file at the same path
(a shared file system). PLINK .bed files suit this best: a task reads its block directly,
whereas a VCF task has to scan the file from the start.

By default a ``distributed.LocalCluster`` is started inside this process with threads
(``processes=False``): it starts in about a second, needs no pickling of ``func`` (a
lambda or closure works), and numpy and bed-reader release the GIL, so threads run chunks
in parallel. ``processes=True`` starts worker processes instead (``func`` must then be
picklable by cloudpickle); ``scheduler="tcp://host:8786"`` (or a ``distributed.Client``)
uses an existing cluster.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

__all__ = ["map_chunks", "source_path"]

T = TypeVar("T")
_LOCAL = threading.local()


def source_path(source: Any) -> str:
    """The file a ``GenotypeSource`` (or a path) reads, as workers will open it."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    path = getattr(source, "path", None)
    if path is None:
        raise TypeError(f"cannot tell which file {source!r} reads; pass its path instead")
    return os.fspath(path)


def _worker_source(path: str) -> Any:
    """The genotype file opened once per worker thread (bed-reader handles are not shared)."""
    cache = getattr(_LOCAL, "sources", None)
    if cache is None:
        cache = _LOCAL.sources = {}
    if path not in cache:
        from genoformer.gwas.io.genotypes import open_genotypes

        # One decoding thread: the cluster already runs one chunk per core.
        cache[path] = open_genotypes(path, num_threads=1)
    return cache[path]


def _run_chunk(path: str, func: Callable[[np.ndarray, np.ndarray], T], samples, block) -> T:
    source = _worker_source(path)
    ((index, G),) = source.chunks(len(block), samples=samples, variants=block)
    return func(index, G)


def _blocks(n_variants: int, variants: Any, chunk_size: int) -> list[np.ndarray]:
    """The variant blocks ``GenotypeSource.chunks`` yields: selection sorted, then split."""
    if variants is None:
        selected = np.arange(n_variants, dtype=np.int64)
    else:
        array = np.asarray(variants)
        if array.dtype == bool:
            if array.shape != (n_variants,):
                raise ValueError(f"variants mask has length {array.shape}, expected {n_variants}")
            selected = np.flatnonzero(array)
        else:
            selected = np.unique(array.astype(np.int64, copy=False).ravel())
            if selected.size and (selected[0] < 0 or selected[-1] >= n_variants):
                raise IndexError(f"variants index out of range 0..{n_variants - 1}")
    return [selected[i : i + chunk_size] for i in range(0, selected.size, chunk_size)]


def map_chunks(
    source: Any,
    func: Callable[[np.ndarray, np.ndarray], T],
    *,
    chunk_size: int = 4096,
    samples: np.ndarray | None = None,
    variants: np.ndarray | None = None,
    scheduler: str | Any | None = None,
    n_workers: int | None = None,
    processes: bool = False,
    max_pending: int | None = None,
) -> Iterator[T]:
    """Yield ``func(variant_indices, G)`` for every chunk, computed on a Dask cluster.

    Gives the same results, in the same order, as
    ``(func(i, G) for i, G in source.chunks(chunk_size, samples=samples, variants=variants))``.

    Parameters
    ----------
    source
        A ``GenotypeSource`` or a path to genotypes (the workers open the file themselves).
    func
        Per-chunk work; ``G`` is float32 ``(n_selected_samples, n_chunk)``, NaN where missing.
    chunk_size
        Variants per task.
    samples, variants
        Selections as for ``GenotypeSource.chunks`` (integer indices or boolean masks).
    scheduler
        ``None``: start a local cluster for this call (closed when the iterator ends); an
        address such as ``"tcp://10.0.0.1:8786"``, or a ``distributed.Client``, to use an
        existing cluster.
    n_workers
        Local cluster only: worker threads (or processes); default ``min(cores, 4)``.
    processes
        Local cluster only: worker processes instead of threads.
    max_pending
        Tasks in flight at once (default: twice the cluster's threads); bounds the memory
        held by results that are computed but not yet yielded.

    Yields
    ------
    The result of ``func`` for each chunk, in chunk order.
    """
    import distributed  # noqa: F401 - fails here, before any work, where it is not installed

    if chunk_size < 1:
        raise ValueError(f"chunk size must be at least 1, got {chunk_size}")
    path = source_path(source)
    blocks = _blocks(_n_variants(source, path), variants, chunk_size)
    client, cluster, own_client = _connect(scheduler, n_workers, processes)
    try:
        yield from _stream(client, path, func, samples, blocks, max_pending)
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


def _n_variants(source: Any, path: str) -> int:
    """How many variants ``source`` (a ``GenotypeSource`` or the path ``path``) holds."""
    if isinstance(source, (str, os.PathLike)):
        from genoformer.gwas.io.genotypes import open_genotypes

        return open_genotypes(path).n_variants
    return source.n_variants


def _connect(scheduler: str | Any | None, n_workers: int | None, processes: bool) -> tuple:
    """A client of the cluster ``scheduler`` names, or of a local cluster started here.

    Returns ``(client, cluster, own_client)``: ``cluster`` is the local cluster (None for an
    existing one), ``own_client`` whether the client is to be closed when the work is done.
    """
    from distributed import Client, LocalCluster

    if scheduler is None:
        workers = n_workers or min(os.cpu_count() or 1, 4)
        if processes:
            kwargs: dict[str, Any] = {"n_workers": workers, "threads_per_worker": 1}
        else:
            kwargs = {"n_workers": 1, "threads_per_worker": workers}
        cluster = LocalCluster(
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            **kwargs,
        )
        return Client(cluster), cluster, True
    if isinstance(scheduler, Client):
        return scheduler, None, False
    return Client(scheduler), None, True


def _stream(
    client: Any,
    path: str,
    func: Callable[[np.ndarray, np.ndarray], T],
    samples: np.ndarray | None,
    blocks: list[np.ndarray],
    max_pending: int | None,
) -> Iterator[T]:
    """Submit one task per block, at most ``max_pending`` in flight, and yield the results in
    block order; tasks still pending are cancelled when the iteration stops."""
    pending: deque = deque()
    try:
        threads = sum(client.nthreads().values()) or 1
        limit = max_pending or 2 * threads
        # Sent once to the workers rather than with every task.
        shared_samples = (
            None if samples is None else client.scatter(np.asarray(samples), broadcast=True)
        )
        token = uuid.uuid4().hex[:8]
        upcoming = iter(enumerate(blocks))

        def submit_next() -> None:
            item = next(upcoming, None)
            if item is not None:
                i, block = item
                pending.append(
                    client.submit(
                        _run_chunk,
                        path,
                        func,
                        shared_samples,
                        block,
                        key=f"genoformer-chunk-{token}-{i}",
                    )
                )

        for _ in range(limit):
            submit_next()
        while pending:
            future = pending.popleft()
            result = future.result()
            future.release()
            submit_next()
            yield result
    finally:
        for future in pending:
            future.cancel()
