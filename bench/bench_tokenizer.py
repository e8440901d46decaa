"""Tokenizer speed: genoformer.sc.tokenize against Geneformer's TranscriptomeTokenizer.

Geneformer is not installed here (it pins its own torch and scanpy): its speed is the one
measured on this kind of machine and recorded in ../shared/data/README.md, 2,876 cells/s
(21,600 cells of pbmc3k size, V2 dictionaries, one process). This script tokenizes an input
of the same shape with the V2 dictionaries, on 1 and on 2 processes, and times each run from
opening the file to the renamed corpus, reading and writing included. The dictionaries are
loaded once beforehand (their time is printed apart), and one untimed run first loads the
compiled kernels, as the first call of a session does. It prints cells/s (median of the
runs), the CPU time of this process and the peak memory; the last line is the ratio against
Geneformer.

    .venv/bin/python bench/bench_tokenizer.py [--cells 21600] [--repeats 5]

The input is made once and kept in bench/.cache/ (git-ignored by its own .gitignore): 21,600
cells drawn from the 559 cells of the celltypist559 fixture (32,786 genes), each cell's
counts thinned binomially to a library size drawn around pbmc3k's (median about 2,200
counts, about 950 detected genes per cell), so that no two cells are alike. Raw counts, CSR,
float32, no compression, ``n_counts`` in obs (Geneformer needs it), written by anndata.

Peak memory: the largest total resident memory of this process and its workers, sampled
every 10 ms from /proc during one extra run (the sampling would slow the timed ones); the
memory this process held before the runs (interpreter, libraries, the V2 dictionaries) is
printed apart. With 2 processes, each run starts two workers: the first run also starts the
fork server they come from (about a second here), later runs fork from it. At 21,600 cells the
start-up costs more than the work it shares out, on 2 cores that other jobs also use; larger
inputs (--cells 108000) show the steady state.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "geneformer"
CACHE = Path(__file__).resolve().parent / ".cache"
GENEFORMER_CELLS_PER_S = 2_876  # ../shared/data/README.md: V2, one process, 21,600 cells


def build_input(n_cells: int, seed: int = 0) -> Path:
    """An .h5ad of ``n_cells`` pbmc3k-sized cells resampled from celltypist559 (cached)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    path = CACHE / f"pbmc3k_like_{n_cells}_seed{seed}.h5ad"
    if path.exists():
        return path
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    source = ad.read_h5ad(SHARED / "fixtures" / "inputs" / "celltypist559.h5ad")
    x = sp.csr_matrix(source.X)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, x.shape[0], size=n_cells)
    totals = np.asarray(x.sum(axis=1)).ravel()
    # pbmc3k: median library size about 2,200 counts (log-normal spread).
    target = rng.lognormal(mean=np.log(2_200), sigma=0.45, size=n_cells)
    keep = np.minimum(1.0, target / totals[picks])
    lengths = np.diff(x.indptr)[picks]
    starts = x.indptr[picks]
    # Gather the picked rows' non-zeros in one go, then thin every count binomially.
    index = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    index += np.arange(lengths.sum())
    counts = rng.binomial(x.data[index].astype(np.int64), np.repeat(keep, lengths))
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    matrix = sp.csr_matrix(
        (counts.astype(np.float32), x.indices[index], indptr), shape=(n_cells, x.shape[1])
    )
    matrix.eliminate_zeros()
    obs = pd.DataFrame(
        {"n_counts": np.asarray(matrix.sum(axis=1)).ravel().astype(np.float32)},
        index=[f"cell_{i}" for i in range(n_cells)],
    )
    adata = ad.AnnData(X=matrix, obs=obs, var=source.var.copy())
    tmp = path.with_suffix(".tmp.h5ad")
    adata.write_h5ad(tmp)
    os.replace(tmp, path)
    return path


class TreeMemory:
    """Samples the resident memory of this process and its descendants (Linux /proc).

    ``peak`` is the largest sum seen, in MiB. resource.getrusage cannot give it: the
    RUSAGE_CHILDREN peak of a spawned worker counts the parent's memory copied at fork.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(_rss_mib(pid) for pid in _tree(os.getpid())))
            self._stop.wait(self.interval)


def _tree(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += _tree(int(child))
    return found


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=21_600)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=None)
    args = parser.parse_args()

    from genoformer.sc.tokenizer import CHUNK_SIZE, tokenize
    from genoformer.sc.vocabulary import GeneVocabulary

    path = build_input(args.cells)
    start = time.perf_counter()
    vocabulary = GeneVocabulary.geneformer("V2", SHARED)
    loading = time.perf_counter() - start
    chunk_size = args.chunk_size or CHUNK_SIZE
    detected = _detected_genes(path)
    print(
        f"{args.cells:,} cells x 32,786 genes ({detected:,.0f} detected genes per cell), "
        f"V2 dictionaries, chunks of {chunk_size:,} cells; input {path} "
        f"({path.stat().st_size / 2**20:,.0f} MiB); load average {os.getloadavg()[0]:.2f} on "
        f"{os.cpu_count()} CPUs"
    )
    print(f"V2 dictionaries loaded in {loading:.2f} s (once per session, not in the runs below)")

    def run(out: Path, processes: int) -> object:
        return tokenize(
            path,
            out=out,
            vocabulary=vocabulary,
            processes=processes,
            chunk_size=chunk_size,
            progress=False,
        )

    speeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        # A first run loads the compiled kernels (or compiles them), as any first call does.
        run(Path(tmp) / "warm", 1)
        baseline = _rss_mib(os.getpid())
        print(f"resident memory of this process before the runs: {baseline:,.0f} MiB")
        for processes in (1, 2):
            times, cpu = [], []
            for repeat in range(args.repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                result = run(Path(tmp) / f"p{processes}_{repeat}", processes)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
                shutil.rmtree(result.run_dir)
            # Memory in a run of its own: the sampling thread would slow the timed runs.
            with TreeMemory() as memory:
                run(Path(tmp) / f"p{processes}_memory", processes)
            seconds = statistics.median(times)
            speeds[processes] = args.cells / seconds
            label = f"genoformer, {processes} process{'es' if processes > 1 else ''}"
            print(
                f"{label}: {seconds:6.3f} s median of {args.repeats} (fastest "
                f"{min(times):.3f} s, first {times[0]:.3f} s; CPU of this process "
                f"{statistics.median(cpu):.3f} s)  {speeds[processes]:9,.0f} cells/s  "
                f"{result.metrics['n_cells']:,} cells; peak resident memory of the process tree "
                f"{memory.peak:,.0f} MiB"
            )
    # ru_maxrss is in KiB on Linux, bytes on macOS. The workers are children of the fork
    # server, not of this process, so RUSAGE_CHILDREN does not see them: the /proc samples do.
    scale = 1 if sys.platform == "darwin" else 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    print(f"peak resident memory of this process over all runs (getrusage): {own:,.0f} MiB")
    print(f"Geneformer (fixtures README): {GENEFORMER_CELLS_PER_S:,} cells/s, 1 process")
    print(
        "ratio genoformer/Geneformer tokenizer speed (2 processes): "
        f"{speeds[2] / GENEFORMER_CELLS_PER_S:.1f}x"
    )
    print(
        "ratio genoformer/Geneformer tokenizer speed (1 process): "
        f"{speeds[1] / GENEFORMER_CELLS_PER_S:.1f}x"
    )


def _detected_genes(path: Path) -> float:
    import h5py

    with h5py.File(path, "r") as handle:
        indptr = handle["X"]["indptr"][:]
    return float(np.diff(indptr).mean())


if __name__ == "__main__":
    main()
