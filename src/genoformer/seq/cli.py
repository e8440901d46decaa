"""``genoformer seq ...``: thin commands over :mod:`genoformer.seq.api`.

The API (torch, transformers) is imported inside each command, so that ``--help`` is quick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True)
_console = Console()

Inputs = Annotated[
    list[Path],
    typer.Argument(help="FASTA files (one class each), a TSV/CSV table, or a BED file."),
]
Labels = Annotated[
    str | None,
    typer.Option(help="Comma-separated class names, one per FASTA file (default: file names)."),
]
LabelPattern = Annotated[
    str | None, typer.Option(help=r"Regex with one group: the label in each FASTA header.")
]
Targets = Annotated[
    str | None, typer.Option(help="Comma-separated target columns of a table or BED file.")
]
Genome = Annotated[Path | None, typer.Option(help="Genome FASTA that BED intervals are cut from.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, npu or mps.")]


def _split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _read_options(labels, label_pattern, targets, genome, task=None) -> dict[str, Any]:
    return {
        "labels": _split_list(labels),
        "label_pattern": label_pattern,
        "targets": _split_list(targets),
        "genome": genome,
        "task": task,
    }


def _show(title: str, metrics: dict[str, Any]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4g}")
        elif isinstance(value, int | str):
            table.add_row(key, str(value))
    _console.print(table)


@app.command()
def train(
    inputs: Inputs,
    out: Annotated[Path, typer.Option(help="Run directory.")],
    model: Annotated[str, typer.Option(help="linear, cnn, deep_cnn or transformer.")] = "cnn",
    labels: Labels = None,
    label_pattern: LabelPattern = None,
    targets: Targets = None,
    genome: Genome = None,
    task: Annotated[str | None, typer.Option(help="regression or classification.")] = None,
    split: Annotated[str, typer.Option(help="random or chromosome.")] = "random",
    validation_chroms: Annotated[str, typer.Option(help="Chromosomes held out.")] = "chr8",
    test_chroms: Annotated[str, typer.Option(help="Chromosomes for testing.")] = "chr9",
    length_mode: Annotated[str, typer.Option(help="error, pad or crop.")] = "error",
    length: Annotated[int | None, typer.Option(help="Length to pad or crop to.")] = None,
    epochs: Annotated[float, typer.Option(help="Maximum number of epochs.")] = 20,
    batch_size: Annotated[int, typer.Option()] = 128,
    learning_rate: Annotated[float | None, typer.Option(help="Default per model.")] = None,
    patience: Annotated[int, typer.Option(help="Evaluations without improvement.")] = 4,
    eval_every: Annotated[int, typer.Option(help="Steps between evaluations.")] = 200,
    keep_checkpoints: Annotated[int, typer.Option(help="Checkpoints kept.")] = 2,
    filters: Annotated[int | None, typer.Option(help="CNN: first-layer filters.")] = None,
    filter_width: Annotated[int | None, typer.Option(help="CNN: filter width (odd).")] = None,
    kmer: Annotated[int | None, typer.Option(help="Transformer: k-mer size of tokens.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    device: Device = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
) -> None:
    """Train a model on sequences and evaluate it on a held-out split."""
    from genoformer.seq import api

    options = {"n_filters": filters, "filter_width": filter_width, "kmer": kmer}
    result = api.train(
        [str(p) for p in inputs],
        out=out,
        model=model,
        split=split,
        validation_chroms=_split_list(validation_chroms),
        test_chroms=_split_list(test_chroms),
        length_mode=length_mode,
        length=length,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        patience=patience,
        eval_every=eval_every,
        keep_checkpoints=keep_checkpoints,
        seed=seed,
        device=device,
        resume=resume,
        model_options={k: v for k, v in options.items() if v is not None},
        **_read_options(labels, label_pattern, targets, genome, task),
    )
    _show(f"test metrics ({model})", result.metrics)
    _console.print(f"run written to {result.run_dir}")


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory written by `seq train`.")],
    data: Annotated[list[Path] | None, typer.Option(help="Other labelled data.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
    labels: Labels = None,
    label_pattern: LabelPattern = None,
    targets: Targets = None,
    genome: Genome = None,
    device: Device = "auto",
) -> None:
    """Evaluate a trained model on its test split or on other labelled data."""
    from genoformer.seq import api

    result = api.evaluate(
        run,
        data=[str(p) for p in data] if data else None,
        out=out,
        device=device,
        **_read_options(labels, label_pattern, targets, genome),
    )
    _show("evaluation", result.metrics)
    _console.print(f"written to {result.run_dir}")


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="Run directory (or its model/ folder).")],
    inputs: Inputs,
    out: Annotated[Path, typer.Option(help="Predictions table (.tsv, .csv or .parquet).")],
    genome: Genome = None,
    device: Device = "auto",
) -> None:
    """Predict for new sequences."""
    from genoformer.seq import api

    result = api.predict(run, [str(p) for p in inputs], out=out, device=device, genome=genome)
    _console.print(f"{result.metrics['n']} predictions written to {result.outputs['predictions']}")


@app.command()
def interpret(
    run: Annotated[Path, typer.Argument(help="Run directory written by `seq train`.")],
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
    data: Annotated[list[Path] | None, typer.Option(help="Sequences to explain.")] = None,
    n_sequences: Annotated[int, typer.Option(help="Sequences drawn as logos.")] = 4,
    match_jaspar: Annotated[
        bool, typer.Option(help="Match filter motifs against JASPAR with Tomtom.")
    ] = True,
    labels: Labels = None,
    label_pattern: LabelPattern = None,
    targets: Targets = None,
    genome: Genome = None,
    device: Device = "auto",
) -> None:
    """Filters as heatmaps and logos matched to JASPAR; ISM and gradient x input logos."""
    from genoformer.seq import api

    result = api.interpret(
        run,
        out=out,
        data=[str(p) for p in data] if data else None,
        n_sequences=n_sequences,
        match_jaspar=match_jaspar,
        device=device,
        **_read_options(labels, label_pattern, targets, genome),
    )
    _console.print(json.dumps({k: str(v) for k, v in result.outputs.items()}, indent=1))
