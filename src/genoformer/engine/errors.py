"""Errors for bad input: one message that names the file, the place and the fix."""

from __future__ import annotations

from os import PathLike


class InputError(Exception):
    """Bad input from the user, reported as one line (exit code 2 on the command line).

    Parameters
    ----------
    problem
        What is wrong, e.g. ``"5 columns, expected 6"``.
    file
        The file the problem is in, if any.
    where
        The place in the file: ``"line 17"``, ``"record 'chr1:100-300', position 12"``.
    fix
        What the user can do about it.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | PathLike | None = None,
        where: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = None if file is None else str(file)
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        place = " ".join(p for p in (self.file, self.where) if p)
        text = f"{place}: {self.problem}" if place else self.problem
        if self.fix:
            text += f" (fix: {self.fix})"
        return text

    def __str__(self) -> str:
        return self.message
