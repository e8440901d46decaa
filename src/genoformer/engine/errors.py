"""Errors for bad input: one message that names the file, the place and the fix.

A fix names the setting to change the way the user gives it: :func:`option` is the
command-line option while a ``genoformer`` command runs (the command line says which, and
its options, with :func:`running_command`; None when that command has no such option), and
the Python keyword otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
        """One line (a library's multi-line text in ``problem`` is joined)."""
        place = " ".join(p for p in (self.file, self.where) if p)
        text = f"{place}: {self.problem}" if place else self.problem
        if self.fix:
            text += f" (fix: {self.fix})"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.message


def warn_input(
    problem: str,
    *,
    file: str | PathLike | None = None,
    where: str | None = None,
    fix: str | None = None,
) -> None:
    """A warning about an input that is accepted as it is, in the words of an InputError
    (file, place, what was done and the fix), so that it reads as one line too."""
    warnings.warn(InputError(problem, file=file, where=where, fix=fix).message, stacklevel=3)


def require_choice(
    value: str, choices: Iterable[str], *, what: str, where: str | None = None
) -> None:
    """An InputError ``unknown <what> '<value>'`` unless ``value`` is one of ``choices``
    (the fix lists them)."""
    choices = list(choices)
    if value not in choices:
        raise InputError(
            f"unknown {what} '{value}'", where=where, fix=f"use one of {', '.join(choices)}"
        )


def option(parameter: str, value: object = None, *, flag: str | None = None) -> str | None:
    """The setting ``parameter`` as the user gives it, for the fix of an error.

    While a ``genoformer`` command runs: its option ``flag`` (default ``--`` and the
    parameter with dashes), followed by ``value`` if given (``--length-mode pad``; a switch
    given ``True`` is the flag alone, ``--overwrite``); None when
    the running command has no such option, so that the caller says what to do instead. In
    Python: the keyword, ``parameter=`` or ``parameter='pad'``.
    """
    if not command_line():
        return f"{parameter}=" if value is None else f"{parameter}={value!r}"
    flag = flag or "--" + parameter.replace("_", "-")
    if flag not in _command_options():
        return None
    return flag if value is None or value is True else f"{flag} {value}"


def setting(parameter: str, *, flag: str | None = None) -> str:
    """The name of a setting in a problem or a place: the running command's option when it
    has one (see :func:`option`), else the Python parameter."""
    return (option(parameter, flag=flag) or f"{parameter}=").removesuffix("=")


def cli_option(parameter: str, *, flag: str | None = None) -> str | None:
    """The running command's option for ``parameter``, as the place of an error (``where=``);
    None from Python, or when the command has no such option."""
    return option(parameter, flag=flag) if command_line() else None


def command_line() -> bool:
    """Whether a ``genoformer`` command is running (not a Python caller)."""
    return _OPTIONS.get() is not None


@contextmanager
def running_command(options: Callable[[], Iterable[str]]) -> Iterator[None]:
    """The command line runs a command whose options (``--out``, ``--labels``, ...) the call
    ``options()`` gives (called once, when a message first needs them): within the block,
    fixes name those (:func:`option`) instead of Python keywords."""
    token = _OPTIONS.set(_Options(options))
    try:
        yield
    finally:
        _OPTIONS.reset(token)


class _Options:
    def __init__(self, find: Callable[[], Iterable[str]]) -> None:
        self._find, self._found = find, None

    def get(self) -> frozenset[str]:
        if self._found is None:
            self._found = frozenset(self._find())
        return self._found


def _command_options() -> frozenset[str]:
    options = _OPTIONS.get()
    return options.get() if options is not None else frozenset()


#: The options of the command the command line runs; None outside one (a Python caller).
_OPTIONS: ContextVar[_Options | None] = ContextVar("genoformer_options", default=None)
