"""One self-contained interactive HTML page over run directories of any pillar.

``genoformer report RUN_DIR [RUN_DIR ...] --out report.html`` is
``genoformer.report(RUN_DIR, ..., out="report.html")``: the package is callable (the verb
and its package share the name ``report``, and a module attribute of that name would be
replaced by the subpackage on import), and :func:`write_report` is the same function.

The page reads only what the runs wrote (``manifest.json`` and the files it names; LD and
UMAP layouts are computed from them) and opens offline: every script and style is inline
and a Content-Security-Policy forbids any request.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable
from functools import partial
from pathlib import Path

from genoformer.engine.runs import write_text

__all__ = ["write_report"]


def _views(runs: list, genes) -> dict[str, Callable]:
    """The views of each command; ``runs``: every run of the report (an embedding's UMAP
    is coloured by the labels classification runs among them gave its cells); ``genes``:
    the gene track of regional views, or None."""
    from genoformer.report import (
        association,
        cells,
        classification,
        genotype_model,
        perturbation,
        sequences,
    )

    return {
        "gwas assoc": partial(association.association_views, genes=genes),
        "gwas train": genotype_model.train_views,
        "gwas explain": genotype_model.explain_views,
        "sc embed": partial(cells.embed_views, others=runs),
        "sc pretrain": cells.pretrain_views,
        "sc classify": classification.classify_views,
        "sc predict": classification.predict_views,
        "sc perturb-stats": perturbation.perturb_stats_views,
        "seq train": sequences.prediction_views,
        "seq evaluate": sequences.prediction_views,
        "seq predict": sequences.prediction_views,
        "seq interpret": sequences.interpret_views,
    }


def _section(run, index: int, views: dict[str, Callable]):
    from genoformer.report.page import Section
    from genoformer.report.runs import anchor, summary_html
    from genoformer.report.views import image_views, loss_view

    name = anchor(run, index)
    if run.command in views:
        shown = views[run.command](run, name)
    else:
        loss = loss_view(run)
        pictures = [k for k, v in run.outputs().items() if str(v).lower().endswith(".png")]
        shown = ([loss] if loss is not None else []) + image_views(run, pictures)
    title = f"{run.command}: {run.path.name or run.path}"
    return Section(name, title, summary_html(run), shown)


def write_report(
    *runs: str | os.PathLike,
    out: str | os.PathLike = "report.html",
    title: str = "genoformer report",
    genes: str | os.PathLike | None = None,
) -> Path:
    """Write one HTML page over ``runs`` (run directories; the runs in their subdirectories
    join them) to ``out``; return its path. ``genes``: a BED or GTF file of genes, drawn
    under each regional view of an association run.

    Raises
    ------
    InputError
        A directory that holds no run, a run that is not complete, a bad genes file.
    """
    from genoformer.report.genes import read_genes
    from genoformer.report.page import Section, View, render_page
    from genoformer.report.runs import collect_runs

    found, notes = collect_runs(runs)
    views = _views(found, read_genes(genes) if genes is not None else None)
    sections = [_section(run, i, views) for i, run in enumerate(found)]
    if notes:
        text = "".join(f"<li>{note}</li>" for note in notes)
        sections.append(
            Section("left-out", "runs left out", "", [View("", f"<ul class='note'>{text}</ul>")])
        )
    return write_text(out, render_page(title, sections))


class _CallableModule(types.ModuleType):
    def __call__(self, *runs: str | os.PathLike, **options) -> Path:
        return write_report(*runs, **options)


sys.modules[__name__].__class__ = _CallableModule
