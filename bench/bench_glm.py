"""genoformer gwas association against plink2 --glm on the same files, in one run.

Simulates a cohort (msprime; 1% missing calls, covariates), then times, with the same
number of threads, plink2 --glm (linear, and logistic with firth-fallback) and genoformer
twice: the whole command `genoformer gwas assoc` (start-up and imports, QC of the inputs,
association, the tables, the --adjust table, Manhattan and QQ plots as PNG and HTML),
which is what a user times, and the association alone (`associate` + `write_results`,
imports excluded). Checks that the results agree, prints the peak resident memory of each
and the time ratios; the last line is the ratio of the whole commands (genoformer time /
plink2 time: below 1 means genoformer is faster).

    .venv/bin/python bench/bench_glm.py                      # 2,000 x 20,000
    .venv/bin/python bench/bench_glm.py --samples 10000 --variants 100000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

OURS = """
import sys, time
from genoformer.gwas.stats.association import associate, write_results
from genoformer.gwas.io.phenotypes import covariate_matrix, phenotype_vector, read_table
prefix, pheno, covar, trait, test, out = sys.argv[1:]
y, _ = phenotype_vector(read_table(pheno), trait)
X, _ = covariate_matrix(read_table(covar))
start = time.perf_counter()
write_results(associate(prefix, y, covariates=X, test=test), out)
print(time.perf_counter() - start)
"""


def _tree(pid: int) -> list[int]:
    """A process and its descendants (Debian's plink2 is a script that runs the binary)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        stack.extend(int(c) for c in children)
    return found


def _peak_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory of the largest process in the tree (MB, polled
    from /proc) and stdout of a command."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak_kb = 0
    while process.poll() is None:
        peak_kb = max([peak_kb] + [_peak_kb(pid) for pid in _tree(process.pid)])
        time.sleep(0.01)
    out = process.stdout.read().decode()
    if process.wait() != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return time.perf_counter() - start, peak_kb / 1024, out


def whole_command(prefix, pheno, covar, trait, test, run_dir) -> list[str]:
    """`genoformer gwas assoc` as a user runs it (this interpreter, so the same install)."""
    return [
        sys.executable, "-m", "genoformer.cli", "gwas", "assoc", str(prefix), "--out",
        str(run_dir), "--pheno", str(pheno), "--pheno-name", trait, "--covar", str(covar),
        "--test", test, "--firth", "fallback", "--overwrite",
    ]  # fmt: skip


def best_of(repeats: int, command: list[str]) -> tuple[float, float, str]:
    """``run_measured`` ``repeats`` times: the fastest run's seconds and output, the largest
    peak (on a shared machine the fastest run is the one least slowed by other jobs)."""
    runs = [run_measured(command) for _ in range(repeats)]
    seconds, _, out = min(runs, key=lambda r: r[0])
    return seconds, max(r[1] for r in runs), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--variants", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; the fastest counts")
    args = parser.parse_args()
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    from genoformer.gwas.io.simulate import simulate

    plink2 = shutil.which("plink2")
    if plink2 is None:
        raise SystemExit("plink2 is not installed (make peers)")
    work = Path(tempfile.mkdtemp(prefix="bench_glm_"))
    start = time.perf_counter()
    cohort = simulate(work / "cohort", n_samples=args.samples, n_variants=args.variants, seed=1)
    print(
        f"{args.samples:,} samples x {args.variants:,} variants simulated in "
        f"{time.perf_counter() - start:.1f} s; {args.threads} threads for both tools"
    )
    prefix = cohort.outputs["prefix"]
    ratios, whole_ratios = [], []
    for trait, test, modifier, suffix, effect in (
        ("quant", "linear", "", "linear", "BETA"),
        ("binary", "logistic", " firth-fallback", "logistic.hybrid", "OR"),
    ):
        command = (
            f"{plink2} --bfile {prefix} --pheno {cohort.outputs['pheno']} --pheno-name {trait} "
            f"--covar {cohort.outputs['covar']} --glm hide-covar{modifier} "
            f"--threads {args.threads} --out {work / 'p2'}"
        )
        plink_seconds, plink_mb, _ = best_of(args.repeats, command.split())
        reference = pd.read_csv(work / f"p2.{trait}.glm.{suffix}", sep="\t", na_values="NA")
        ours_path = work / f"ours.{trait}.tsv"
        _, our_mb, printed = best_of(
            args.repeats,
            [sys.executable, "-c", OURS, str(prefix), str(cohort.outputs["pheno"]),
             str(cohort.outputs["covar"]), trait, test, str(ours_path)]
        )  # fmt: skip
        our_seconds = float(printed.strip().splitlines()[-1])
        ours = pd.read_csv(ours_path, sep="\t", na_values="NA")
        ok = np.isfinite(reference[effect]) & np.isfinite(ours[effect])
        rel = np.abs(ours[effect][ok] - reference[effect][ok]) / np.abs(reference[effect][ok])
        command = whole_command(
            prefix, cohort.outputs["pheno"], cohort.outputs["covar"], trait, test, work / trait
        )
        whole_seconds, whole_mb, _ = best_of(args.repeats, command)
        ratio, whole_ratio = our_seconds / plink_seconds, whole_seconds / plink_seconds
        ratios.append(ratio)
        whole_ratios.append(whole_ratio)
        print(
            f"{test:8s} plink2 {plink_seconds:6.2f} s, peak {plink_mb:6.0f} MB | genoformer "
            f"whole command {whole_seconds:6.2f} s, peak {whole_mb:6.0f} MB; association alone "
            f"{our_seconds:6.2f} s (imports excluded), peak {our_mb:6.0f} MB | max rel diff "
            f"{effect} {rel.max():.1e} | time ratio whole {whole_ratio:.2f}, association "
            f"{ratio:.2f}"
        )
    shutil.rmtree(work, ignore_errors=True)
    print(
        "ratio genoformer/plink2 --glm time, association alone (linear, logistic): "
        f"{ratios[0]:.2f}, {ratios[1]:.2f}"
    )
    print(
        "ratio genoformer/plink2 --glm time, whole commands (linear, logistic): "
        f"{whole_ratios[0]:.2f}, {whole_ratios[1]:.2f}"
    )


if __name__ == "__main__":
    main()
