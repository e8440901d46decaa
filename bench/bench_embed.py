"""Cell embedding speed and memory: genoformer.sc.embed against Geneformer's EmbExtractor.

Geneformer is not installed here (it pins its own torch and transformers): its figures are
the ones measured on this kind of machine and recorded in ../shared/data/README.md: 23
cells/s and 1.4 GB peak memory for V1 cell embeddings of the 700 pbmc68k cells with the
gf-6L model (``emb_layer=-1``, batch 16). This script runs the same job with genoformer:
``embed(gf6L_random, pbmc68k_V1.dataset, emb_mode="cell", emb_layer=-1, batch_size=16)``,
the corpus Geneformer's tokenizer wrote, tables written (Parquet and CSV), no pictures.

Each run is a fresh child process, so that its peak resident memory (``ru_maxrss`` of that
child, from ``wait4``) is the whole job's, imports and model included; the memory of the
child just after importing genoformer's embedding code, torch and transformers (before any
work) is printed apart. Times: the ``embed`` call as a whole (loading the model, the corpus
and the V1 dictionaries, the forward passes, writing the tables) and the forward passes
alone. The machine may be shared: the runs are repeated and the range is printed. It also
checks that the embeddings match Geneformer's (fixtures, within 1e-5). The last lines are
the ratios against Geneformer.

    .venv/bin/python bench/bench_embed.py [--repeats 3] [--batch-size 16] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _measure import run_measured_child

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "geneformer"
FIXTURES = SHARED / "fixtures"
GENEFORMER_CELLS_PER_S = 23.0  # ../shared/data/README.md: gf6L, V1, batch 16
GENEFORMER_PEAK_MIB = 1.4 * 1024  # 1.4 GB, same run


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(out: str, batch_size: int, threads: int | None) -> None:
    """One run, in this (child) process: prints a JSON line of timings."""
    import time

    import datasets  # noqa: F401  (what the run imports anyway, in the baseline)
    import torch  # noqa: F401
    from transformers import BertModel  # noqa: F401

    from genoformer.sc.embeddings import embed

    baseline = _rss_mib()
    start = time.perf_counter()
    result = embed(
        FIXTURES / "models" / "gf6L_random",
        FIXTURES / "geneformer_datasets" / "pbmc68k_V1.dataset",
        out=out,
        emb_mode="cell",
        emb_layer=-1,
        batch_size=batch_size,
        dictionaries=SHARED,
        threads=threads,
        progress=False,
    )
    seconds = time.perf_counter() - start
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "embedding_seconds": manifest["results"]["embed"]["embedding_seconds"],
                "n_cells": result.metrics["n_cells"],
                "baseline_mib": baseline,
            }
        )
    )


def run_child(out: Path, batch_size: int, threads: int | None) -> dict:
    command = [sys.executable, __file__, "--child", str(out), "--batch-size", str(batch_size)]
    if threads:
        command += ["--threads", str(threads)]
    return run_measured_child(command, cwd=ROOT, what="the embedding run")


def check(out: Path) -> float:
    """Largest difference from Geneformer's embeddings of the same cells."""
    import numpy as np
    import pandas as pd

    ours = pd.read_parquet(out / "cell_embeddings.parquet").set_index("cell_index").sort_index()
    theirs = pd.read_csv(
        FIXTURES / "embeddings" / "pbmc68k_V1_gf6L_cell_Lm1_bs16.csv", index_col=0
    ).set_index("cell_index")
    theirs = theirs.loc[ours.index]
    dims = [c for c in theirs.columns if c.isdigit()]
    return float(np.abs(ours[dims].to_numpy() - theirs[dims].to_numpy()).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.batch_size, args.threads)
        return

    load = os.getloadavg()[0]
    print(
        f"gf6L (6 layers, hidden 256) V1 cell embeddings, emb_layer -1, batch {args.batch_size}, "
        f"700 pbmc68k cells (168-370 genes); {os.cpu_count()} CPUs, load average {load:.2f}"
    )
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            out = Path(tmp) / f"run{repeat}"
            record = run_child(out, args.batch_size, args.threads)
            runs.append(record)
            print(
                f"run {repeat + 1}: embed {record['seconds']:.2f} s "
                f"({record['n_cells'] / record['seconds']:.1f} cells/s), forward passes "
                f"{record['embedding_seconds']:.2f} s; peak resident memory "
                f"{record['peak_mib']:,.0f} MiB ({record['baseline_mib']:,.0f} MiB after imports)"
            )
        difference = check(out)
    print(f"largest difference from Geneformer's embeddings: {difference:.1e} (tolerance 1e-5)")
    speeds = sorted(r["n_cells"] / r["seconds"] for r in runs)
    peaks = sorted(r["peak_mib"] for r in runs)
    speed = statistics.median(speeds)
    peak = statistics.median(peaks)
    print(
        f"genoformer: {speed:.1f} cells/s median (range {speeds[0]:.1f}-{speeds[-1]:.1f}), "
        f"peak memory {peak:,.0f} MiB median (range {peaks[0]:,.0f}-{peaks[-1]:,.0f})"
    )
    print(
        f"Geneformer (fixtures README): {GENEFORMER_CELLS_PER_S:.0f} cells/s, "
        f"{GENEFORMER_PEAK_MIB:,.0f} MiB"
    )
    print(
        f"ratio Geneformer/genoformer peak memory: {GENEFORMER_PEAK_MIB / peak:.1f}x "
        f"(range {GENEFORMER_PEAK_MIB / peaks[-1]:.1f}-{GENEFORMER_PEAK_MIB / peaks[0]:.1f}x)"
    )
    print(
        f"ratio genoformer/Geneformer cell embedding speed: {speed / GENEFORMER_CELLS_PER_S:.1f}x "
        f"(range {speeds[0] / GENEFORMER_CELLS_PER_S:.1f}-"
        f"{speeds[-1] / GENEFORMER_CELLS_PER_S:.1f}x)"
    )


if __name__ == "__main__":
    main()
