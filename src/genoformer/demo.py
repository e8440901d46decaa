"""``genoformer demo``: the main job end to end on data the package generates.

The seq teaching task (random 8-mers scored by base values plus TAT/GCG motif effects):
a linear model and the small CNN trained on the same split, compared on held-out
sequences, and the CNN's filters read back as motif logos. Later pillars add their parts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from genoformer.engine.plots import comparison_bar
from genoformer.engine.runs import RunDir
from genoformer.seq import api
from genoformer.seq.tasks import teaching_task

DEMO_MODELS = ("linear", "cnn")


def run_demo(
    out: str | os.PathLike = "runs/demo", *, quick: bool = False, seed: int = 0
) -> dict[str, Any]:
    """Run the demo into ``out``; return the test metrics of each model.

    ``quick`` uses 6,000 sequences and two epochs (for tests); the full demo uses 50,000
    sequences and takes a few minutes on two CPU cores.
    """
    console = Console()
    out = Path(out)
    n, epochs = (6_000, 2) if quick else (50_000, 6)
    run = RunDir(out, command="demo", arguments={"quick": quick}, seed=seed)
    data = teaching_task(n, seed=seed)
    metrics: dict[str, dict[str, Any]] = {}
    for model in DEMO_MODELS:
        console.rule(f"seq teaching task: {model}")
        with run.step(f"seq_{model}"):
            result = api.train(
                data,
                out=out / "seq" / model,
                model=model,
                epochs=epochs,
                batch_size=256,
                eval_every=100 if quick else 300,
                patience=3,
                seed=seed,
            )
        metrics[model] = result.metrics
    with run.step("seq_interpret"):
        api.interpret(out / "seq" / "cnn", n_sequences=4, match_jaspar=False)
    figure = comparison_bar(metrics, "r2", out / "seq" / "comparison_r2.png")[0]
    run.record_output("seq_comparison", figure)
    summary = {m: {k: metrics[m][k] for k in ("r2", "pearson_r", "mse")} for m in metrics}
    run.record_results("seq_teaching_task", summary)
    run.finish()

    table = Table(title="seq teaching task, held-out sequences")
    for column in ("model", "R2", "Pearson r", "MSE"):
        table.add_column(column)
    for model, values in summary.items():
        table.add_row(model, *(f"{values[k]:.3f}" for k in ("r2", "pearson_r", "mse")))
    console.print(table)
    console.print(
        f"results in {out}: seq/<model>/ (loss curves, parity plots, worst predictions), "
        "seq/cnn/interpretation/ (filter logos, ISM and gradient x input logos)"
    )
    return summary
