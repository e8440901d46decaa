"""Gene classification against the truth: marker genes of simulated cell types against the
other genes, on held-out genes.

``sc/simulate.py`` knows each type's marker genes (up-regulated in that type). The script
simulates cells, tokenizes them with their own medians, pretrains a small model on them
(``sc pretrain``: masked-gene pretraining is what gives a gene never labelled in training an
embedding to generalise from), then runs ``sc classify-genes`` with the marker genes of
every type as one class and the other genes as the other, cross-validated by gene. It prints
the pooled AUC of the held-out genes, each fold's, and the seconds of each step; the last
line is the pooled AUC against the goal of issue 12 (0.9). ``--pretrain-steps 0`` fine-tunes
from random weights instead (the held-out genes' embeddings are then untrained).

    .venv/bin/python bench/bench_classify_genes.py [--pretrain-steps 600] [--steps 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

GOAL = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=400)
    parser.add_argument("--genes", type=int, default=150)
    parser.add_argument("--types", type=int, default=5)
    parser.add_argument("--markers", type=int, default=10, help="marker genes per type")
    parser.add_argument("--pretrain-steps", type=int, default=600)
    parser.add_argument("--steps", type=int, default=60, help="fine-tuning steps per fold")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--max-cells", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from genoformer.sc.gene_classification import classify_genes
    from genoformer.sc.medians import gene_medians
    from genoformer.sc.models import build_model, model_config
    from genoformer.sc.pretraining import pretrain
    from genoformer.sc.simulate import simulate_cells
    from genoformer.sc.tokenizer import tokenize

    root = Path(tempfile.mkdtemp(prefix="bench_classify_genes."))
    cells = simulate_cells(
        args.cells, args.genes, n_types=args.types, markers_per_type=args.markers, seed=0
    )
    vocabulary = gene_medians(cells, name="simulated", input_size=args.genes)
    vocabulary_file = vocabulary.save(root / "vocabulary.json")
    corpus = tokenize(cells, out=root / "corpus", vocabulary=vocabulary, progress=False).run_dir
    markers = {g for genes in cells.uns["markers"].values() for g in genes}
    classes = ["marker" if g in markers else "other" for g in cells.var_names]
    pd.DataFrame({"gene": cells.var_names, "class": classes}).to_csv(
        root / "classes.tsv", sep="\t", index=False
    )
    layers = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128)
    model = root / "random"
    build_model(model_config("tiny", vocabulary, **layers), seed=1).save_pretrained(model)

    start = time.perf_counter()
    if args.pretrain_steps:
        pretrained = pretrain(
            corpus,
            out=root / "pretrain",
            model=model,
            vocabulary=vocabulary_file,
            max_steps=args.pretrain_steps,
            eval_every=args.pretrain_steps,
            batch_size=16,
            learning_rate=2e-3,
            held_out=0.05,
            device=args.device,
        )
        model = root / "pretrain"
        print(
            f"pretraining: {args.pretrain_steps} steps in {time.perf_counter() - start:.1f} s, "
            f"held-out loss {pretrained.metrics['heldout_loss']:.3f} "
            f"(frequency baseline {pretrained.metrics['frequency_loss']:.3f})"
        )
    result = classify_genes(
        corpus,
        out=root / "genes",
        model=model,
        gene_classes=root / "classes.tsv",
        vocabulary=vocabulary_file,
        folds=args.folds,
        max_steps=args.steps,
        batch_size=16,
        learning_rate=1e-3,
        max_cells=args.max_cells,
        device=args.device,
    )
    metrics = result.metrics
    print(f"gene classification: {metrics['seconds']:.1f} s ({metrics['classes']})")
    for fold in metrics["folds"]:
        print(f"  {fold['fold']}: AUC {fold['auroc']:.3f} on {fold['test_genes']} held-out genes")
    print(f"folds: AUC {metrics['auroc_mean']:.3f} +- {metrics['auroc_sd']:.3f}")
    print(f"pooled held-out AUC {metrics['auroc']:.3f} (goal {GOAL}; chance 0.5)")


if __name__ == "__main__":
    main()
