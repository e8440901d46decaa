"""Every Python snippet of README.md and docs/*.md runs against the API as it is.

The snippets of one file run in order, in one namespace, in a scratch folder that holds the
inputs they name (made here, small). Sizes are cut so that each file runs in seconds: every
cut is a literal text replacement listed in ``SMALL``, and a cut that no longer matches its
snippet fails, so the docs and this test cannot drift apart silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import shared_data

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))]

#: file -> [(text in a snippet, what the test runs instead)]
SMALL: dict[str, list[tuple[str, str]]] = {
    "README.md": [
        ("teaching_task(50_000, seed=0)", "teaching_task(1_500, seed=0)"),
        ('model="cnn")', 'model="cnn", epochs=1, eval_every=5)'),
    ],
    "docs/sc.md": [
        ("epochs=3, max_steps=-1, batch_size=12", "epochs=1, max_steps=3, batch_size=4"),
        ("eval_every=None", "eval_every=2"),
        ("folds=5, epochs=3,", "folds=1, max_steps=2,"),
        ("folds=5, min_genes_per_class=5", "folds=2, min_genes_per_class=5"),
        ("epochs=3, batch_size=12, learning_rate=5e-5,", "max_steps=2, batch_size=4,"),
    ],
}


def snippets(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def _fasta(folder: Path) -> None:
    from genoformer.seq.tasks import teaching_task

    data = teaching_task(20, seed=3)
    lines = [f">s{i}\n{seq}" for i, seq in enumerate(data.sequences)]
    (folder / "new.fa").write_text("\n".join(lines) + "\n")


def _cells(folder: Path, monkeypatch) -> None:
    import anndata

    from genoformer.sc import tokenize
    from genoformer.sc.vocabulary import ENV_DIR

    monkeypatch.setenv(ENV_DIR, str(shared_data("geneformer")))
    cells = anndata.read_h5ad(shared_data("geneformer/fixtures/inputs/pbmc68k.h5ad"))
    cells.obs["cell_type"] = cells.obs["bulk_labels"].astype(str)
    (folder / "models").mkdir()
    (folder / "models" / "gf-6L-30M-i2048").symlink_to(
        shared_data("geneformer/fixtures/models/gf6L_random")
    )
    # Gene classes for the gene classifier's snippet: 40 genes the first cells express.
    import numpy as np

    held = np.asarray(cells[:24].X.sum(axis=0)).ravel() > 0
    expressed = cells.var["ensembl_id"].to_numpy()[held]
    classes = [f"{gene}\t{'a' if i % 2 else 'b'}\n" for i, gene in enumerate(expressed[:40])]
    (folder / "classes.tsv").write_text("gene\tclass\n" + "".join(classes))
    for name, rows in (("pbmc", slice(0, 24)), ("atlas", slice(24, 40))):
        part = cells[rows].copy()
        part.write_h5ad(folder / f"{name}.h5ad")
        tokenize(
            folder / f"{name}.h5ad",
            out=folder / "corpus" / name,
            vocabulary="V1",
            cell_attributes=["cell_type"],
            progress=False,
        )


#: file -> what its snippets read, made in the scratch folder
SETUP: dict[str, Callable[..., None]] = {
    "README.md": lambda folder, monkeypatch: _fasta(folder),
    "docs/sc.md": _cells,
}


@pytest.mark.parametrize("doc", [d for d in DOCS if snippets((ROOT / d).read_text())])
def test_snippets_run(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if doc in SETUP:
        SETUP[doc](tmp_path, monkeypatch)
    namespace: dict = {"__name__": f"snippets of {doc}"}
    cuts = list(SMALL.get(doc, []))
    for index, code in enumerate(snippets((ROOT / doc).read_text())):
        for text, small in list(cuts):
            if text in code:
                code = code.replace(text, small)
                cuts.remove((text, small))
        exec(compile(code, f"{doc} snippet {index + 1}", "exec"), namespace)
    assert not cuts, f"{doc}: these cuts match no snippet any more: {cuts}"
