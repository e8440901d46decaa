"""Cell and gene embeddings from a Geneformer-compatible model, as Geneformer's EmbExtractor.

A cell's embedding is the mean of its gene tokens' hidden states at one layer (``<cls>``,
``<eos>`` and padding left out: ``emb_mode="cell"``) or the hidden state of its ``<cls>``
token (``emb_mode="cls"``, V2 corpora). A gene's embedding is its hidden state averaged over
the cells it appears in. ``emb_layer`` counts as Geneformer does: the layer read is
``hidden_states[num_hidden_layers + emb_layer]``, so ``-1`` is the output of the
second-to-last layer, ``0`` that of the last and ``-num_hidden_layers`` the input embeddings.

Why it is faster and smaller than running the masked-language model: only the encoder runs
(the vocabulary-sized output layer is most of a forward pass's work and memory), it stops
after the deepest layer asked for (``emb_layer=-1`` skips the last layer), cells run in
batches of similar length (little padding), under ``torch.inference_mode``. Results come
back in the corpus's order, whatever order the batches ran in.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError, option, setting
from genoformer.engine.options import with_overrides
from genoformer.engine.runs import RunDir, RunResult, atomic_path, read_manifest, write_table
from genoformer.sc.corpus import tokenize_record

if TYPE_CHECKING:
    import anndata as ad
    import datasets
    import pandas as pd
    from transformers import BertModel, PreTrainedModel

    from genoformer.sc.vocabulary import GeneVocabulary

__all__ = [
    "EmbedSettings",
    "Embeddings",
    "embed",
    "embedding_matrix",
    "extract_embeddings",
    "hidden_state_index",
]

#: The obsm / varm key the embeddings are written under.
ANNDATA_KEY = "X_genoformer"
#: Columns of a corpus that are not cell attributes.
_TOKEN_COLUMNS = ("input_ids", "length", "values", "attention_mask", "token_type_ids")
#: Geneformer's V2 special tokens, to recognise a V2 corpus that has no manifest.
_V2_CLS, _V2_EOS = 2, 3
#: Names of Geneformer's vocabularies, as a corpus manifest records them.
EMB_MODES = ("cell", "cls")
BATCH_SIZE = 16


# ---------------------------------------------------------------------------------------------
# The corpus as flat token arrays


@dataclass
class _Tokens:
    """A corpus's cells as one flat token array with offsets, and its cell attributes."""

    values: np.ndarray  # all tokens, cell after cell
    offsets: np.ndarray  # cell i is values[offsets[i]:offsets[i + 1]]
    obs: pd.DataFrame  # cell_id, cell_index, then the attribute columns
    source: str | None

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1


def _corpus_tokens(corpus: datasets.Dataset, source: str | None, max_cells: int | None) -> _Tokens:
    import pyarrow as pa
    import pyarrow.compute as pc

    if "input_ids" not in corpus.column_names:
        raise InputError(
            "has no 'input_ids' column (columns: " + ", ".join(corpus.column_names) + ")",
            file=source,
            fix="tokenize the cells first (`genoformer sc tokenize`)",
        )
    n = len(corpus) if max_cells is None else min(len(corpus), max_cells)
    if n == 0:
        raise InputError("the corpus holds no cells", file=source, fix="tokenize some cells")
    # The Arrow view honours a selection or shuffle done on the Dataset beforehand.
    table = corpus.with_format("arrow")[:n]
    column = table.column("input_ids")
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise InputError(
            f"'input_ids' holds {column.type}, expected lists of token ids",
            file=source,
            where="input_ids",
            fix="pass a corpus written by `genoformer sc tokenize` or Geneformer's tokenizer",
        )
    column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError("a cell has no input_ids", file=source, where=f"row {row}")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.int64)
    names = table.column_names
    obs = {
        "cell_id": (
            table.column("cell_id").to_numpy(zero_copy_only=False).astype(str)
            if "cell_id" in names
            else np.arange(n).astype(str)
        ),
        "cell_index": (
            table.column("cell_index").to_numpy(zero_copy_only=False).astype(np.int64)
            if "cell_index" in names
            else np.arange(n, dtype=np.int64)
        ),
    }
    for name in names:
        kind = table.schema.field(name).type
        nested = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_struct(kind)
        if name in obs or name in _TOKEN_COLUMNS or nested:
            continue
        obs[name] = table.column(name).to_pandas()
    import pandas as pd

    frame = pd.DataFrame(obs)
    frame.attrs["numbered_cells"] = "cell_id" not in names
    return _Tokens(values, offsets, frame, source)


def _row_place(tokens: _Tokens, row: int) -> str:
    obs = tokens.obs
    return f"row {row} (cell_id {obs['cell_id'].iat[row]}, cell_index {obs['cell_index'].iat[row]})"


def _layout(tokens: _Tokens) -> tuple[np.ndarray, np.ndarray]:
    """First and last token of every cell."""
    lengths = tokens.lengths
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise InputError(
            f"{empty.size:,} cells have no tokens",
            file=tokens.source,
            where=_row_place(tokens, int(empty[0])),
            fix="drop cells without genes (`genoformer sc tokenize` does)",
        )
    return tokens.values[tokens.offsets[:-1]], tokens.values[tokens.offsets[1:] - 1]


# ---------------------------------------------------------------------------------------------
# Which vocabulary the corpus was tokenized with


def _resolve_vocabulary(
    vocabulary: GeneVocabulary | str | os.PathLike | None,
    dictionaries: str | os.PathLike | None,
    path: Path | None,
    tokens: _Tokens,
) -> GeneVocabulary:
    """The vocabulary named by the caller, else the corpus manifest's, else Geneformer's V1
    or V2 by the corpus's layout (V2 cells start with ``<cls>`` and end with ``<eos>``)."""
    from genoformer.sc.vocabulary import corpus_vocabulary

    first, last = _layout(tokens)
    v2 = bool(np.all(first == _V2_CLS) and np.all(last == _V2_EOS))
    records = {} if path is None else {Path(path): tokenize_record(path)}
    vocab = corpus_vocabulary(
        vocabulary, dictionaries, records, default="V2" if v2 else "V1", check_input_size=False
    )
    _check_layout(vocab, tokens, first, last)
    return vocab


def _check_layout(
    vocab: GeneVocabulary, tokens: _Tokens, first: np.ndarray, last: np.ndarray
) -> None:
    """The corpus's special tokens are those of ``vocab``, and every id is in it."""
    if vocab.has_cls_eos:
        bad = np.flatnonzero((first != vocab.cls_id) | (last != vocab.eos_id))
        if bad.size:
            raise InputError(
                f"{bad.size:,} of {len(tokens):,} cells do not start with <cls> and end with "
                f"<eos> as the {vocab.name} vocabulary's cells do: the corpus was tokenized "
                "with a vocabulary without <cls>/<eos> (V1)",
                file=tokens.source,
                where=_row_place(tokens, int(bad[0])),
                fix=f"embed it with a V1 model and {option('vocabulary', 'V1')}, or tokenize the "
                "cells again "
                f"with the {vocab.name} vocabulary",
            )
    elif len(tokens) > 1 and np.all(first == _V2_CLS) and np.all(last == _V2_EOS):
        raise InputError(
            f"every cell starts with token {_V2_CLS} and ends with {_V2_EOS}, as V2 cells "
            f"start with <cls> and end with <eos>, but the {vocab.name} vocabulary has no "
            "<cls>/<eos>: the corpus was tokenized for a V2 model",
            file=tokens.source,
            where="input_ids",
            fix=f"embed it with a V2 model and {option('vocabulary', 'V2')}, or tokenize the "
            "cells again with "
            f"the {vocab.name} vocabulary",
        )
    outside = np.flatnonzero((tokens.values < 0) | (tokens.values >= len(vocab)))
    if outside.size:
        row = int(np.searchsorted(tokens.offsets, outside[0], side="right") - 1)
        raise InputError(
            f"token id {tokens.values[outside[0]]} is not in the {vocab.name} vocabulary "
            f"(ids 0..{len(vocab) - 1})",
            file=tokens.source,
            where=_row_place(tokens, row),
            fix=f"pass the vocabulary the corpus was tokenized with ({option('vocabulary')})",
        )


# ---------------------------------------------------------------------------------------------
# The model


def _encoder(
    model: PreTrainedModel | str | os.PathLike, vocab: GeneVocabulary
) -> tuple[BertModel, str | None]:
    """The BERT encoder of ``model`` (a checkpoint directory or a loaded model), checked
    against the vocabulary."""
    from genoformer.sc.models import check_vocabulary, load_model

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        # The model/ of a pretraining run is read only once the run is complete.
        read_manifest(path.parent if path.name == "model" else path, what="pretraining run")
        return load_model(model, vocabulary=vocab, encoder_only=True), str(model)
    base = getattr(model, "base_model", model)
    if not (hasattr(base, "embeddings") and hasattr(getattr(base, "encoder", None), "layer")):
        raise InputError(
            f"{type(model).__name__} is not a BERT model",
            fix="pass a Geneformer checkpoint directory or a model from genoformer.sc.models",
        )
    check_vocabulary(base.config, vocab)
    return base.eval(), None


def hidden_state_index(emb_layer: int, num_hidden_layers: int) -> int:
    """Index in ``hidden_states`` of Geneformer's ``emb_layer`` (-1: second-to-last layer).

    Raises
    ------
    InputError
        ``emb_layer`` is not between ``-num_hidden_layers`` and 0.
    """
    if isinstance(emb_layer, bool) or not isinstance(emb_layer, (int, np.integer)):
        raise InputError(f"{setting('emb_layer')} {emb_layer!r} is not an integer")
    if not -num_hidden_layers <= emb_layer <= 0:
        raise InputError(
            f"{setting('emb_layer')} {emb_layer} is out of range for a model of "
            f"{num_hidden_layers} layers",
            fix=f"use 0 (the last layer), -1 (the second-to-last, Geneformer's default) down "
            f"to {-num_hidden_layers} (the input embeddings)",
        )
    return num_hidden_layers + int(emb_layer)


def _check_input_size(
    encoder: BertModel, tokens: _Tokens, recorded: dict[str, Any], model_name: str | None
) -> None:
    limit = int(encoder.config.max_position_embeddings)
    size = recorded.get("input_size")
    if isinstance(size, int) and size > limit:
        raise InputError(
            f"the corpus was tokenized for an input size of {size:,} tokens but the model "
            f"reads at most {limit:,} (max_position_embeddings)",
            file=tokens.source,
            where="manifest.json input_size",
            fix="tokenize the cells with the model's dictionaries (V1: 2,048 tokens, V2: "
            "4,096), or use a model made for this input size",
        )
    lengths = tokens.lengths
    too_long = np.flatnonzero(lengths > limit)
    if too_long.size:
        row = int(too_long[0])
        raise InputError(
            f"{too_long.size:,} cells have more tokens ({lengths[row]:,}) than the model "
            f"reads ({limit:,}, max_position_embeddings of {model_name or 'the model'})",
            file=tokens.source,
            where=_row_place(tokens, row),
            fix="tokenize the cells with the model's dictionaries (V1: 2,048 tokens, V2: "
            "4,096), or use a model made for this input size",
        )


@contextmanager
def _first_layers(encoder: BertModel, depth: int) -> Iterator[None]:
    """Run only the first ``depth`` layers: the deeper ones cannot change a shallower layer."""
    import torch

    layers = encoder.encoder.layer
    if depth == len(layers):
        yield
        return
    encoder.encoder.layer = torch.nn.ModuleList(list(layers)[:depth])
    try:
        yield
    finally:
        encoder.encoder.layer = layers


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------
# Extraction


@dataclass
class Embeddings:
    """Embeddings in memory, cells in the corpus's order.

    Attributes
    ----------
    cells
        ``{emb_layer: array (n_cells, hidden_size)}``, float32.
    obs
        ``cell_id``, ``cell_index`` and the corpus's cell attributes, one row per cell.
    emb_mode
        ``"cell"`` or ``"cls"``.
    vocabulary
        The vocabulary the corpus was tokenized with.
    gene_tokens
        Token ids of the genes seen (ascending), when genes were asked for.
    genes
        ``{emb_layer: array (n_genes, hidden_size)}``: each gene's mean over its cells.
    gene_cells
        Number of cells each gene appears in.
    """

    cells: dict[int, np.ndarray]
    obs: pd.DataFrame
    emb_mode: str
    vocabulary: GeneVocabulary
    gene_tokens: np.ndarray | None = None
    genes: dict[int, np.ndarray] | None = None
    gene_cells: np.ndarray | None = None
    seconds: float = 0.0


def _load(
    corpus: datasets.Dataset | str | os.PathLike,
) -> tuple[datasets.Dataset, Path | None, str | None]:
    from genoformer.sc.corpus import load_corpus

    if isinstance(corpus, (str, os.PathLike)):
        return load_corpus(corpus), Path(corpus), str(corpus)
    if not hasattr(corpus, "column_names") or not hasattr(corpus, "with_format"):
        raise InputError(
            f"{type(corpus).__name__} is not a tokenized corpus",
            fix="pass a corpus directory or a datasets.Dataset with an input_ids column",
        )
    return corpus, None, None


def extract_embeddings(
    model: PreTrainedModel | str | os.PathLike,
    corpus: datasets.Dataset | str | os.PathLike,
    *,
    emb_mode: Literal["cell", "cls"] = "cell",
    emb_layers: Sequence[int] = (-1,),
    batch_size: int = BATCH_SIZE,
    genes: bool = False,
    vocabulary: GeneVocabulary | str | os.PathLike | None = None,
    dictionaries: str | os.PathLike | None = None,
    device: str = "auto",
    max_cells: int | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> Embeddings:
    """Cell (and gene) embeddings at one or more layers, from one forward pass per batch.

    Parameters are those of :func:`embed`; ``emb_layers`` lists the layers wanted (each in
    Geneformer's counting), ``threads`` the CPU threads (default: this machine's cores).
    Nothing is written.
    """

    from genoformer.engine.device import pick_device
    from genoformer.engine.progress import progress_bar

    start = time.perf_counter()
    _check_request(emb_mode, batch_size, max_cells, emb_layers)
    dataset, path, source = _load(corpus)
    tokens = _corpus_tokens(dataset, source, max_cells)
    vocab = _resolve_vocabulary(vocabulary, dictionaries, path, tokens)
    check_cls_mode(emb_mode, vocab, source)
    encoder, model_name = _encoder(model, vocab)
    n_layers = len(encoder.encoder.layer)
    layers = list(dict.fromkeys(int(x) for x in emb_layers))
    indices = [hidden_state_index(layer, n_layers) for layer in layers]
    _check_input_size(encoder, tokens, tokenize_record(path), model_name)

    target = pick_device(device)
    encoder.to(target)
    hidden = int(encoder.config.hidden_size)
    pad = vocab.pad_id if vocab.pad_id is not None else int(encoder.config.pad_token_id or 0)
    special = 1 if vocab.has_cls_eos else 0  # <cls> first, <eos> last
    # Longest first, as Geneformer runs them: a too-large batch fails at once, not at the end.
    order = np.argsort(-tokens.lengths, kind="stable")
    n_cells = len(tokens)
    out = {layer: np.empty((n_cells, hidden), dtype=np.float32) for layer in layers}
    sums = _GeneSums(layers, len(vocab), hidden, target) if genes else None
    with (
        running(encoder, max(indices), threads, target),
        progress_bar(enabled=progress, unit="cells") as bar,
    ):
        task = bar.add_task("embedding cells", total=n_cells)
        for begin in range(0, n_cells, batch_size):
            rows = order[begin : begin + batch_size]
            input_ids, mask, gene_mask = _batch(tokens, rows, pad, special, target)
            states = layer_states(encoder, input_ids, mask, indices)
            for layer, state in zip(layers, states, strict=True):
                out[layer][rows] = _pooled(state, gene_mask, emb_mode).float().cpu().numpy()
            if sums is not None:
                sums.add(input_ids, gene_mask, states)
            bar.advance(task, len(rows))

    result = Embeddings(cells=out, obs=tokens.obs, emb_mode=emb_mode, vocabulary=vocab)
    if sums is not None:
        result.gene_tokens, result.gene_cells, result.genes = sums.means()
    result.seconds = time.perf_counter() - start
    return result


def check_cls_mode(emb_mode: str, vocab: GeneVocabulary, source: str | None) -> None:
    """``emb_mode="cls"`` needs cells that start with ``<cls>`` (V2 vocabularies)."""
    if emb_mode == "cls" and not vocab.has_cls_eos:
        raise InputError(
            f"{option('emb_mode', 'cls')} needs a <cls> token, and the corpus's {vocab.name} "
            "cells have none",
            file=source,
            fix=f"use {option('emb_mode', 'cell')} (the mean over the cell's genes), or a V2 "
            "corpus and model",
        )


@contextmanager
def running(encoder: BertModel, depth: int, threads: int | None, target: Any) -> Iterator[None]:
    """Inference with the first ``depth`` layers of ``encoder`` on ``threads`` CPU threads
    (default: this machine's cores, on CPU)."""
    import torch

    with (
        torch.inference_mode(),
        _threads(threads or (_cores() if target.type == "cpu" else None)),
        _first_layers(encoder, depth),
    ):
        yield


def layer_states(
    encoder: BertModel, input_ids: Any, attention_mask: Any, indices: Sequence[int]
) -> list[Any]:
    """The hidden states at ``indices`` of one batch, inside :func:`running` (whose depth
    is ``max(indices)``: with one index the encoder's last output is that layer)."""
    single = len(set(indices)) == 1
    output = encoder(
        input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=not single
    )
    if single:
        return [output.last_hidden_state] * len(indices)
    return [output.hidden_states[i] for i in indices]


def _check_request(
    emb_mode: str, batch_size: Any, max_cells: int | None, emb_layers: Sequence[int]
) -> None:
    if emb_mode not in EMB_MODES:
        raise InputError(f"unknown {setting('emb_mode')} {emb_mode!r}", fix="use cell or cls")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(
            f"{setting('batch_size')} {batch_size!r}", fix="use a positive number of cells"
        )
    if max_cells is not None and max_cells < 1:
        raise InputError(
            f"{setting('max_cells')} {max_cells}", fix="use a positive number of cells"
        )
    if not emb_layers:
        raise InputError("no emb_layer asked for", where="emb_layer")


def _batch(
    tokens: _Tokens, rows: np.ndarray, pad: int, special: int, target: Any
) -> tuple[Any, Any, Any]:
    """One batch of cells: input ids (padded), the attention mask (None when no cell is
    padded: attention then takes its unmasked fast path) and the mask of gene positions."""
    import torch

    lengths = tokens.lengths[rows]
    width = int(lengths.max())
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : lengths[i]] = tokens.values[tokens.offsets[row] : tokens.offsets[row + 1]]
    positions = np.arange(width)
    attention = positions[None, :] < lengths[:, None]
    n_genes = lengths - 2 * special
    genes = (positions[None, :] >= special) & (positions[None, :] < (special + n_genes)[:, None])
    mask = None if attention.all() else torch.from_numpy(attention).to(target)
    return torch.from_numpy(ids).to(target), mask, torch.from_numpy(genes).to(target)


def _pooled(state: Any, gene_mask: Any, emb_mode: str) -> Any:
    """The cell embeddings of a batch: ``<cls>``, or the mean over the gene positions."""
    import torch

    if emb_mode == "cls":
        return state[:, 0, :]
    weights = gene_mask.to(torch.float32)
    return torch.bmm(weights[:, None, :], state)[:, 0, :] / weights.sum(1, keepdim=True)


class _GeneSums:
    """Each gene's summed embedding over the cells it is in, per layer, and its cell count."""

    def __init__(self, layers: Sequence[int], n_tokens: int, hidden: int, target: Any) -> None:
        import torch

        # float64 sums keep the mean exact over many cells; Apple's mps has no float64.
        self.wide = torch.float32 if target.type == "mps" else torch.float64
        self.sums = {
            layer: torch.zeros((n_tokens, hidden), dtype=self.wide, device=target)
            for layer in layers
        }
        self.seen = torch.zeros(n_tokens, dtype=torch.int64, device=target)

    def add(self, input_ids: Any, gene_mask: Any, states: Sequence[Any]) -> None:
        import torch

        gene_ids = input_ids[gene_mask]
        self.seen.index_add_(0, gene_ids, torch.ones_like(gene_ids))
        for total, state in zip(self.sums.values(), states, strict=True):
            total.index_add_(0, gene_ids, state[gene_mask].to(self.wide))

    def means(self) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        """(token ids seen, cells per token, ``{layer: mean embedding per token}``)."""
        import torch

        found = torch.nonzero(self.seen).flatten()
        seen = self.seen[found]
        means = {
            layer: (total[found] / seen[:, None]).float().cpu().numpy()
            for layer, total in self.sums.items()
        }
        return found.cpu().numpy(), seen.cpu().numpy(), means


# ---------------------------------------------------------------------------------------------
# Tables and AnnData


def _embedding_table(obs: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    """``obs``'s columns, then one column per dimension named ``0`` .. ``H-1``."""
    import pandas as pd

    dims = pd.DataFrame(values, columns=[str(i) for i in range(values.shape[1])])
    return pd.concat([obs.reset_index(drop=True), dims], axis=1)


def _gene_frame(result: Embeddings, layer: int) -> pd.DataFrame:
    import pandas as pd

    vocab = result.vocabulary
    by_token = {token: gene for gene, token in vocab.token_ids.items()}
    symbols: dict[str, str] = {}
    for symbol, gene in vocab.symbol_to_id.items():
        symbols.setdefault(gene, symbol)
    genes = [by_token.get(int(t), "") for t in result.gene_tokens]
    obs = pd.DataFrame(
        {
            "token_id": result.gene_tokens.astype(np.int64),
            "gene_id": genes,
            "symbol": [symbols.get(g, "") for g in genes],
            "n_cells": result.gene_cells.astype(np.int64),
        }
    )
    return _embedding_table(obs, result.genes[layer])


def _read_adata(adata: ad.AnnData | str | os.PathLike) -> tuple[ad.AnnData, str]:
    import anndata as ad

    if isinstance(adata, ad.AnnData):
        return adata, "<AnnData>"
    path = Path(adata)
    if not path.exists():
        raise InputError("file not found", file=path, fix="pass the .h5ad the corpus came from")
    if path.suffix.lower() != ".h5ad":
        raise InputError(
            "embeddings go into an .h5ad file",
            file=path,
            fix="pass the .h5ad the corpus was tokenized from",
        )
    return ad.read_h5ad(path), str(path)


def _add_to_adata(
    adata: ad.AnnData,
    source: str,
    result: Embeddings,
    layer: int,
    genes: pd.DataFrame | None,
) -> tuple[int, int]:
    """Put the cell embeddings into ``obsm`` (rows matched on ``cell_index``) and the gene
    embeddings into ``varm``; cells and genes without an embedding get NaN rows."""
    from genoformer.sc.io import open_cells
    from genoformer.sc.tokenizer import plan_genes

    index = result.obs["cell_index"].to_numpy()
    cell_ids = result.obs["cell_id"].to_numpy().astype(str)
    outside = np.flatnonzero((index < 0) | (index >= adata.n_obs))
    if outside.size:
        raise InputError(
            f"cell_index {index[outside[0]]} is past the {adata.n_obs:,} cells of the AnnData",
            file=source,
            where=f"cell {cell_ids[outside[0]]}",
            fix="pass the .h5ad the corpus was tokenized from",
        )
    names = np.asarray(adata.obs_names, dtype=str)[index]
    # A corpus without cell ids (numbered rows instead) can only be matched on cell_index.
    wrong = np.flatnonzero(names != cell_ids)
    if wrong.size and not result.obs.attrs.get("numbered_cells"):
        row = int(wrong[0])
        raise InputError(
            f"{wrong.size:,} cells of the corpus do not match their row of the AnnData "
            f"(cell_index {index[row]} is {names[row]!r} there, {cell_ids[row]!r} in the corpus)",
            file=source,
            where="obs_names",
            fix="pass the .h5ad the corpus was tokenized from",
        )
    values = result.cells[layer]
    cells = np.full((adata.n_obs, values.shape[1]), np.nan, dtype=np.float32)
    cells[index] = values
    adata.obsm[ANNDATA_KEY] = cells
    n_genes = 0
    if genes is not None:
        with open_cells(adata) as opened:
            plan = plan_genes(
                opened.gene_ids,
                result.vocabulary,
                gene_symbols=opened.gene_symbols,
                min_gene_share=0.0,
                source=source,
            )
        token_of_column = np.where(plan.column_gene >= 0, plan.tokens[plan.column_gene], -1)
        row_of_token = {int(t): i for i, t in enumerate(genes["token_id"].to_numpy())}
        rows = np.array([row_of_token.get(int(t), -1) for t in token_of_column])
        dims = genes[[str(i) for i in range(values.shape[1])]].to_numpy(np.float32)
        varm = np.full((adata.n_vars, values.shape[1]), np.nan, dtype=np.float32)
        varm[rows >= 0] = dims[rows[rows >= 0]]
        adata.varm[ANNDATA_KEY] = varm
        n_genes = int((rows >= 0).sum())
    return len(index), n_genes


# ---------------------------------------------------------------------------------------------
# The public API


def embedding_matrix(table: pd.DataFrame) -> np.ndarray:
    """The embedding columns ``0`` .. ``H-1`` of a cell or gene table, as a float32 array."""
    hidden = sum(1 for column in table.columns if str(column).isdigit())
    return table[[str(i) for i in range(hidden)]].to_numpy(np.float32)


@dataclass(frozen=True)
class EmbedSettings:
    """How :func:`embed` embeds (each also a keyword argument of it, and a CLI flag).

    Attributes
    ----------
    emb_mode
        ``"cell"``: mean over the cell's gene tokens; ``"cls"``: the ``<cls>`` token (V2).
    emb_layer
        Geneformer's layer number: -1 the second-to-last layer (default), 0 the last, down
        to ``-num_hidden_layers`` (the input embeddings).
    batch_size
        Cells per forward pass (cells of similar length run together).
    genes
        Also average each gene's embedding over the cells it appears in.
    device
        ``auto``, ``cpu``, ``cuda``, ``npu`` or ``mps``.
    max_cells
        Embed only the corpus's first ``max_cells`` cells.
    threads
        CPU threads of the forward passes (default: this machine's cores).
    seed
        Seed of the UMAP layout.
    progress
        Show a progress bar.
    overwrite
        Replace what an earlier run wrote to ``out`` (without it, such an ``out`` is refused).
    """

    emb_mode: Literal["cell", "cls"] = "cell"
    emb_layer: int = -1
    batch_size: int = BATCH_SIZE
    genes: bool = False
    device: str = "auto"
    max_cells: int | None = None
    threads: int | None = None
    seed: int = 0
    progress: bool = True
    overwrite: bool = False


# The settings of embed that extract_embeddings takes as they are.
_EXTRACT_SETTINGS = (
    "emb_mode",
    "batch_size",
    "genes",
    "device",
    "max_cells",
    "threads",
    "progress",
)


@shared_docs
def embed(
    model: PreTrainedModel | str | os.PathLike,
    corpus: datasets.Dataset | str | os.PathLike,
    *,
    out: str | os.PathLike,
    adata: ad.AnnData | str | os.PathLike | None = None,
    label: str | None = None,
    vocabulary: GeneVocabulary | str | os.PathLike | None = None,
    dictionaries: str | os.PathLike | None = None,
    settings: EmbedSettings | None = None,
    **overrides: Any,
) -> RunResult:
    """Cell (and gene) embeddings of a tokenized corpus, written as tables, AnnData, pictures.

    Parameters
    ----------
    model
        A Geneformer checkpoint directory (or one written by genoformer), or a loaded BERT
        model (``BertForMaskedLM``, ``BertModel``, a classifier: its encoder is used).
    {corpus_dataset}
    out
        The run directory: ``cell_embeddings.parquet`` / ``.csv``, ``gene_embeddings.*``,
        ``embeddings.h5ad``, ``figures/``, ``manifest.json``.
    adata
        The .h5ad (or AnnData) the corpus was tokenized from: the cell embeddings go into
        ``.obsm['X_genoformer']`` (rows matched on ``cell_index``, NaN for cells not in the
        corpus) and the gene embeddings into ``.varm['X_genoformer']``. A file is written
        as ``out/embeddings.h5ad``; an AnnData object is changed in place.
    label
        A cell attribute of the corpus: draws a UMAP coloured by it and a heatmap of the
        mean embedding per label.
    {corpus_vocabulary}
    {settings:EmbedSettings}
        How to embed, e.g. ``emb_layer=0, genes=True``.

    Returns
    -------
    RunResult
        ``metrics``: ``n_cells``, ``hidden_size``, ``emb_mode``, ``emb_layer``, ``seconds``,
        ``cells_per_second`` ...; ``outputs``: ``cells`` (``cell_id``, ``cell_index``, the
        corpus's cell attributes, then the embedding ``0`` .. ``H-1``, in the corpus's
        order; ``result.table("cells")``, :func:`embedding_matrix` for the array), ``genes``
        (``token_id``, ``gene_id``, ``symbol``, ``n_cells``, ``0`` .. ``H-1``), ``adata``,
        ``umap``, ``heatmap``.

    Raises
    ------
    InputError
        The model's vocabulary or input size does not fit the corpus, the corpus has
        ``<cls>`` tokens a V1 model does not know (or lacks those a V2 vocabulary has),
        ``emb_layer`` is out of range, ``emb_mode="cls"`` on a corpus without ``<cls>``, the
        corpus has no ``input_ids``, the label is not a column of the corpus, or the AnnData
        is not the one the corpus came from.
    """
    start = time.perf_counter()
    options = with_overrides(EmbedSettings, settings, overrides, "embed")
    out = Path(out)
    arguments = {
        "model": model if isinstance(model, (str, os.PathLike)) else type(model).__name__,
        "corpus": corpus if isinstance(corpus, (str, os.PathLike)) else "<Dataset>",
        "adata": adata if adata is None or isinstance(adata, (str, os.PathLike)) else "<AnnData>",
        "label": label,
        "vocabulary": vocabulary
        if vocabulary is None or isinstance(vocabulary, (str, os.PathLike))
        else vocabulary.name,
        **{k: v for k, v in dataclasses.asdict(options).items() if k not in ("seed", "progress")},
    }
    _check_label(corpus, label)  # found before the run rather than after it
    adata_object, adata_source = _read_adata(adata) if adata is not None else (None, None)
    run = RunDir(
        out, command="sc embed", arguments=arguments, seed=options.seed, overwrite=options.overwrite
    )
    with run.step("embed"):
        result = extract_embeddings(
            model,
            corpus,
            emb_layers=(options.emb_layer,),
            vocabulary=vocabulary,
            dictionaries=dictionaries,
            **{name: getattr(options, name) for name in _EXTRACT_SETTINGS},
        )
    cells, gene_table, files = _write_tables(run, result, options.emb_layer)
    metrics = _embed_metrics(result, options.emb_layer, len(cells), gene_table)
    if adata_object is not None:
        metrics["adata"] = _into_adata(
            run, adata_object, adata_source, result, options.emb_layer, gene_table, files
        )
    if label is not None:
        with run.step("figures"):
            files.update(_draw(run, result, options.emb_layer, label, options.seed))
    metrics["seconds"] = round(time.perf_counter() - start, 3)
    run.record_results("embed", metrics)
    return run.finish(metrics, files)


def _embed_metrics(
    result: Embeddings, layer: int, n_cells: int, gene_table: pd.DataFrame | None
) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "n_cells": n_cells,
        "hidden_size": result.cells[layer].shape[1],
        "emb_mode": result.emb_mode,
        "emb_layer": layer,
        "vocabulary": result.vocabulary.name,
        "embedding_seconds": round(result.seconds, 3),
        "cells_per_second": round(n_cells / result.seconds, 2) if result.seconds else None,
    }
    if gene_table is not None:
        metrics["n_genes"] = len(gene_table)
    return metrics


def _into_adata(
    run: RunDir,
    adata: ad.AnnData,
    source: str,
    result: Embeddings,
    layer: int,
    gene_table: pd.DataFrame | None,
    files: dict[str, Any],
) -> dict[str, int]:
    """The embeddings into ``adata`` (written to the run when it came from a file); how many
    cells and genes got one."""
    n_cells, n_genes = _add_to_adata(adata, source, result, layer, gene_table)
    if source != "<AnnData>":
        with atomic_path(run.file("embeddings.h5ad")) as tmp:
            adata.write_h5ad(tmp)
        files["adata"] = run.path / "embeddings.h5ad"
    return {"cells": n_cells, "genes": n_genes}


def _check_label(corpus: datasets.Dataset | str | os.PathLike, label: str | None) -> None:
    if label is None:
        return
    columns = _load(corpus)[0].column_names
    if label not in columns or label in _TOKEN_COLUMNS:
        raise InputError(
            f"no cell attribute {label!r} in the corpus (it has: "
            + ", ".join(c for c in columns if c not in _TOKEN_COLUMNS)
            + ")",
            file=corpus if isinstance(corpus, (str, os.PathLike)) else None,
            where="label",
            fix="tokenize with --attribute for that obs column, or pick one of those",
        )


def _write_tables(
    run: RunDir, result: Embeddings, emb_layer: int
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """The cell (and gene) embedding tables, written as Parquet and CSV."""
    cells = _embedding_table(result.obs, result.cells[emb_layer])
    files: dict[str, Any] = {
        "cells": write_table(run.file("cell_embeddings.parquet"), cells),
        "cells_csv": write_table(run.file("cell_embeddings.csv"), cells),
    }
    gene_table = None
    if result.genes is not None:
        gene_table = _gene_frame(result, emb_layer)
        files["genes"] = write_table(run.file("gene_embeddings.parquet"), gene_table)
        files["genes_csv"] = write_table(run.file("gene_embeddings.csv"), gene_table)
    return cells, gene_table, files


def _draw(run: RunDir, result: Embeddings, emb_layer: int, label: str, seed: int) -> dict:
    """UMAP and heatmap of the cell embeddings, coloured by ``label``."""
    from genoformer.sc.plots import embedding_heatmap, embedding_umap

    values = result.cells[emb_layer]
    what = f"{result.emb_mode} embeddings, emb_layer {emb_layer}"
    labels = result.obs[label].to_numpy()
    return {
        "umap": embedding_umap(
            values,
            labels,
            run.file("figures/umap"),
            cell_ids=result.obs["cell_id"].to_numpy(),
            label=label,
            title=f"UMAP of {len(values):,} {what}",
            seed=seed,
        ),
        "heatmap": embedding_heatmap(
            values,
            labels,
            run.file("figures/heatmap"),
            label=label,
            title=f"Mean {what} by {label}",
        ),
    }
