"""Fine-tuned cell classifiers against the baseline scanpy users try first, on the same folds.

The baseline: logistic regression (scikit-learn, default L2, ``max_iter=2000``) on log1p of
counts per 10,000 (each cell's counts over its total, as ``scanpy.pp.normalize_total`` and
``log1p``), trained on each fold's training and validation cells and scored on its test
cells, the folds read from the ``splits.parquet`` of a ``genoformer sc classify`` run (cells
matched on ``cell_index``, their row of the .h5ad). The run's own scores come from its
``metrics.json``. The last line is the ratio of macro F1s.

    .venv/bin/python bench/bench_classify_baseline.py RUN [RUN ...] \
        --adata ../shared/data/geneformer/fixtures/inputs/pbmc68k.h5ad --label bulk_labels

Runs measured (docs/benchmarks.md): ``genoformer sc tokenize pbmc68k.h5ad --out corpus_v1
--vocabulary V1 --attribute bulk_labels``, then ``genoformer sc classify corpus_v1 --label
bulk_labels --folds 5 ...`` from each model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def baseline(adata_path: Path, label: str, splits: pd.DataFrame) -> dict[str, float]:
    """Pooled accuracy and macro F1 of the logistic regression over the run's folds."""
    import anndata as ad
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    cells = ad.read_h5ad(adata_path)
    counts = cells.X.toarray() if sp.issparse(cells.X) else np.asarray(cells.X, dtype=float)
    x = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    y = cells.obs[label].astype(str).to_numpy()
    truth, predicted, per_fold = [], [], []
    for _, fold in splits.groupby("fold", sort=True):
        train = fold.loc[fold["split"] != "test", "cell_index"].to_numpy()
        test = fold.loc[fold["split"] == "test", "cell_index"].to_numpy()
        model = LogisticRegression(max_iter=2000).fit(x[train], y[train])
        guess = model.predict(x[test])
        truth.append(y[test])
        predicted.append(guess)
        per_fold.append((guess == y[test]).mean())
    truth, predicted = np.concatenate(truth), np.concatenate(predicted)
    return {
        "accuracy": float((truth == predicted).mean()),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
        "folds": len(per_fold),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--adata", type=Path, required=True)
    parser.add_argument("--label", required=True)
    args = parser.parse_args()
    base = None
    best = 0.0
    for run in args.runs:
        metrics = json.loads((run / "metrics.json").read_text())
        splits = pd.read_parquet(run / "splits.parquet")
        if base is None:
            base = baseline(args.adata, args.label, splits)
            print(
                f"baseline (logistic regression, log1p CP10k), {base['folds']} folds: accuracy "
                f"{base['accuracy']:.3f}, macro F1 {base['macro_f1']:.3f}"
            )
        manifest = json.loads((run / "manifest.json").read_text())["arguments"]
        print(
            f"{run.name}: model {manifest['model']}, {manifest['folds']} folds, "
            f"{manifest['epochs']} epochs, learning rate {manifest['learning_rate']}: accuracy "
            f"{metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}, "
            f"{metrics['train_seconds']:.0f} s of training"
        )
        best = max(best, metrics["macro_f1"])
    print(f"ratio best fine-tuned / baseline macro F1: {best / base['macro_f1']:.2f}")


if __name__ == "__main__":
    main()
