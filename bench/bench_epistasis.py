"""genoformer gwas epistasis against plink1.9 --epistasis / --fast-epistasis, whole commands,
on the same files and the same number of threads, in one run.

Simulates a cohort (msprime, 1% missing calls, two planted pairs; cached in bench/.cache),
runs both tools' whole commands (start-up, reading, the scan, writing), checks that they
report the same pairs with the same statistics, and prints the speed ratio (plink1.9 time /
genoformer time: above 1 means genoformer is faster); the last line is the ratio of the
quantitative --epistasis run. genoformer's compiled kernels are cached on disk by numba:
a first, untimed run on a tiny cohort fills that cache, as the first use after installing
does.

    .venv/bin/python bench/bench_epistasis.py                  # 2,000 x 5,000, 2 threads
    .venv/bin/python bench/bench_epistasis.py --variants 2000 --logistic
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
GENOFORMER = [sys.executable, "-c", "import sys; from genoformer.cli import main; main()"]


def _cohort(samples: int, variants: int, seed: int) -> Path:
    from genoformer.gwas.io.simulate import simulate

    prefix = CACHE / f"epistasis_{samples}x{variants}_s{seed}"
    if not Path(f"{prefix}.bed").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        simulate(prefix, n_samples=samples, n_variants=variants, n_chromosomes=2, n_causal=5,
                 epistatic_pairs=2, epistatic_share=0.6, seed=seed)  # fmt: skip
    return prefix


def _timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def _compare(ours: Path, plink: Path) -> str:
    a = pd.read_csv(ours, sep="\t")
    b = pd.read_csv(plink, sep=r"\s+")
    same = list(zip(a.SNP1, a.SNP2, strict=True)) == list(zip(b.SNP1, b.SNP2, strict=True))
    rel = np.abs(a.STAT.to_numpy() / b.STAT.to_numpy() - 1).max() if same and len(a) else np.nan
    return f"{len(a)} pairs (plink1.9 {len(b)}), same pairs: {same}, max rel diff STAT {rel:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--variants", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logistic", action="store_true", help="also case/control --epistasis")
    args = parser.parse_args()
    plink = shutil.which("plink1.9")
    if plink is None:
        sys.exit("plink1.9 not installed (apt-get install plink1.9)")
    threads = str(args.threads)
    env = {**os.environ, "NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads, "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    prefix = _cohort(args.samples, args.variants, args.seed)
    runs = [
        ("quant", "linear", "--epistasis", "epi.qt"),
        ("binary", "fast", "--fast-epistasis", "epi.cc"),
    ]
    if args.logistic:
        runs.append(("binary", "logistic", "--epistasis", "epi.cc"))
    with tempfile.TemporaryDirectory() as tmp:
        tiny = _cohort(200, 40, 0)  # fills numba's cache of compiled kernels, untimed
        for test in ("linear", "fast", "logistic"):
            column = "quant" if test == "linear" else "binary"
            subprocess.run([*GENOFORMER, "gwas", "epistasis", str(tiny), "--out", f"{tmp}/w{test}",
                            "--pheno", f"{tiny}.pheno", "--pheno-name", column, "--test", test],
                           check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        print(f"cohort: {args.samples} samples x {args.variants} variants, {threads} threads")
        ratios = []
        for column, test, flag, suffix in runs:
            ours_cmd = [*GENOFORMER, "gwas", "epistasis", str(prefix), "--out", f"{tmp}/{test}",
                        "--pheno", f"{prefix}.pheno", "--pheno-name", column, "--test", test,
                        "--threads", threads]  # fmt: skip
            plink_cmd = [plink, "--bfile", str(prefix), "--pheno", f"{prefix}.pheno",
                         "--pheno-name", column, flag, "--allow-no-sex", "--threads", threads,
                         "--out", f"{tmp}/p_{test}"]  # fmt: skip
            ours = _timed(ours_cmd, env)
            theirs = _timed(plink_cmd, env)
            ratios.append(theirs / ours)
            manifest = json.loads(Path(f"{tmp}/{test}/manifest.json").read_text())
            scan = manifest["steps"]["scan"]["seconds"]
            check = _compare(Path(f"{tmp}/{test}/epistasis.tsv"), Path(f"{tmp}/p_{test}.{suffix}"))
            print(f"{test:9s} genoformer {ours:7.2f} s (scan {scan:.2f} s) | plink1.9 {flag} {theirs:7.2f} s | "
                  f"{check} | plink/genoformer {ratios[-1]:.1f}x")  # fmt: skip
    print(f"ratio plink1.9/genoformer --epistasis whole-command time: {ratios[0]:.1f}x")


if __name__ == "__main__":
    main()
