"""genoformer gwas association against plink2 --glm on the same files, in one run.

Simulates a cohort (msprime; 1% missing calls, covariates), then times plink2 --glm
(linear, and logistic with firth-fallback) and genoformer's `associate` on it with the same
number of threads, checks that the results agree and prints the time ratios; the last line
is the overall ratio (genoformer time / plink2 time: below 1 means genoformer is faster).

    .venv/bin/python bench/bench_glm.py                      # 2,000 x 20,000
    .venv/bin/python bench/bench_glm.py --samples 10000 --variants 100000
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--variants", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    from genoformer.gwas.association import associate
    from genoformer.gwas.genotypes import open_genotypes
    from genoformer.gwas.phenotypes import covariate_matrix, phenotype_vector, read_table
    from genoformer.gwas.simulate import simulate

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
    prefix = cohort.paths["prefix"]
    pheno = read_table(cohort.paths["pheno"])
    covar, _ = covariate_matrix(read_table(cohort.paths["covar"]))
    ratios = []
    for trait, test, modifier, suffix, effect in (
        ("quant", "linear", "", "linear", "BETA"),
        ("binary", "logistic", " firth-fallback", "logistic.hybrid", "OR"),
    ):
        command = (
            f"{plink2} --bfile {prefix} --pheno {cohort.paths['pheno']} --pheno-name {trait} "
            f"--covar {cohort.paths['covar']} --glm hide-covar{modifier} "
            f"--threads {args.threads} --out {work / 'p2'}"
        )
        before = peak_mb(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command.split(), check=True, capture_output=True)
        plink_seconds = time.perf_counter() - start
        plink_mb = max(peak_mb(resource.RUSAGE_CHILDREN), before)
        reference = pd.read_csv(work / f"p2.{trait}.glm.{suffix}", sep="\t", na_values="NA")

        y, _ = phenotype_vector(pheno, trait)
        start = time.perf_counter()
        with open_genotypes(prefix) as source:
            ours = associate(source, y, covariates=covar, test=test)
        our_seconds = time.perf_counter() - start
        ok = np.isfinite(reference[effect]) & np.isfinite(ours[effect])
        rel = np.abs(ours[effect][ok] - reference[effect][ok]) / np.abs(reference[effect][ok])
        ratio = our_seconds / plink_seconds
        ratios.append(ratio)
        print(
            f"{test:8s} plink2 {plink_seconds:6.2f} s (peak {plink_mb:,.0f} MB of children)  "
            f"genoformer {our_seconds:6.2f} s (process peak {peak_mb(resource.RUSAGE_SELF):,.0f}"
            f" MB)  max rel diff {effect} {rel.max():.1e}  time ratio {ratio:.2f}"
        )
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"ratio genoformer/plink2 --glm time (linear, logistic): {ratios[0]:.2f}, {ratios[1]:.2f}"
    )


if __name__ == "__main__":
    main()
