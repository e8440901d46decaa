"""Association under relatedness and population structure: plink2 --glm, genoformer (plain and
--wgr) and BOLT-LMM on the same simulated cohorts, in one run.

Two cohorts from `genoformer gwas simulate`: sibships of 4 children (families), and 3
populations split 500 generations ago whose trait means differ (structure). For each tool the
whole command is timed (start to exit: imports, reading, figures where the tool draws them)
and its results scored: lambda_GC over the null variants (those on chromosomes without a
causal variant: siblings share whole chromosome segments, so every variant of a causal
chromosome is linked to a causal variant within families), causal variants found at
P < 5e-8, and the mean chi-square at the causal variants (from P, the same for all tools).
The last line is the time ratio genoformer --wgr / BOLT-LMM on each cohort.

    .venv/bin/python bench/bench_relatedness.py                  # 3,000 x 20,000, 22 chromosomes
    .venv/bin/python bench/bench_relatedness.py --samples 5000

BOLT-LMM: `apt-get install bolt-lmm`, run as `bolt --lmm --LDscoresUseChip` with
OPENBLAS_NUM_THREADS=1 and OMP_WAIT_POLICY=PASSIVE (it crawls otherwise).
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
from scipy import stats

COHORTS = {
    "families": {"siblings": 4},
    "structure": {"populations": 3, "split_generations": 500, "population_shift": 0.3},
}


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of a whole command (its output discarded; a failure stops the bench)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def score(ids: pd.Series, chrom: pd.Series, p: pd.Series, truth: pd.DataFrame) -> dict:
    """lambda_GC over the null variants, causal variants at 5e-8, mean chi-square at them."""
    p = pd.to_numeric(p, errors="coerce").to_numpy(dtype=float)
    null = ~chrom.astype(str).isin(truth["chrom"].astype(str)).to_numpy()
    causal = ids.isin(truth["id"]).to_numpy()
    chisq = stats.chi2.isf(np.clip(p, 1e-300, 1.0), 1)
    ok = null & np.isfinite(chisq)
    return {
        "lambda": float(np.median(chisq[ok]) / stats.chi2.ppf(0.5, 1)),
        "null": int(ok.sum()),
        "found": int(np.sum(causal & (p < 5e-8))),
        "causal_chisq": float(np.nanmean(chisq[causal])),
    }


def run_cohort(name: str, prefix: Path, work: Path, threads: int, env: dict) -> dict[str, dict]:
    truth = pd.read_csv(f"{prefix}.truth.tsv", sep="\t", dtype={"chrom": str})
    pheno, covar = f"{prefix}.pheno", f"{prefix}.covar"
    rows = {}
    out = work / f"{name}_plink2"
    seconds = timed(
        ["plink2", "--bfile", str(prefix), "--pheno", pheno, "--pheno-name", "quant",
         "--covar", covar, "--glm", "hide-covar", "--threads", str(threads), "--out", str(out)],
        env,
    )  # fmt: skip
    table = pd.read_csv(f"{out}.quant.glm.linear", sep="\t")
    rows["plink2 --glm"] = score(table["ID"], table["#CHROM"], table["P"], truth)
    rows["plink2 --glm"]["seconds"] = seconds
    for label, extra in (("genoformer", []), ("genoformer --wgr", ["--wgr"])):
        run = work / f"{name}_{label.replace(' ', '').replace('-', '')}"
        seconds = timed(
            [str(Path(sys.executable).with_name("genoformer")), "gwas", "assoc", str(prefix), "--out", str(run),
             "--pheno", pheno, "--pheno-name", "quant", "--covar", covar, *extra],
            env,
        )  # fmt: skip
        table = pd.read_csv(run / "assoc.tsv", sep="\t", na_values="NA")
        rows[label] = score(table["ID"], table["#CHROM"], table["P"], truth)
        rows[label]["seconds"] = seconds
    stats_file = work / f"{name}_bolt.stats"
    bolt_env = {**env, "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    seconds = timed(
        ["bolt", f"--bfile={prefix}", f"--phenoFile={pheno}", "--phenoCol=quant",
         f"--covarFile={covar}", "--qCovarCol=age", "--covarCol=sex", "--covarCol=batch",
         "--lmm", "--LDscoresUseChip", f"--numThreads={threads}", f"--statsFile={stats_file}"],
        bolt_env,
    )  # fmt: skip
    table = pd.read_csv(stats_file, sep=r"\s+")
    column = "P_BOLT_LMM" if "P_BOLT_LMM" in table.columns else "P_BOLT_LMM_INF"
    rows[f"BOLT-LMM ({column})"] = score(table["SNP"], table["CHR"], table[column], truth)
    rows[f"BOLT-LMM ({column})"]["seconds"] = seconds
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--variants", type=int, default=20_000)
    parser.add_argument("--chromosomes", type=int, default=22)
    parser.add_argument("--causal", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for tool in ("plink2", "bolt"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install plink2 bolt-lmm)")
    env = {**os.environ, "NUMBA_NUM_THREADS": str(args.threads)}
    from genoformer.gwas.io.simulate import simulate

    work = Path(tempfile.mkdtemp(prefix="bench_relatedness_"))
    ratios = []
    for name, options in COHORTS.items():
        prefix = work / name
        simulate(
            prefix, n_samples=args.samples, n_variants=args.variants,
            n_chromosomes=args.chromosomes, n_causal=args.causal, seed=args.seed, **options,
        )  # fmt: skip
        print(f"\n{name}: {args.samples:,} samples x {args.variants:,} variants, {options}")
        rows = run_cohort(name, prefix, work, args.threads, env)
        print(
            f"{'tool':28s} {'lambda_GC':>9s} {'null':>6s} {'found':>5s} {'chisq':>7s} {'time':>8s}"
        )
        for tool, r in rows.items():
            print(
                f"{tool:28s} {r['lambda']:9.3f} {r['null']:6d} {r['found']:3d}/{args.causal:<2d}"
                f"{r['causal_chisq']:7.1f} {r['seconds']:7.1f}s"
            )
        bolt = next(r for tool, r in rows.items() if tool.startswith("BOLT"))
        ratios.append(rows["genoformer --wgr"]["seconds"] / bolt["seconds"])
    shutil.rmtree(work, ignore_errors=True)
    print(
        "\nratio genoformer --wgr / BOLT-LMM whole-command time (families, structure): "
        + ", ".join(f"{r:.2f}" for r in ratios)
    )


if __name__ == "__main__":
    main()
