"""Parameter descriptions that many public functions share, written once.

As scanpy's ``_docs.py``: a docstring line that holds only ``{name}`` is replaced by the
shared text of ``name``, indented as that line is::

    @shared_docs
    def train(..., out, device="auto"):
        \"\"\"Train a model.

        Parameters
        ----------
        {out}
        {device}
        \"\"\"
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

__all__ = ["SHARED", "shared_docs"]

F = TypeVar("F", bound=Callable)

SHARED: dict[str, str] = {
    "out": """out
    The run directory: ``manifest.json`` (command, arguments, versions, seed, timings,
    outputs, metrics) and every file the command writes; created if missing.""",
    "device": """device
    ``"auto"`` (cuda, then an Ascend npu, then Apple mps, then the CPU), or ``"cpu"``,
    ``"cuda"``, ``"cuda:1"``, ``"npu"``, ``"mps"``.""",
    "seed": """seed
    Seed of every random choice of the run (splits, initial weights, batches, masks).""",
    "resume": """resume
    Continue a killed run in ``out`` from its last complete checkpoint.""",
    "run_dir": """run_dir
    The directory of an earlier run that this command reads.""",
    "threads": """threads
    Threads of the compiled kernels (default: every core).""",
    "inputs_device": """device
    Where the inputs are put (the model that scores them must be there).""",
    "progress": """progress
    Draw progress bars on the terminal.""",
    "figure_path": """path
    Target path: an image suffix (``.png``, ``.pdf`` ...) gives way to each format, any
    other name gets the format appended (see :func:`~genoformer.engine.plots.save_figure`).""",
    "figure_title": """title
    Figure title.""",
    "formats": """formats
    File formats to write, e.g. ``("png", "pdf")``.""",
    "figures": """list of Path
    The files written, one per format.""",
    "page": """Path
    The self-contained HTML file written.""",
    "returns": """RunResult
    ``run_dir``, ``metrics`` (also in the manifest's ``results``) and ``outputs`` (every
    file written, by name).""",
}

_PLACEHOLDER = re.compile(r"^([ \t]*)\{(\w+)\}[ \t]*$", re.MULTILINE)


def shared_docs(function: F) -> F:
    """Fill ``{name}`` lines of ``function``'s docstring from :data:`SHARED`."""

    def fill(match: re.Match) -> str:
        indent, name = match.groups()
        if name not in SHARED:
            raise KeyError(f"{function.__qualname__}: no shared parameter text {name!r}")
        return "\n".join(indent + line if line else line for line in SHARED[name].splitlines())

    if function.__doc__:
        function.__doc__ = _PLACEHOLDER.sub(fill, function.__doc__)
    return function
