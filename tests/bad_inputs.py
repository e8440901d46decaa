"""The bad-input catalogue: each case runs a real command on a malformed or borderline input and
checks the one line it answers with against the row of docs/bad-inputs.md that documents it.

A pillar's test file lists its cases (:class:`BadInput`) and calls :func:`check_case` for each;
:func:`check_catalogue` checks that the pillar's table in docs/bad-inputs.md holds exactly those
cases, with the messages the commands print today. The docs therefore show real messages, and
a message that changes (or a case that starts to crash) fails here.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from genoformer.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md"


@dataclass(frozen=True)
class BadInput:
    """One bad input: ``make(folder)`` writes the inputs into ``folder`` and returns the command
    line after ``genoformer`` (paths relative to ``folder``: the command runs there)."""

    name: str
    make: Callable[[Path], list[str]]
    #: The command's exit code: 2 for a refused input; 0 for an input that is accepted with a
    #: warning or a note (then ``warns`` is the text the warning must hold).
    code: int = 2
    warns: str | None = None
    marks: tuple = field(default=())


def write(path: Path, content: str | bytes) -> None:
    """Write ``content`` (text or bytes) to ``path``; None, so that a case's ``make`` chains
    writes and its command line with ``or``."""
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)


def answer(case: BadInput, folder: Path, capsys: pytest.CaptureFixture) -> str:
    """Run the case in ``folder``; return its one-line answer (the error line, or the warning
    line for an accepted input)."""
    args = case.make(folder)
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        with pytest.raises(SystemExit) as exit_info, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    code = exit_info.value.code or 0
    assert "Traceback" not in out + err, f"{case.name}: a traceback\n{err}"
    assert code == case.code, f"{case.name}: exit {code}, expected {case.code}\n{err}"
    if case.code == 2:
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, f"{case.name}: expected one error line\n{err}"
        return _plain(lines[0].removeprefix("error:").strip(), folder)
    texts = [str(w.message) for w in caught] + err.splitlines()
    hits = [t for t in texts if case.warns and case.warns in t]
    assert hits, f"{case.name}: no warning holding {case.warns!r}\n{err}"
    return _plain(hits[0], folder)


def _plain(message: str, folder: Path) -> str:
    """The message with the scratch folder taken out of its paths, on one line."""
    for prefix in (str(folder.resolve()) + "/", str(folder) + "/"):
        message = message.replace(prefix, "")
    return " ".join(message.split())


def documented(pillar: str) -> dict[str, str]:
    """The rows of ``pillar``'s table in docs/bad-inputs.md: input -> message."""
    text = DOC.read_text()
    section = re.search(rf"^## {pillar}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert section, f"docs/bad-inputs.md has no '## {pillar}' section"
    rows = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("|") and len(cells) == 2 and not set(cells[0]) <= set("-: "):
            rows[cells[0]] = cells[1].strip("`").replace("\\|", "|")
    rows.pop("Input", None)
    return rows


def check_case(case: BadInput, folder: Path, capsys: pytest.CaptureFixture, pillar: str) -> None:
    """The case answers with one clear line, and that line is the one the docs show."""
    message = answer(case, folder, capsys)
    row = f"| {case.name} | `{message.replace('|', chr(92) + '|')}` |"
    rows = documented(pillar)
    assert case.name in rows, f"docs/bad-inputs.md ({pillar}) lacks the row:\n{row}"
    assert rows[case.name] == message, f"docs/bad-inputs.md ({pillar}) should read:\n{row}"


def check_catalogue(cases: list[BadInput], pillar: str, at_least: int = 40) -> None:
    """The docs table lists exactly the tested cases, and enough of them."""
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), "two cases share a name"
    assert set(documented(pillar)) == set(names)
    assert len(names) >= at_least
