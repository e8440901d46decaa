"""The genotype transformer against ridge (GBLUP) on simulated cohorts, in one run.

Simulates two cohorts with msprime (LD, 1% missing calls): one whose genetic variance is
mostly in epistatic pairs (product of two genotypes on different chromosomes, no marginal
effect), one purely additive; trains `genoformer.gwas.train` on each (the transformer and,
on the same split and inputs, ridge / boosting / MLP) and prints test R2 per model. The
transformer should beat ridge on the epistatic trait and stay within 10% of it on the
additive one. The last line is the ratio transformer R2 / ridge R2 on the epistatic trait.

    .venv/bin/python bench/bench_gwas_model.py                     # 3,000 x 5,000
    .venv/bin/python bench/bench_gwas_model.py --samples 2000 --variants 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from genoformer.gwas.simulate import simulate
from genoformer.gwas.train import train

#: The settings the bench measures (see docs/gwas.md, "Genotype model").
SETTINGS = dict(
    backbone="bert",
    window=8,
    preselect=40,
    preselect_by="marginal+variance",
    decoys=0,
    d_model=32,
    n_layers=2,
    n_heads=4,
    dropout=0.0,
    epochs=40,
    batch_size=64,
    learning_rate=3e-3,
    weight_decay=0.01,
    patience=8,
    device="cpu",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--variants", type=int, default=5000)
    parser.add_argument("--causal", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--share", type=float, default=0.8, help="pairs' share of h2")
    parser.add_argument("--h2", type=float, default=0.5)
    options = ("backbone", "window", "preselect", "dropout", "learning_rate", "weight_decay")
    for option in (*options, "epochs", "patience"):
        default = SETTINGS[option]
        parser.add_argument(f"--{option.replace('_', '-')}", type=type(default), default=default)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_gwas_model_"))
    settings = {**SETTINGS, **{k: v for k, v in vars(args).items() if k in SETTINGS}}
    r2 = {}
    for name, pairs, share in (
        ("epistatic", args.pairs, args.share),
        ("additive", 0, None),
    ):
        prefix = out / name
        simulate(
            prefix,
            n_samples=args.samples,
            n_variants=args.variants,
            n_chromosomes=3,
            heritability=args.h2,
            n_causal=args.causal,
            epistatic_pairs=pairs,
            epistatic_share=share,
            seed=args.seed,
        )
        start = time.perf_counter()
        result = train(
            prefix,
            f"{prefix}.pheno",
            out=out / f"run_{name}",
            trait="quant",
            seed=args.seed,
            **settings,
        )
        seconds = time.perf_counter() - start
        r2[name] = {model: m["r2"] for model, m in result.metrics["test"].items()}
        scores = "  ".join(f"{model} {value:.3f}" for model, value in r2[name].items())
        print(f"{name:9s} test R2: {scores}  ({seconds:.0f} s, {result.metrics['steps']} steps)")
    additive = r2["additive"]["transformer"] / r2["additive"]["ridge"]
    print(f"additive: transformer / ridge R2 = {additive:.3f} (bar: >= 0.9)")
    epistatic = r2["epistatic"]["transformer"] / r2["epistatic"]["ridge"]
    gain = r2["epistatic"]["transformer"] - r2["epistatic"]["ridge"]
    # A ratio over a ridge R2 near or below 0 says little: the difference is printed too.
    print(f"epistatic: transformer / ridge R2 = {epistatic:.3f} (bar: > 1; difference {gain:+.3f})")


if __name__ == "__main__":
    main()
