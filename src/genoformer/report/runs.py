"""The runs a report shows: each directory's manifest and the files it names, nothing else.

A directory given to the report must hold a complete run (``manifest.json`` with status
``complete``); runs in its subdirectories (the demo's, a pipeline's) join it, in path
order, those not complete left out with a note.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from genoformer.engine.console import summary_rows
from genoformer.engine.errors import InputError
from genoformer.engine.runs import MANIFEST, read_manifest

__all__ = ["Run", "collect_runs", "summary_html"]


@dataclass
class Run:
    """A complete run: its directory and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def command(self) -> str:
        return str(self.manifest.get("command", "?"))

    @property
    def arguments(self) -> dict[str, Any]:
        return self.manifest.get("arguments") or {}

    @property
    def results(self) -> dict[str, Any]:
        return self.manifest.get("results") or {}

    def output(self, key: str) -> Path | None:
        """The file the manifest records as ``key`` (relative to the run), if it is there."""
        value = (self.manifest.get("outputs") or {}).get(key)
        if not isinstance(value, str):
            return None
        path = self.path / value
        return path if path.exists() else None

    def outputs(self) -> dict[str, Any]:
        return self.manifest.get("outputs") or {}

    def table(self, *keys: str) -> pd.DataFrame | None:
        """The first of the output tables ``keys`` the run wrote (Parquet, TSV or CSV)."""
        for key in keys:
            path = self.output(key)
            if path is not None and path.is_file():
                return read_any_table(path)
        return None

    def json(self, key: str) -> Any:
        path = self.output(key)
        return None if path is None else json.loads(path.read_text())


def read_any_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, sep="," if path.suffix == ".csv" else "\t")


def _nested(root: Path) -> Iterable[Path]:
    """Run directories below ``root`` (hidden and model/checkpoint folders skipped)."""
    for folder, names, files in os.walk(root):
        names[:] = sorted(
            n for n in names if not n.startswith(".") and n not in ("model", "checkpoints")
        )
        if Path(folder) != root and MANIFEST in files:
            yield Path(folder)


def collect_runs(paths: Iterable[str | os.PathLike]) -> tuple[list[Run], list[str]]:
    """The runs of ``paths`` and their subdirectories; notes on the nested runs left out."""
    runs: list[Run] = []
    notes: list[str] = []
    seen: set[Path] = set()
    for given in paths:
        root = Path(given)
        if not (root / MANIFEST).is_file():
            raise InputError(
                "is not a run directory (no manifest.json)",
                file=root,
                fix="give directories that genoformer commands wrote (their --out)",
            )
        for index, folder in enumerate([root, *_nested(root)]):
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            if index == 0:
                runs.append(Run(folder, read_manifest(folder)))
                continue
            try:
                runs.append(Run(folder, read_manifest(folder)))
            except InputError as error:
                notes.append(f"left out {folder}: {error.message}")
    return runs, notes


def anchor(run: Run, index: int) -> str:
    """An HTML id for the run's section."""
    return f"run{index}-" + re.sub(r"[^a-z0-9]+", "-", run.command.lower()).strip("-")


def _rows_html(rows: Iterable[tuple[str, str]]) -> str:
    return "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)


def _argument_rows(arguments: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in arguments.items():
        if value is None or value is False or key == "overwrite":
            continue
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
        rows.append((key, text if len(text) <= 80 else text[:77] + "..."))
    return rows


def summary_html(run: Run) -> str:
    """The run's summary: command, directory, arguments, versions, timings and metrics."""
    manifest = run.manifest
    about = [
        ("command", f"genoformer {run.command}"),
        ("directory", str(run.path)),
        ("status", str(manifest.get("status"))),
        ("started", str(manifest.get("started", ""))),
        ("finished", str(manifest.get("finished", ""))),
        ("seed", str(manifest.get("seed"))),
    ]
    versions = list((manifest.get("versions") or {}).items())
    timings = [
        (name, f"{step['seconds']:.1f} s")
        for name, step in (manifest.get("steps") or {}).items()
        if isinstance(step, dict) and "seconds" in step
    ]
    metrics = summary_rows(run.results)
    blocks = [
        ("run", about + versions),
        ("arguments", _argument_rows(run.arguments)),
        ("timings", timings),
        ("metrics", metrics[:60]),
    ]
    parts = [
        f"<div><h4>{title}</h4><table>{_rows_html(rows)}</table></div>"
        for title, rows in blocks
        if rows
    ]
    return f"<div class='summary'>{''.join(parts)}</div>"
