"""The Manhattan and QQ figures of an association run, and a second process that draws them.

``gwas assoc`` spends most of its time after start-up on one core (reading, QC, writing
the tables; only the tests themselves use every thread), and loading matplotlib and plotly
and drawing the four figures takes more than a second on top. :class:`FigureProcess`
starts a Python process with the command (``gwas assoc`` starts two: the pictures and the
pages): it loads the plotting modules while the association runs, then draws from
``assoc.parquet`` while the command writes its other tables. A thread would not do:
importing and drawing hold the GIL that the command's own Python code needs. ``gwas plot``
calls :func:`draw` in its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

__all__ = ["FigureProcess", "draw", "more_than_one_core"]


def draw(results: pd.DataFrame, out_dir: Path, formats: Sequence[str]) -> dict[str, Path] | None:
    """The Manhattan and QQ plots of ``results`` in each of ``formats`` (``png``, ``pdf``,
    ``svg``: the pictures; ``html``: the pages) under ``out_dir``, by output name; None when
    no variant has a p-value to draw."""
    # Imported here: matplotlib takes most of a second to load, and the commands that draw
    # nothing (qc, epistasis, simulate) should not wait for it.
    from genoformer.gwas.plots import association as plots
    from genoformer.gwas.stats.adjust import genomic_control_lambda

    if not plots.plottable(results):
        return None
    lam = genomic_control_lambda(results["P"].to_numpy(dtype=float))
    pictures = [fmt for fmt in formats if fmt != "html"]
    files: dict[str, Path] = {}
    if pictures:
        # The first format's file stands for the picture in the run's outputs.
        files["manhattan"], *_ = plots.manhattan(results, out_dir / "manhattan", formats=pictures)
        files["qq"], *_ = plots.qq(results, out_dir / "qq", lambda_gc=lam, formats=pictures)
    if "html" in formats:
        files["manhattan_html"] = plots.manhattan_html(results, out_dir / "manhattan.html")
        files["qq_html"] = plots.qq_html(results, out_dir / "qq.html", lambda_gc=lam)
    return files


def more_than_one_core() -> bool:
    """Whether this process may run on more than one core: on one, a second process only
    adds its start-up, and drawing in this one is quicker."""
    cores = (
        os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    )
    return len(cores) > 1


class FigureProcess:
    """A second process, started now, that draws the figures of a results file later.

    Use it as a context manager: leaving the block stops the process if :meth:`files` was
    not called (an error in the association, say), so no figure of a failed run is drawn.
    """

    def __init__(self, formats: Sequence[str]) -> None:
        package_root = str(Path(__file__).resolve().parents[3])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        # One thread each: the association uses the cores while this process loads.
        threads = {n: "1" for n in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        self._child = subprocess.Popen(
            [sys.executable, "-m", __name__, *formats],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **threads, "PYTHONPATH": path},
        )

    def request(self, results_file: Path, out_dir: Path) -> None:
        """Ask for the figures of ``results_file`` (a Parquet table written whole) in
        ``out_dir``; :meth:`files` waits for them."""
        request = json.dumps({"results": str(results_file), "out": str(out_dir)})
        self._child.stdin.write(request + "\n")
        self._child.stdin.flush()  # communicate(), in files(), closes it

    def files(self) -> dict[str, Path] | None:
        """Wait for the figures asked for: :func:`draw`'s answer."""
        out, err = self._child.communicate()
        if self._child.returncode != 0:
            raise RuntimeError(
                f"drawing the figures failed (exit {self._child.returncode}):\n{err.strip()}"
            )
        if err.strip():
            sys.stderr.write(err)  # the drawing's warnings, as if drawn here
        answer = json.loads(out.strip().splitlines()[-1])
        return None if answer is None else {name: Path(p) for name, p in answer.items()}

    def __enter__(self) -> FigureProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._child.poll() is None:
            self._child.kill()
            self._child.communicate()


def _main(formats: list[str]) -> None:
    # Loaded while the command works: what drawing would otherwise load on first use.
    import matplotlib.backends.backend_agg  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import plotly.io
    import plotly.subplots  # noqa: F401

    from genoformer.gwas.plots import association  # noqa: F401

    plotly.io.templates[plotly.io.templates.default]
    line = sys.stdin.readline()
    if not line:
        return  # the command stopped before its table was written: draw nothing
    request = json.loads(line)
    files = draw(pd.read_parquet(request["results"]), Path(request["out"]), formats)
    print(json.dumps(None if files is None else {name: str(p) for name, p in files.items()}))


if __name__ == "__main__":
    _main(sys.argv[1:])
