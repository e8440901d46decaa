"""Paths the user names: there, or bad input that names the path and the fix.

Apart from :mod:`genoformer.engine.errors` (which names no file system) so that it stays the
one error type; every pillar checks a run directory, a model folder or an input file so.
"""

from __future__ import annotations

import os
from pathlib import Path

from genoformer.engine.errors import InputError

__all__ = ["require_path"]


def require_path(
    path: str | os.PathLike, problem: str, *, fix: str, file: str | os.PathLike | None = None
) -> Path:
    """``path`` as a :class:`~pathlib.Path`; nothing there is an InputError ``problem`` with
    ``fix``, naming ``file`` (default: ``path``; e.g. the folder that lacks a file)."""
    path = Path(path)
    if not path.exists():
        raise InputError(problem, file=path if file is None else file, fix=fix)
    return path
