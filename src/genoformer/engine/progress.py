"""The one progress bar every long loop shows (rich, on stderr)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(*, enabled: bool = True, unit: str = "", transient: bool = False) -> Progress:
    """A rich progress bar: description, bar, done/total ``unit``, elapsed and remaining time.

    Use it as a context manager and add tasks to it; with ``enabled=False`` it draws nothing
    (its tasks still count), so callers need no second code path.
    """
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=transient,
    )
