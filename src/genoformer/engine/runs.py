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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MANIFEST = "manifest.json"
_VERSIONED = ("genoformer", "torch", "transformers", "numpy", "pandas")


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


def write_table(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write a table as TSV (``.tsv``), CSV (``.csv``) or Parquet (``.parquet``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, sep="," if path.suffix == ".csv" else "\t", index=False)
    return path


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
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        command: str,
        arguments: dict[str, Any] | None = None,
        seed: int | None = None,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        previous = self._read_manifest() if resume else {}
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

    def _read_manifest(self) -> dict[str, Any]:
        manifest = self.path / MANIFEST
        return json.loads(manifest.read_text()) if manifest.exists() else {}

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
        except BaseException:
            self.manifest["steps"][name]["status"] = "failed"
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
        self.save()
        recorded = {
            key: [self.path / p for p in value] if isinstance(value, list) else self.path / value
            for key, value in self.manifest["outputs"].items()
        }
        return RunResult(self.path, dict(metrics or {}), recorded)
