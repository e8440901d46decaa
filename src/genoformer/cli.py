"""The ``genoformer`` command: one Typer app over the Python API.

Every command is one call into a public function with the same arguments. Bad input
(:class:`InputError`) becomes a one-line message and exit code 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from genoformer import __version__
from genoformer.engine.errors import InputError, running_command
from genoformer.engine.flags import Overwrite
from genoformer.gwas.cli import app as gwas_app
from genoformer.sc.cli import app as sc_app
from genoformer.seq.cli import app as seq_app

app = typer.Typer(
    name="genoformer",
    help="Deep learning on genomic data: gwas, sc and seq over one engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(
    gwas_app, name="gwas", help="Genotypes to phenotype: simulate, qc, pca, assoc, train, explain."
)
app.add_typer(seq_app, name="seq", help="DNA sequence to function: train, evaluate, interpret.")
app.add_typer(
    sc_app,
    name="sc",
    help="Single cells, Geneformer-compatible: tokenize, medians, pretrain, embed.",
)

_state = {"debug": False}
_stderr = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"genoformer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for bad input.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    _state["debug"] = debug


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Run directory of the demo.")] = Path("runs/demo"),
    quick: Annotated[bool, typer.Option(help="A smaller, faster demo (for tests).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """The main job on generated data: seq teaching task (linear vs CNN) and a simulated GWAS."""
    from genoformer.demo import run_demo

    run_demo(out, quick=quick, seed=seed, overwrite=overwrite)


@app.command()
def report(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Run directories (the runs in their subdirectories join them)."),
    ],
    out: Annotated[Path, typer.Option(help="The HTML page to write.")] = Path("report.html"),
    title: Annotated[str, typer.Option(help="Title of the page.")] = "genoformer report",
    genes: Annotated[
        Path | None,
        typer.Option(help="BED or GTF file of genes: a gene track under each regional view."),
    ] = None,
) -> None:
    """One self-contained interactive HTML page over runs of any pillar (opens offline)."""
    from genoformer.report import write_report

    path = write_report(*runs, out=out, title=title, genes=genes)
    typer.echo(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    # Our own progress bars say what runs; the Hugging Face libraries' per-file bars only add
    # noise. The variable, read when they are first imported, keeps transformers itself from
    # being imported here (`gwas assoc` and `--help` need neither torch nor transformers).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    signal.signal(signal.SIGTERM, _terminate)
    runs = sys.modules.get("genoformer.engine.runs")  # loaded already when called in-process
    first = runs.runs_opened() if runs is not None else 0
    try:
        words = argv if argv is not None else sys.argv[1:]
        with running_command(lambda: _options_of(words)):
            app(args=argv, standalone_mode=True)
    except InputError as error:
        _report_stopped(error, first)
        if debug:
            raise
        _stderr.print(f"[bold red]error:[/] {error.message}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except SystemExit as done:
        if done.code not in (0, None):
            _report_stopped(done, first)
        raise
    except BaseException as error:
        _report_stopped(error, first)
        raise


def _options_of(argv: list[str]) -> set[str]:
    """The options of the command ``argv`` names (``seq train`` -> ``--out``, ``--labels``,
    ...), so that error messages name those and not the Python keywords."""
    command = typer.main.get_command(app)
    for word in (a for a in argv if not a.startswith("-")):
        subcommands = getattr(command, "commands", None)
        if not subcommands or word not in subcommands:
            break
        command = subcommands[word]
    return {n for p in command.params for n in (*p.opts, *p.secondary_opts) if n.startswith("-")}


def _terminate(signum: int, frame: object) -> None:
    from genoformer.engine.runs import Terminated

    raise Terminated("SIGTERM")


def _report_stopped(error: BaseException, first: int) -> None:
    """Mark the runs the command left unfinished (those from run number ``first``), and say in
    one line each how to go on."""
    if "genoformer.engine.runs" not in sys.modules:  # no run was started
        return
    from genoformer.engine.runs import stop_open_runs

    for run in stop_open_runs(error, since=first):
        status, reason = run.manifest["status"], run.manifest.get("reason", "")
        _stderr.print(
            f"[bold yellow]{status}:[/] {run.path} ({reason}); continue it with --resume where "
            "the command has one, or start it again with --overwrite",
            highlight=False,
            soft_wrap=True,
        )


if __name__ == "__main__":
    main()
