"""In silico deletion speed and memory: genoformer.sc.perturb against Geneformer's InSilicoPerturber.

Geneformer is not installed here (it pins its own torch and transformers): its figures are
the ones measured on this kind of machine and recorded in ../shared/data/README.md: 26.7 s
per cell and 4.8 GB for deleting every gene of the five longest pbmc68k cells (1,720
perturbations, cells of 334-370 genes) with the gf-6L model, ``emb_mode="cell"``,
``emb_layer=-1``. This script runs the same job with genoformer:
``perturb(gf6L_random, pbmc68k_V1.dataset, all_genes=True, cells=<the five longest>)``, the
corpus Geneformer's tokenizer wrote, tables written, once in fp32 (the default) and once in
bf16. Each run is a fresh child process, so that its peak resident memory (``ru_maxrss``
from ``wait4``) is the whole job's, imports and model included. Seconds per cell are the
``perturb`` call's (model, corpus and dictionaries loading included) over the five cells.
It checks every one of the 1,720 values against Geneformer's (fixtures, tolerance 1e-5) and
prints bf16's largest difference from fp32. The machine may be shared: the load average is
printed, and the timing needs a quiet machine; as a check that does not depend on the load,
one batch of deletion copies also runs through the forward pass Geneformer runs
(``BertForMaskedLM`` with every hidden state, timed here: not Geneformer's whole loop) and
through genoformer's, alternately. The last line is the fp32 speed ratio.

    .venv/bin/python bench/bench_perturb.py [--batch-size 32] [--threads N] [--skip-bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from _measure import run_measured_child

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "geneformer"
FIXTURES = SHARED / "fixtures"
CORPUS = FIXTURES / "geneformer_datasets" / "pbmc68k_V1.dataset"
REFERENCE = FIXTURES / "perturbation" / "pbmc68k.V1.gf6L.isp_delete_all_first5.json"
GENEFORMER_S_PER_CELL = 26.7  # ../shared/data/README.md: gf6L, V1, delete-all, 5 cells
GENEFORMER_PEAK_MIB = 4.8 * 1024  # 4.8 GB, same run


def five_longest() -> list[int]:
    import datasets
    import numpy as np

    lengths = np.array(datasets.load_from_disk(str(CORPUS))["length"])
    return [int(i) for i in np.argsort(-lengths, kind="stable")[:5]]


def child(out: str, precision: str, batch_size: int, threads: int | None) -> None:
    """One run, in this (child) process: prints a JSON line of timings."""
    import time

    from genoformer.sc.perturbation import perturb

    cells = tuple(five_longest())
    start = time.perf_counter()
    result = perturb(
        FIXTURES / "models" / "gf6L_random",
        CORPUS,
        out=out,
        all_genes=True,
        cells=cells,
        precision=precision,
        batch_size=batch_size,
        threads=threads,
        dictionaries=SHARED,
        progress=False,
    )
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "n_perturbations": result.metrics["n_perturbations"]}))


def run_child(out: Path, precision: str, batch_size: int, threads: int | None) -> dict:
    command = [sys.executable, __file__, "--child", str(out), "--precision", precision]
    command += ["--batch-size", str(batch_size)] + (["--threads", str(threads)] if threads else [])
    return run_measured_child(command, cwd=ROOT, what="the perturbation run")


def forward_check(batch: int, threads: int | None) -> tuple[float, float]:
    """Seconds for one batch of the longest cell's deletion copies, through the forward
    Geneformer runs (``BertForMaskedLM`` with every hidden state: not Geneformer itself) and
    through genoformer's (the encoder up to ``emb_layer=-1``), timed alternately (best of
    two each) so that a shared machine's load weighs on both alike."""
    import time

    import datasets
    import torch
    from transformers import BertForMaskedLM

    from genoformer.sc.embeddings import layer_states, running
    from genoformer.sc.models import load_model
    from genoformer.sc.vocabulary import GeneVocabulary

    ids = datasets.load_from_disk(str(CORPUS))[five_longest()[0]]["input_ids"]
    copies = torch.tensor([ids[:p] + ids[p + 1 :] for p in range(batch)])
    model = FIXTURES / "models" / "gf6L_random"
    full = BertForMaskedLM.from_pretrained(model).eval()
    encoder = load_model(model, vocabulary=GeneVocabulary.packaged("V1"), encoder_only=True)
    target = torch.device("cpu")
    best = {"geneformer": float("inf"), "genoformer": float("inf")}
    for _ in range(2):
        with torch.no_grad():
            start = time.perf_counter()
            full(input_ids=copies, output_hidden_states=True)
            best["geneformer"] = min(best["geneformer"], time.perf_counter() - start)
        with running(encoder.eval(), 5, threads, target):
            start = time.perf_counter()
            layer_states(encoder, copies, None, [5])
            best["genoformer"] = min(best["genoformer"], time.perf_counter() - start)
    return best["geneformer"], best["genoformer"]


def values(out: Path) -> dict[tuple[int, int], float]:
    import pandas as pd

    table = pd.read_parquet(out / "perturbations.parquet")
    return {
        (int(c), int(t)): float(v)
        for c, t, v in zip(table["cell_index"], table["token_ids"], table["cos_sim"], strict=True)
    }


def geneformer_values() -> dict[tuple[int, int], float]:
    run = json.loads(REFERENCE.read_text())
    found = {}
    for name, part in run["files"].items():
        cell = run["cells"][int(name.split("cell_embs_")[1].split("batch")[0])]
        for entry in part["entries"]:
            found[(cell["cell_index"], entry["perturbed"])] = entry["cos_sims"][0]
    return found


def largest_difference(ours: dict, theirs: dict) -> float:
    if set(ours) != set(theirs):
        raise SystemExit(f"{len(set(ours) ^ set(theirs))} perturbations differ from the reference")
    return max(abs(ours[k] - theirs[k]) for k in theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-bf16", action="store_true")
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.precision, args.batch_size, args.threads)
        return

    print(
        f"gf6L (6 layers, hidden 256) V1 delete-all, emb_layer -1, the 5 longest pbmc68k cells "
        f"(1,720 perturbations), batch {args.batch_size}; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    theirs = geneformer_values()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32",) if args.skip_bf16 else ("fp32", "bf16"):
            out = Path(tmp) / precision
            record = run_child(out, precision, args.batch_size, args.threads)
            record["values"] = values(out)
            record["vs_geneformer"] = largest_difference(record["values"], theirs)
            runs[precision] = record
            print(
                f"genoformer {precision}: {record['seconds'] / 5:.2f} s per cell "
                f"({record['seconds']:.1f} s for {record['n_perturbations']:,} perturbations), "
                f"peak resident memory {record['peak_mib']:,.0f} MiB; largest difference from "
                f"Geneformer {record['vs_geneformer']:.1e} (load average now "
                f"{os.getloadavg()[0]:.2f})"
            )
    if "bf16" in runs:
        drift = largest_difference(runs["bf16"]["values"], runs["fp32"]["values"])
        print(f"bf16: largest difference from fp32 {drift:.1e}")
        print(
            f"ratio genoformer bf16/Geneformer delete-all speed: "
            f"{GENEFORMER_S_PER_CELL / (runs['bf16']['seconds'] / 5):.1f}x"
        )
    theirs_s, ours_s = forward_check(args.batch_size, args.threads)
    print(
        f"same {args.batch_size} copies, this machine now: Geneformer's forward "
        f"(BertForMaskedLM, all hidden states) {theirs_s:.2f} s, genoformer's {ours_s:.2f} s: "
        f"{theirs_s / ours_s:.1f}x less time per copy (load average {os.getloadavg()[0]:.2f})"
    )
    fp32 = runs["fp32"]
    print(
        f"Geneformer (fixtures README, not run here): {GENEFORMER_S_PER_CELL} s per cell, "
        f"{GENEFORMER_PEAK_MIB:,.0f} MiB"
    )
    print(
        f"ratio Geneformer/genoformer fp32 peak memory: {GENEFORMER_PEAK_MIB / fp32['peak_mib']:.1f}x"
    )
    print(
        f"ratio genoformer fp32/Geneformer delete-all speed: "
        f"{GENEFORMER_S_PER_CELL / (fp32['seconds'] / 5):.1f}x"
    )


if __name__ == "__main__":
    main()
