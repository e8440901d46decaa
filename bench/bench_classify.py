"""Cell classifier training speed and memory: genoformer's fine-tuning against Geneformer's
``Classifier``.

Geneformer is not installed here (it pins its own torch and transformers): its figures are
the ones measured on this kind of machine and recorded in ../shared/data/README.md:
``Classifier`` (cell, pbmc68k ``bulk_labels``, gf6L V1, batch 12, one epoch over 560
training cells) 43.9 s = 12.8 cells/s, 1.9 GB peak. This script runs the same job with
genoformer: the fixtures' random gf6L checkpoint, Geneformer's own V1 corpus of the 700
pbmc68k cells, a stratified split of 560 training cells and 140 validated (as Geneformer's
80/20 train/eval split), one epoch of batches of 12, validation and a checkpoint at its end,
the model saved.

Each run is a fresh child process, so that its peak resident memory (``ru_maxrss`` of that
child) is the whole job's, imports and model included. Time: the Trainer run (training,
the validation pass, the checkpoint and the saved model), as cells trained per second. The
machine may be shared: the runs are repeated and the range printed. The last line is the
ratio against Geneformer.

    .venv/bin/python bench/bench_classify.py [--repeats 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "geneformer"
FIXTURES = SHARED / "fixtures"
GENEFORMER_SECONDS = 43.9  # ../shared/data/README.md: Classifier, gf6L V1, batch 12, 560 cells
GENEFORMER_CELLS_PER_S = 12.8
GENEFORMER_PEAK_MIB = 1.9 * 1024


def child(out: str, threads: int | None) -> None:
    """One run, in this (child) process: prints a JSON line of timings."""
    import dataclasses
    import resource

    import numpy as np
    import torch

    from genoformer.sc.classification import ClassifySettings, _prepare, train_split
    from genoformer.sc.splits import Fold

    if threads:
        torch.set_num_threads(threads)
    options = ClassifySettings(epochs=1, batch_size=12, test_share=0.2, device="cpu")
    corpus = FIXTURES / "geneformer_datasets" / "pbmc68k_V1.dataset"
    model = FIXTURES / "models" / "gf6L_random"
    data, folds = _prepare(corpus, model, "bulk_labels", None, "V1", SHARED, options)
    split = folds[0]
    # Geneformer trains on 80% and validates on the other 20%: the same here.
    fold = Fold("split", np.sort(np.concatenate([split.train, split.eval])), split.test, split.test)
    trained = train_split(data, fold, Path(out), dataclasses.replace(options))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info = trained["info"]
    print(json.dumps({**info, "threads": torch.get_num_threads(), "peak_mib": peak_mib}))


def _run_child(threads: int | None) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, __file__, "--child", out]
        if threads:
            command += ["--threads", str(threads)]
        environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if done.returncode:
        raise SystemExit(f"the child failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads([x for x in done.stdout.splitlines() if x.startswith("{")][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.threads)
        return
    runs = []
    for i in range(args.repeats):
        run = _run_child(args.threads)
        runs.append(run)
        print(
            f"run {i + 1}: {run['train_cells']} cells trained in {run['train_seconds']:.1f} s "
            f"= {run['train_cells_per_second']:.1f} cells/s, {run['steps']} steps, peak "
            f"{run['peak_mib']:.0f} MiB, {run['threads']} threads, "
            f"{run['trainable_parameters']:,} parameters trained",
            flush=True,
        )
    speed = statistics.median(r["train_cells_per_second"] for r in runs)
    peak = max(r["peak_mib"] for r in runs)
    print(
        f"Geneformer Classifier (../shared/data/README.md, this machine kind): "
        f"{GENEFORMER_SECONDS} s = {GENEFORMER_CELLS_PER_S} cells/s, "
        f"{GENEFORMER_PEAK_MIB:.0f} MiB peak"
    )
    print(f"peak memory genoformer/Geneformer: {peak / GENEFORMER_PEAK_MIB:.2f}")
    print(
        f"ratio genoformer/Geneformer classifier training speed: "
        f"{speed / GENEFORMER_CELLS_PER_S:.2f}x (median of {len(runs)} runs)"
    )


if __name__ == "__main__":
    main()
