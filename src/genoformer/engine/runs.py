"""A run directory: manifest.json, atomic writes, the steps of a run.

Every analysis writes into its own directory. Files are written under a temporary name in
the same directory and renamed into place, so a killed run never leaves a half-written
result; ``manifest.json`` records the command, its arguments, versions, seed, timings and
which steps are complete (:meth:`RunDir.is_done` reads that back). A killed training run
(``seq train``, ``gwas train``, ``sc pretrain``) resumes from its last checkpoint with
``resume=True``; the other commands are quick enough to run again whole.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MANIFEST = "manifest.json"
_VERSIONED = ("genoformer", "torch", "transformers", "numpy", "pandas")


def rerun_fix(*, resumable: bool = True) -> str:
    """What to do with a directory that holds a run already, in every refusal: in the
    words of the command that runs (its --overwrite, its --resume if it has one), or of
    Python (overwrite=True, resume=True unless the caller is not ``resumable``)."""
    from genoformer.engine.errors import command_line, option, setting

    resume = option("resume", True) if resumable else None
    where = "" if command_line() else " where the function has one"
    again = f", {resume} to continue it{where}" if resume else ""
    return (
        f"pass {option('overwrite', True)} to replace it{again}, or choose another "
        f"directory ({setting('out')})"
    )


def continue_fix() -> str:
    """What to do with a run that stopped before it was complete."""
    from genoformer.engine.errors import command_line

    if not command_line():
        return "continue it with resume=True where its function has one, or run it again with overwrite=True"
    return "continue it with --resume where its command has one, or run it again with --overwrite"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Beside the target because os.replace is atomic only within one file system; a unique
    # name the writer creates itself, so the umask applies (mkstemp would make it owner-only).
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def swap_directory(new: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Put the finished directory ``new`` at ``final`` in one rename, replacing what was there.

    A directory cannot be renamed over a non-empty one, so the old one is renamed aside
    first and deleted only after the new one is in place: at every moment ``final`` is
    either the whole old directory or the whole new one (or, for an instant, absent).
    """
    new, final = Path(new), Path(final)
    if final.exists():
        old = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.old")
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, final)
    return final


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


def write_table(
    path: str | os.PathLike,
    table: pd.DataFrame,
    *,
    float_format: str | None = None,
    na_rep: str = "",
) -> Path:
    """Write a table as Parquet (``.parquet``), CSV (``.csv``) or TSV (any other suffix),
    atomically; text with ``float_format`` (``"%.6g"``, as plink writes) and ``na_rep`` for
    missing values as pandas' ``to_csv`` writes them."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
            return path
        sep = "," if path.suffix == ".csv" else "\t"
        text = _plain_text(table, sep, float_format, na_rep) if float_format else None
        if text is None:
            table.to_csv(tmp, sep=sep, index=False, float_format=float_format, na_rep=na_rep)
        else:
            tmp.write_text(text, encoding="utf-8")
    return path


def _plain_text(table: pd.DataFrame, sep: str, float_format: str, na_rep: str) -> str | None:
    """``table`` as ``to_csv`` writes it, or None where pandas would quote or fill a cell.

    Written by hand because pandas formats each float through Python one cell at a time,
    three times slower than one ``%`` per cell here: on a 20,000-variant association table
    that is 0.1 s of a 2 s command. Only plain tables take this path (number columns, and
    text without missing values, quotes, separators or line breaks); any other falls back to
    pandas, so the two never differ.
    """
    if table.columns.empty or any(sep in str(c) or '"' in str(c) for c in table.columns):
        return None
    columns = []
    for name in table.columns:
        if not isinstance(table[name].dtype, np.dtype):  # nullable, categorical, ...
            return None
        values = table[name].to_numpy()
        if values.dtype.kind == "f":
            cells = [float_format % v for v in values.tolist()]
            for i in np.flatnonzero(np.isnan(values)):
                cells[i] = na_rep
        elif values.dtype.kind in "iub":
            cells = [str(v) for v in values.tolist()]
        elif values.dtype.kind == "O" and all(isinstance(v, str) for v in values):
            cells = values.tolist()
            if any(sep in v or '"' in v or "\n" in v or "\r" in v for v in cells):
                return None
        else:
            return None
        columns.append(cells)
    lines = [sep.join(str(c) for c in table.columns)]
    lines.extend(sep.join(row) for row in zip(*columns, strict=True))
    return "\n".join(lines) + "\n"


def to_jsonable(obj: Any) -> Any:
    """Plain Python for numpy scalars/arrays, paths and nested containers."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in _VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclass
class RunResult:
    """What every command returns: its run directory, its numbers and the files it wrote.

    Attributes
    ----------
    run_dir
        The run directory (``manifest.json`` and everything below).
    metrics
        The run's numbers, JSON-ready (also in the manifest's ``results``).
    outputs
        The files written, by name, as paths (a name may hold a list of paths).
    """

    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def relocated(self, run_dir: str | os.PathLike) -> RunResult:
        """The same result once the run directory has moved to ``run_dir`` (a run written
        beside its place and renamed into it)."""
        new = Path(run_dir)

        def moved(path: Path) -> Path:
            return new / Path(path).relative_to(self.run_dir)

        outputs = {
            key: [moved(p) for p in value] if isinstance(value, list) else moved(value)
            for key, value in self.outputs.items()
        }
        return RunResult(new, dict(self.metrics), outputs)

    def table(self, name: str) -> pd.DataFrame:
        """Read the output table ``name`` (Parquet, TSV or CSV) back as a DataFrame."""
        path = Path(self.outputs[name])
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="," if path.suffix == ".csv" else "\t")


class RunDir:
    """The directory of one run and its manifest.

    Parameters
    ----------
    path
        The run directory; created if missing.
    command
        The command that made the run, e.g. ``"seq train"``.
    arguments
        The arguments it was given (recorded as they are, made JSON-safe).
    seed
        The seed of every random choice in the run.
    resume
        Keep the steps an earlier run of the same directory completed.
    overwrite
        Clear a directory that holds an earlier run first. Without it (or ``resume``), a
        directory that holds a run is refused: a run directory is one run's result, never
        files of two runs side by side.

    A run that stops in a step (an error, Ctrl-C, SIGTERM under the command line) is marked
    ``failed`` or ``interrupted`` in its manifest, with the reason.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        command: str,
        arguments: dict[str, Any] | None = None,
        seed: int | None = None,
        resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        from genoformer.engine.errors import InputError

        self.path = Path(path)
        check_run_path(self.path)
        previous = self._read_manifest()
        if previous and not resume:
            if not overwrite:
                raise InputError(
                    f"holds a run of `{previous.get('command', '?')}` "
                    f"({previous.get('status', 'unknown status')})",
                    file=self.path,
                    fix=rerun_fix(),
                )
            clear_directory(self.path)
            previous = {}
        self.path.mkdir(parents=True, exist_ok=True)
        self.manifest: dict[str, Any] = {
            "command": command,
            "arguments": to_jsonable(arguments or {}),
            "seed": seed,
            "versions": versions(),
            "started": previous.get("started", _now()),
            "status": "running",
            "steps": previous.get("steps", {}),
            "outputs": previous.get("outputs", {}),
            "results": previous.get("results", {}),
        }
        self.save()

        global _OPENED
        self.serial = _OPENED
        _OPENED += 1
        _OPEN.add(self)

    def _read_manifest(self) -> dict[str, Any]:
        manifest = self.path / MANIFEST
        if not manifest.exists():
            return {}
        try:
            document = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return {"status": "unreadable manifest"}
        return document if isinstance(document, dict) else {"status": "unreadable manifest"}

    def stop(self, error: BaseException) -> None:
        """Mark the run ``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` (anything else)."""
        if self.manifest.get("status") != "running":
            return
        interrupted = _interrupted(error)
        self.manifest["status"] = "interrupted" if interrupted else "failed"
        self.manifest["reason"] = interrupted or f"{type(error).__name__}: {error}"[:500]
        self.manifest["stopped"] = _now()
        self.save()
        _STOPPED.append(self)

    def file(self, name: str) -> Path:
        """Path of ``name`` inside the run directory (parents created)."""
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def save(self) -> None:
        write_json(self.path / MANIFEST, self.manifest)

    def record_output(self, key: str, path: str | os.PathLike | list) -> None:
        """Note a written file (or list of files) in the manifest, relative to the run."""
        self.record_outputs({key: path})

    def record_outputs(self, outputs: Mapping[str, str | os.PathLike | list]) -> None:
        """Note every written file of ``outputs`` (name -> path or list of paths)."""
        for key, path in outputs.items():
            paths = path if isinstance(path, list) else [path]
            relative = [os.path.relpath(p, self.path) for p in paths]
            self.manifest["outputs"][key] = relative if isinstance(path, list) else relative[0]
        self.save()

    def record_results(self, key: str, results: Any) -> None:
        self.manifest["results"][key] = to_jsonable(results)
        self.save()

    def is_done(self, step: str) -> bool:
        return self.manifest["steps"].get(step, {}).get("status") == "done"

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step and mark it done in the manifest when it finishes without error."""
        start = time.perf_counter()
        self.manifest["steps"][name] = {"status": "running", "started": _now()}
        self.save()
        try:
            yield
        except BaseException as error:
            self.manifest["steps"][name]["status"] = "failed"
            self.stop(error)
            self.save()
            raise
        self.manifest["steps"][name].update(
            status="done", seconds=round(time.perf_counter() - start, 3)
        )
        self.save()

    def finish(
        self,
        metrics: Mapping[str, Any] | None = None,
        outputs: Mapping[str, str | os.PathLike | list] | None = None,
    ) -> RunResult:
        """Record the last outputs, mark the run complete, and return its :class:`RunResult`.

        The result's ``outputs`` are every file the manifest records, as absolute paths.
        """
        if outputs:
            self.record_outputs(outputs)
        self.manifest["status"] = "complete"
        self.manifest["finished"] = _now()
        self.manifest.pop("reason", None)
        self.save()
        _OPEN.discard(self)
        recorded = {
            key: [self.path / p for p in value] if isinstance(value, list) else self.path / value
            for key, value in self.manifest["outputs"].items()
        }
        return RunResult(self.path, dict(metrics or {}), recorded)


# Runs of this process not finished yet, and those stopped: the command line marks the first
# when a command fails outside a step, and names the second in one line.
_OPEN: weakref.WeakSet[RunDir] = weakref.WeakSet()
_STOPPED: list[RunDir] = []
# How many runs this process opened: each run's ``serial`` (a command's runs are those from
# the count when it started).
_OPENED = 0


def runs_opened() -> int:
    """How many runs this process has opened so far."""
    return _OPENED


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by the command line's handler so that runs stop as on Ctrl-C."""


def _interrupted(error: BaseException | None) -> str | None:
    """``"SIGINT"``/``"SIGTERM"`` when ``error`` is (or was caused by) an interruption."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, Terminated):
            return "SIGTERM"
        if isinstance(error, KeyboardInterrupt):
            return "SIGINT"
        error = error.__context__
        seen += 1
    return None


def stop_open_runs(error: BaseException, since: int = 0) -> list[RunDir]:
    """Mark the runs opened since run number ``since`` that are still running as stopped by
    ``error``; return those of them that stopped (for the command line's one-line report)."""
    for run in [run for run in _OPEN if run.serial >= since]:
        run.stop(error)
    return [
        run
        for run in _STOPPED
        if run.serial >= since and run.manifest.get("status") in ("failed", "interrupted")
    ]


def check_run_path(path: Path) -> None:
    """Refuse a file standing where a run directory is to be (found before any work)."""
    from genoformer.engine.errors import InputError

    if path.exists() and not path.is_dir():
        raise InputError("exists and is not a directory", file=path, fix="choose another --out")


def check_resume_arguments(
    manifest: Path, arguments: Mapping[str, Any], resumable: set[str] | frozenset[str]
) -> None:
    """Refuse to resume the run of ``manifest`` with other arguments than it was started
    with (those in ``resumable`` may change: they do not change the results)."""
    from genoformer.engine.errors import InputError, option

    if not manifest.exists():
        return
    before = json.loads(manifest.read_text()).get("arguments", {})
    now = json.loads(json.dumps(dict(arguments), default=str))
    changed = sorted(
        k for k in set(before) | set(now) if k not in resumable and before.get(k) != now.get(k)
    )
    if changed:
        key = changed[0]
        raise InputError(
            f"the run was started with "
            f"{option(key, before.get(key)) or f'{key}={before.get(key)!r}'}, not "
            f"{now.get(key)!r}",
            file=manifest,
            where="arguments",
            fix="resume with the arguments the run was started with, or choose another --out",
        )


def clear_directory(path: Path) -> None:
    """Remove everything inside ``path`` (the directory itself stays)."""
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def read_manifest(
    run_dir: str | os.PathLike, *, what: str = "run", command: str | None = None
) -> dict[str, Any]:
    """The manifest of a finished run; an incomplete one (running, failed, interrupted) is
    refused, naming it, so that no reader takes half a run for a result, and so is a run of
    another command than ``command`` (a reader given the wrong kind of run)."""
    from genoformer.engine.errors import InputError

    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"unreadable manifest ({error})", file=path) from None
    # A manifest without a status predates the status (or was written by hand): read as it is.
    status = manifest.get("status", "complete")
    if status != "complete":
        reason = f": {manifest['reason']}" if manifest.get("reason") else ""
        raise InputError(
            f"the {what} is not complete (status {status}{reason})",
            file=path,
            where="status",
            fix=continue_fix(),
        )
    if command is not None and manifest.get("command", command) != command:
        raise InputError(
            f"this is a run of `{manifest['command']}`, not the {what} of `{command}` it needs",
            file=path,
            where="command",
            fix=f"give the run directory that `genoformer {command}` wrote",
        )
    return manifest
