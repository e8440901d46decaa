"""Pictures of perturbation statistics: a volcano plot, per-gene distributions, the states.

Each is one :class:`~genoformer.engine.figures.Chart` drawn twice, as a PNG (matplotlib) and
as an interactive HTML page (plotly), by the engine's renderers.

- :func:`volcano`: each gene's shift against -log10 FDR, the FDR 0.05 line, the called genes
  coloured and the strongest named (``vs_null`` and ``goal_state_shift``).
- :func:`shift_distributions`: every cell's value for the first genes of the statistics
  table (its order: called genes first), with each gene's mean.
- :func:`state_map`: in silico treatment, in the plane of the cosine similarity to the goal
  state (x) and to the start state (y): the states' mean embeddings, the start state's
  cells, where every perturbation moves them, and lines from each cell to where the genes
  that move it most towards the goal take it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from genoformer.engine.figures import (
    Axis,
    Chart,
    Line,
    Note,
    Panel,
    RefLine,
    Scatter,
    palette,
    render_html,
    render_png,
)

__all__ = ["shift_distributions", "state_map", "volcano"]

#: Genes named in the volcano plot, drawn in the distributions and traced in the state map.
TOP = {"volcano": 10, "distributions": 20, "states": 5}
#: Not called / called, in the volcano plot.
GREY, CALLED = "#9e9e9e", "#d62728"


def _write(chart: Chart, path: str | os.PathLike) -> list[Path]:
    """The PNG and the HTML page of ``chart`` (``<path>.png``, ``<path>.html``)."""
    path = Path(path)
    written = render_png(chart, path, formats=("png",))
    written.append(render_html(chart, path.with_name(path.name + ".html")))
    return written


def _label(row: pd.Series) -> str:
    return str(row.get("symbol") or "") or str(row["perturbed"])


def volcano(
    stats: pd.DataFrame, path: str | os.PathLike, *, shift: str, fdr: str, title: str = ""
) -> list[Path]:
    """Each gene's shift (column ``shift``) against -log10 of its FDR (column ``fdr``).

    Returns the PNG and the HTML page (hover: gene, shift, FDR, cells)."""
    x = stats[shift].to_numpy(np.float64)
    q = stats[fdr].to_numpy(np.float64)
    floor = np.nextafter(0, 1)  # an FDR of 0 drawn at the smallest positive float
    y = -np.log10(np.clip(q, floor, 1.0))
    called = q < 0.05
    names = [_label(row) for _, row in stats.iterrows()]
    counts = next(
        (stats[c].to_numpy() for c in stats.columns if c.startswith("n_detections")), None
    )
    hover = [
        f"{n}<br>{shift} {a:.4g}<br>{fdr} {b:.3g}"
        + ("" if counts is None else f"<br>cells {int(c)}")
        for n, a, b, c in zip(names, x, q, counts if counts is not None else x, strict=True)
    ]
    layers = []
    for chosen, colour, label in ((~called, GREY, "not called"), (called, CALLED, "FDR < 0.05")):
        idx = np.flatnonzero(chosen)
        layers.append(
            Scatter(
                x[idx],
                y[idx],
                colour,
                size=12,
                alpha=0.7,
                label=f"{label} ({idx.size:,})",
                hover=[hover[i] for i in idx],
                front=colour == CALLED,
            )
        )
    order = np.lexsort((-np.abs(x), -y))[: TOP["volcano"]]
    notes = [Note(float(x[i]), float(y[i]), names[i]) for i in order if np.isfinite(x[i])]
    panel = Panel(
        layers=layers,
        lines=[RefLine(y=float(-np.log10(0.05)), color="black", dash="dash", label="FDR 0.05")],
        notes=notes,
        x=Axis(label=shift, grid=True),
        y=Axis(label=f"-log10 {fdr}", tex=rf"$-\log_{{10}}$ {fdr}", from_zero=True, grid=True),
        frame=False,
    )
    subtitle = f"{len(stats):,} genes, {int(called.sum()):,} called"
    return _write(Chart([panel], title=title or "Volcano", subtitle=subtitle, size=(7, 5)), path)


def shift_distributions(
    values: pd.DataFrame,
    genes: list[str],
    path: str | os.PathLike,
    *,
    column: str,
    title: str = "",
) -> list[Path]:
    """Every cell's ``column`` value for each of ``genes`` (``perturbed`` keys, in the order
    drawn, at most :data:`TOP` of them), jittered, with each gene's mean."""
    genes = list(dict.fromkeys(genes))[: TOP["distributions"]]
    by_gene = {g: part for g, part in values.groupby("perturbed", sort=False) if g in genes}
    genes = [g for g in genes if g in by_gene]
    rng = np.random.default_rng(0)
    xs, ys, hover, means, labels = [], [], [], [], []
    for i, gene in enumerate(genes):
        part = by_gene[gene]
        y = part[column].to_numpy(np.float64)
        label = _label(part.iloc[0])
        labels.append(label)
        xs.append(i + rng.uniform(-0.25, 0.25, y.size))
        ys.append(y)
        cells = part["cell_id"].astype(str) if "cell_id" in part else pd.Series([""] * y.size)
        hover += [f"{label}<br>cell {c}<br>{column} {v:.5g}" for c, v in zip(cells, y, strict=True)]
        means.append(float(np.nanmean(y)) if np.isfinite(y).any() else np.nan)
    x = np.concatenate(xs) if xs else np.empty(0)
    y = np.concatenate(ys) if ys else np.empty(0)
    ticks = list(range(len(genes)))
    panel = Panel(
        layers=[
            Scatter(x, y, "#1f77b4", size=10, alpha=0.5, label="one cell", hover=hover),
            Scatter(
                np.array(ticks, dtype=float),
                np.array(means),
                "black",
                size=40,
                label="mean",
                hover=[f"{n}<br>mean {m:.5g}" for n, m in zip(labels, means, strict=True)],
                front=True,
            ),
        ],
        x=Axis(label="perturbed gene", ticks=ticks, tick_labels=labels),
        y=Axis(label=column, grid=True),
        frame=False,
        message=None if genes else "no values to draw",
    )
    width = max(6.0, 0.45 * len(genes) + 2)
    chart = Chart([panel], title=title or f"{column} per perturbed gene", size=(width, 4.5))
    return _write(chart, path)


def state_map(
    values: pd.DataFrame,
    states: pd.DataFrame,
    path: str | os.PathLike,
    *,
    start: str,
    goal: str,
    top: list[str],
    title: str = "",
) -> list[Path]:
    """In silico treatment in the plane of the cosine similarity to the goal state (x) and
    to the start state (y).

    ``values``: the run's perturbations with ``cos_<state>`` (the unperturbed cell's cosine
    to each state) and ``shift_<state>``; ``states``: one row per state (``state``, the
    embedding in columns ``0`` .. ``H-1``); ``top``: the genes (``perturbed``) traced with
    lines from each cell to where their perturbation takes it."""
    dims = [c for c in states.columns if str(c).isdigit()]
    emb = states[dims].to_numpy(np.float64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    names = states["state"].astype(str).tolist()
    where = {name: i for i, name in enumerate(names)}
    sims = emb @ emb[[where[goal], where[start]]].T  # each state against goal, start
    colours = palette(len(names) + len(top) + 1)
    before_x = values[f"cos_{goal}"].to_numpy(np.float64)
    before_y = values[f"cos_{start}"].to_numpy(np.float64)
    after_x = before_x + values[f"shift_{goal}"].to_numpy(np.float64)
    after_y = before_y + values[f"shift_{start}"].to_numpy(np.float64)
    labels = [_label(row) for _, row in values.iterrows()]
    cells = values.drop_duplicates("row")
    layers: list = [
        Scatter(
            after_x,
            after_y,
            "#bdbdbd",
            size=6,
            alpha=0.5,
            label=f"perturbed ({len(values):,})",
            hover=[
                f"{g}<br>cell {c}<br>to goal {a:+.4g}"
                for g, c, a in zip(labels, values["cell_id"], after_x - before_x, strict=True)
            ],
        ),
        Scatter(
            cells[f"cos_{goal}"].to_numpy(np.float64),
            cells[f"cos_{start}"].to_numpy(np.float64),
            "black",
            size=25,
            label=f"{start} cells, unperturbed ({len(cells):,})",
            hover=[f"cell {c}" for c in cells["cell_id"]],
            front=True,
        ),
    ]
    for k, gene in enumerate(top[: TOP["states"]]):
        chosen = np.flatnonzero(values["perturbed"].to_numpy() == gene)
        if not chosen.size:
            continue
        xs = np.column_stack([before_x[chosen], after_x[chosen], np.full(chosen.size, np.nan)])
        ys = np.column_stack([before_y[chosen], after_y[chosen], np.full(chosen.size, np.nan)])
        colour = colours[len(names) + k]
        name = labels[chosen[0]]
        layers.append(Line(x=xs.ravel().tolist(), y=ys.ravel().tolist(), color=colour, width=0.8))
        layers.append(
            Scatter(
                after_x[chosen],
                after_y[chosen],
                colour,
                size=30,
                label=f"{name} perturbed",
                hover=[f"{name}<br>cell {c}" for c in values["cell_id"].to_numpy()[chosen]],
                front=True,
            )
        )
    for i, name in enumerate(names):
        role = "start" if name == start else "goal" if name == goal else "alternative"
        layers.append(
            Scatter(
                sims[i, :1],
                sims[i, 1:],
                colours[i],
                size=100,
                label=f"{name} ({role} state)",
                hover=[f"{name} ({role} state)<br>cos to goal {sims[i, 0]:.4f}"],
                front=True,
            )
        )
    panel = Panel(
        layers=layers,
        x=Axis(label=f"cosine similarity to {goal} (goal)", grid=True),
        y=Axis(label=f"cosine similarity to {start} (start)", grid=True),
        legend="center left",
        frame=False,
    )
    chart = Chart(
        [panel],
        title=title or "In silico treatment",
        subtitle=f"where the perturbations move the {start} cells",
        size=(8.5, 6),
    )
    return _write(chart, path)
