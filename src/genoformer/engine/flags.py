"""Command-line options every pillar's commands share, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["Overwrite"]

#: Replace the earlier run in ``--out`` (without it, a directory that holds a run is refused).
Overwrite = Annotated[
    bool, typer.Option(help="Replace the run already in --out (else it is refused).")
]
