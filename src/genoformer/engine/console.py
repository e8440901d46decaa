"""What every command prints at its end: one rich table of the run's numbers, then its path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from genoformer.engine.runs import RunResult

__all__ = ["print_summary", "summary_rows"]

_console = Console()


def summary_rows(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(name, value) rows of the scalar metrics; nested dicts become ``outer.inner`` names."""
    rows: list[tuple[str, str]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(summary_rows(value, prefix=f"{name}."))
        elif isinstance(value, bool) or value is None:
            rows.append((name, str(value)))
        elif isinstance(value, float):
            rows.append((name, f"{value:.4g}"))
        elif isinstance(value, int | str):
            rows.append((name, str(value)))
    return rows


def print_summary(
    title: str, result: RunResult, headline: str | None = None, console: Console | None = None
) -> None:
    """The command's one-sentence ``headline`` (if any), its summary table (``title``) and
    the run directory's path."""
    console = console or _console
    if headline:
        console.print(headline, highlight=False, soft_wrap=True)
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in summary_rows(result.metrics):
        table.add_row(name, value)
    if table.row_count:
        console.print(table)
    console.print(f"run directory: {result.run_dir}", highlight=False, soft_wrap=True)
