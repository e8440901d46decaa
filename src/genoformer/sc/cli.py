"""``genoformer sc ...``: thin commands over the sc pillar's functions.

The functions are imported inside each command, so that ``--help`` is quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True)
_console = Console()

Dictionaries = Annotated[
    Path | None,
    typer.Option(
        help="Folder holding Geneformer's gc30M/ and gc104M/ dictionaries "
        "(default: $GENOFORMER_GENEFORMER_DIR)."
    ),
]
Layer = Annotated[str | None, typer.Option(help="Layer holding raw counts ('raw' for .raw).")]
GeneIdColumn = Annotated[str | None, typer.Option(help="var column with the gene ids.")]
Backed = Annotated[
    bool | None, typer.Option("--backed/--in-memory", help="Read .h5ad/.zarr from disk.")
]


@app.command("tokenize")
def tokenize_command(
    source: Annotated[Path, typer.Argument(help=".h5ad, .loom, .zarr, 10x .h5 or directory.")],
    out: Annotated[Path, typer.Option(help="Corpus directory (Hugging Face datasets).")],
    vocabulary: Annotated[
        str, typer.Option(help="V1, V2 (Geneformer's) or a vocabulary from `sc medians`.")
    ] = "V2",
    dictionaries: Dictionaries = None,
    attribute: Annotated[
        list[str] | None, typer.Option(help="Cell attribute (obs column) to keep; repeatable.")
    ] = None,
    encoding: Annotated[str, typer.Option(help="rank (Geneformer) or binned (scGPT).")] = "rank",
    n_bins: Annotated[int, typer.Option(help="Bins of the binned encoding.")] = 51,
    layer: Layer = None,
    gene_id_column: GeneIdColumn = None,
    processes: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    chunk_size: Annotated[int, typer.Option(help="Cells per chunk.")] = 1024,
    min_gene_share: Annotated[
        float, typer.Option(help="Least share of the input's genes found in the vocabulary.")
    ] = 0.2,
    backed: Backed = None,
) -> None:
    """Rank value encoding of each cell, exactly as Geneformer does it."""
    from genoformer.sc.dictionaries import resolve
    from genoformer.sc.tokenizer import tokenize

    result = tokenize(
        str(source),
        out=out,
        vocabulary=resolve(vocabulary, dictionaries),
        cell_attributes=attribute or None,
        encoding=encoding,
        n_bins=n_bins,
        layer=layer,
        gene_id_column=gene_id_column,
        processes=processes,
        chunk_size=chunk_size,
        min_gene_share=min_gene_share,
        backed=backed,
    )
    _console.print(
        f"{result.n_cells} cells tokenized in {result.seconds:.1f} s "
        f"({result.gene_share:.1%} of genes in the vocabulary); corpus in {result.out}"
    )


@app.command("medians")
def medians_command(
    inputs: Annotated[list[Path], typer.Argument(help="Corpus files (.h5ad, .loom, ...).")],
    out: Annotated[Path, typer.Option(help="Folder for the vocabulary and the gene table.")],
    name: Annotated[str, typer.Option(help="Name of the vocabulary.")] = "custom",
    input_size: Annotated[int, typer.Option(help="Model input size it goes with.")] = 4096,
    streaming: Annotated[
        bool, typer.Option(help="Bounded memory (approximate medians) for large corpora.")
    ] = False,
    layer: Layer = None,
    gene_id_column: GeneIdColumn = None,
    backed: Backed = None,
) -> None:
    """Each gene's non-zero median of normalised expression: a vocabulary for `sc tokenize`."""
    from genoformer.sc.medians import gene_medians

    vocabulary = gene_medians(
        [str(p) for p in inputs],
        out=out,
        streaming=streaming,
        name=name,
        input_size=input_size,
        layer=layer,
        gene_id_column=gene_id_column,
        backed=backed,
        progress=True,
    )
    _console.print(f"{len(vocabulary.medians)} gene medians written to {out}")
