"""``genoformer seq ...``: thin commands over :mod:`genoformer.seq.api`.

The API (torch, transformers) is imported inside each command, so that ``--help`` is quick.
Every command ends with :func:`genoformer.engine.console.print_summary`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from genoformer.engine.flags import Overwrite

app = typer.Typer(no_args_is_help=True)

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
TrainedRun = Annotated[Path, typer.Argument(help="Run directory written by `seq train`.")]
OutDir = Annotated[Path | None, typer.Option(help="Output directory.")]
#: The options that say how input files are read, declared once for every command that
#: reads labelled data (see :func:`_reads_data`).
_READ_OPTIONS = tuple(
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=option, default=None)
    for name, option in (
        ("labels", Labels),
        ("label_pattern", LabelPattern),
        ("targets", Targets),
        ("genome", Genome),
    )
)


def _split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _reads_data(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the read options (``--labels``, ``--label-pattern``, ``--targets``,
    ``--genome``) in the place of its keyword-only ``read`` parameter, which receives them
    as keywords of :func:`genoformer.seq.io.load.load_sequences`."""
    signature = inspect.signature(command, eval_str=True)
    parameters = []
    for parameter in signature.parameters.values():
        parameters.extend(_READ_OPTIONS if parameter.name == "read" else [parameter])

    @functools.wraps(command)
    def with_read_options(*args: Any, **kwargs: Any) -> None:
        labels, label_pattern, targets, genome = (kwargs.pop(p.name) for p in _READ_OPTIONS)
        read = {
            "labels": _split_list(labels),
            "label_pattern": label_pattern,
            "targets": _split_list(targets),
            "genome": genome,
        }
        command(*args, read=read, **kwargs)

    with_read_options.__signature__ = signature.replace(parameters=parameters)
    return with_read_options


@app.command()
@_reads_data
def train(
    inputs: Inputs,
    out: Annotated[Path, typer.Option(help="Run directory.")],
    model: Annotated[str, typer.Option(help="linear, cnn, deep_cnn or transformer.")] = "cnn",
    *,
    read: dict[str, Any],
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
    eval_every: Annotated[
        int | None, typer.Option(help="Steps between evaluations (default: one epoch).")
    ] = None,
    keep_checkpoints: Annotated[int, typer.Option(help="Checkpoints kept.")] = 2,
    filters: Annotated[int | None, typer.Option(help="CNN: first-layer filters.")] = None,
    filter_width: Annotated[int | None, typer.Option(help="CNN: filter width (odd).")] = None,
    kmer: Annotated[int | None, typer.Option(help="Transformer: k-mer size of tokens.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    device: Device = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Train a model on sequences and evaluate it on a held-out split."""
    from genoformer.engine.console import print_summary
    from genoformer.seq import api

    options = {"n_filters": filters, "filter_width": filter_width, "kmer": kmer}
    result = api.train(
        [str(p) for p in inputs],
        out=out,
        model=model,
        task=task,
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
        overwrite=overwrite,
        model_options={k: v for k, v in options.items() if v is not None},
        **read,
    )
    print_summary(f"seq train: test metrics ({model})", result)


@app.command()
@_reads_data
def evaluate(
    run: TrainedRun,
    data: Annotated[list[Path] | None, typer.Option(help="Other labelled data.")] = None,
    out: OutDir = None,
    *,
    read: dict[str, Any],
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Evaluate a trained model on its test split or on other labelled data."""
    from genoformer.engine.console import print_summary
    from genoformer.seq import api

    data_paths = [str(p) for p in data] if data else None
    result = api.evaluate(run, data=data_paths, out=out, device=device, overwrite=overwrite, **read)
    print_summary("seq evaluate", result)


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="Run directory (or its model/ folder).")],
    inputs: Inputs,
    out: Annotated[Path, typer.Option(help="Predictions table (.tsv, .csv or .parquet).")],
    genome: Genome = None,
    device: Device = "auto",
) -> None:
    """Predict for new sequences."""
    from genoformer.engine.console import print_summary
    from genoformer.seq import api

    result = api.predict(run, [str(p) for p in inputs], out=out, device=device, genome=genome)
    headline = f"{result.metrics['n']} predictions written to {result.outputs['predictions']}"
    print_summary("seq predict", result, headline)


@app.command()
@_reads_data
def interpret(
    run: TrainedRun,
    out: OutDir = None,
    data: Annotated[list[Path] | None, typer.Option(help="Sequences to explain.")] = None,
    n_sequences: Annotated[int, typer.Option(help="Sequences drawn as logos.")] = 4,
    match_jaspar: Annotated[
        bool, typer.Option(help="Match filter motifs against JASPAR with Tomtom.")
    ] = True,
    *,
    read: dict[str, Any],
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Filters as heatmaps and logos matched to JASPAR; ISM and gradient x input logos."""
    from genoformer.engine.console import print_summary
    from genoformer.seq import api

    result = api.interpret(
        run,
        out=out,
        data=[str(p) for p in data] if data else None,
        n_sequences=n_sequences,
        match_jaspar=match_jaspar,
        device=device,
        overwrite=overwrite,
        **read,
    )
    print_summary("seq interpret", result, f"{len(result.outputs)} files written")
