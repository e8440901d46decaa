"""In silico perturbation (delete or overexpress genes), as Geneformer's InSilicoPerturber.

A perturbation changes a cell's ranked gene tokens: ``delete`` removes genes from it,
``overexpress`` moves them to the front (inserting the ones the cell lacks). Its value, as
Geneformer defines it without cell states: the mean, over the cell's remaining genes, of
the cosine similarity between each gene's embedding after and before the perturbation
(``emb_mode="cell"``), or the cosine between the ``<cls>`` embeddings (``emb_mode="cls"``,
V2). ``all_genes`` perturbs each gene of each cell in turn (for ``overexpress`` every gene
but the first, which is already at the front), otherwise the genes named are perturbed
jointly: deleted in the cells that hold all of them (as Geneformer filters), overexpressed
in every cell.

Why it is faster than Geneformer's loop (one ``datasets`` object and batches of one cell's
copies, the full masked-language model with every hidden state, Python lists of ``.item()``
values): the perturbed copies are gathers of the original tokens, batched across the cells
of a chunk by length; only the encoder runs, up to ``emb_layer``
(:func:`genoformer.sc.embeddings.layer_states`, the embedding forward path); each cell's
unperturbed embedding is computed once; cosines are reduced on the batch as it comes out.
Results are written per chunk of cells, so a killed run resumes without recomputing them.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError, command_line, option, setting
from genoformer.engine.options import with_overrides
from genoformer.engine.runs import MANIFEST, RunDir, RunResult, check_resume_arguments, write_table
from genoformer.sc.corpus import tokenize_record
from genoformer.sc.embeddings import (
    _batch,
    _check_input_size,
    _corpus_tokens,
    _encoder,
    _load,
    _pooled,
    _resolve_vocabulary,
    _Tokens,
    check_cls_mode,
    hidden_state_index,
    layer_states,
    running,
)

if TYPE_CHECKING:
    import datasets
    import pandas as pd
    from transformers import BertModel, PreTrainedModel

    from genoformer.sc.vocabulary import GeneVocabulary

__all__ = ["PerturbSettings", "perturb"]

PERTURB_TYPES = ("delete", "overexpress")
PRECISIONS = ("fp32", "bf16")
#: Embedding modes: the cell's value, and with ``_and_gene`` every affected gene's too.
EMB_MODES = ("cell", "cls", "cell_and_gene", "cls_and_gene")
#: Folder of the per-chunk tables a resumed run keeps.
CHUNKS = "chunks"
#: Arguments a resumed run may change (they do not change the values).
_RESUMABLE = {"resume", "overwrite", "device", "threads", "progress", "batch_size", "dictionaries"}


@dataclass(frozen=True)
class PerturbSettings:
    """How :func:`perturb` perturbs (each also a keyword argument of it, and a CLI flag).

    Attributes
    ----------
    perturb_type
        ``"delete"``: remove the genes from the ranking; ``"overexpress"``: move them to
        the front (genes the cell lacks are inserted there).
    genes
        Ensembl ids or symbols, perturbed jointly (one perturbation per cell).
    all_genes
        Perturb each gene of each cell in turn instead (``genes`` must be empty).
    anchor_gene
        Geneformer's ``anchor_gene`` (with ``combos=1``): this gene is perturbed together
        with each other gene of the cell (``all_genes``) or with each gene of ``genes`` in
        turn, one pair at a time, and only in the cells that express it (cells selected by
        ``cells`` must all express it; otherwise the cells lacking it are left out and
        counted in the metrics, ``n_cells_without_anchor``).
    emb_mode
        ``"cell"``: mean over the remaining genes of each gene's cosine after/before;
        ``"cls"``: cosine of the ``<cls>`` embeddings (V2 corpora); ``"cell_and_gene"`` /
        ``"cls_and_gene"``: the same, and each affected gene's cosine after/before in the
        ``gene_shifts`` table.
    emb_layer
        Geneformer's layer number: -1 the second-to-last layer (default), 0 the last.
    cells
        Corpus rows to perturb (default: every cell).
    max_cells
        At most this many of them (the first ones).
    batch_size
        Perturbed copies per forward pass (memory grows with it and the cells' length).
    chunk_cells
        Cells per chunk: each chunk's results are written when it is done.
    precision
        ``fp32`` (default) or ``bf16`` (faster on CPUs with AVX-512 BF16, less exact).
    state_attribute, start_state, goal_state, alt_states
        In silico treatment: the cell attribute holding the cell states, the state whose
        cells are perturbed, the state to move them towards and other states. Each state's
        embedding is the mean cell embedding of the corpus's cells in it (computed once);
        each perturbation gets ``shift_<state>`` = cos(perturbed cell, state) - cos(cell,
        state) for every state.
    device, threads, progress, overwrite, resume
        Device (``auto``, ``cpu``, ``cuda``, ...), CPU threads (default: all cores), a
        progress bar, replace an earlier run in ``out``, continue a stopped one.
    """

    perturb_type: Literal["delete", "overexpress"] = "delete"
    genes: tuple[str, ...] = ()
    all_genes: bool = False
    anchor_gene: str | None = None
    emb_mode: Literal["cell", "cls", "cell_and_gene", "cls_and_gene"] = "cell"
    emb_layer: int = -1
    cells: tuple[int, ...] | None = None
    max_cells: int | None = None
    batch_size: int = 32
    chunk_cells: int = 16
    precision: Literal["fp32", "bf16"] = "fp32"
    state_attribute: str | None = None
    start_state: str | None = None
    goal_state: str | None = None
    alt_states: tuple[str, ...] = ()
    device: str = "auto"
    threads: int | None = None
    progress: bool = True
    overwrite: bool = False
    resume: bool = False


# ---------------------------------------------------------------------------------------------
# Checks and genes


def _check_settings(options: PerturbSettings) -> None:
    if options.perturb_type not in PERTURB_TYPES:
        raise InputError(
            f"unknown perturb_type {options.perturb_type!r}",
            where=setting("perturb_type"),
            fix="use delete or overexpress",
        )
    if options.all_genes == bool(options.genes):
        genes = "--delete/--overexpress GENE" if command_line() else "genes=(GENE, ...)"
        raise InputError(
            "name the genes to perturb or ask for all genes, not both"
            if options.genes
            else "no genes to perturb",
            where="--delete/--overexpress/--all-genes" if command_line() else "genes/all_genes",
            fix=f"pass {genes} (perturbed jointly) or {option('all_genes', True)}",
        )
    if options.emb_mode not in EMB_MODES:
        raise InputError(
            f"unknown emb_mode {options.emb_mode!r}",
            where=setting("emb_mode"),
            fix="use " + ", ".join(EMB_MODES),
        )
    if options.precision not in PRECISIONS:
        raise InputError(
            f"unknown precision {options.precision!r}",
            where=setting("precision"),
            fix="use fp32 or bf16",
        )
    for name in ("batch_size", "chunk_cells", "max_cells"):
        value = getattr(options, name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InputError(
                f"{value!r} is not a positive integer",
                where=setting(name),
                fix=f"give {setting(name)} 1 or more",
            )


def _genes_setting(options: PerturbSettings) -> str:
    """Where the genes to perturb were named: ``--delete`` or ``--overexpress``, or
    ``genes``."""
    if command_line():
        return f"--{options.perturb_type}" if options.perturb_type in PERTURB_TYPES else "--delete"
    return "genes"


def gene_tokens(names: tuple[str, ...], vocab: GeneVocabulary, where: str = "genes") -> list[int]:
    """Token ids of genes named by Ensembl id or symbol (``where``: the setting naming them).

    Raises
    ------
    InputError
        A name is neither a gene of the vocabulary nor a symbol of one (the closest
        symbols are named).
    """
    tokens = []
    for name in names:
        key = str(name).strip()
        token = vocab.gene_token(key)
        if token is None:
            close = difflib.get_close_matches(key.upper(), _symbols(vocab), n=3, cutoff=0.6)
            raise InputError(
                f"gene {key!r} is not in the {vocab.name} vocabulary"
                + (f" (closest symbols: {', '.join(close)})" if close else ""),
                where=where,
                fix="give an Ensembl id or symbol of a gene the vocabulary has",
            )
        tokens.append(token)
    if len(set(tokens)) < len(tokens):
        twice = next(n for n, t in zip(names, tokens, strict=True) if tokens.count(t) > 1)
        raise InputError(f"gene {twice!r} is named twice", where=where, fix="name each gene once")
    return tokens


def _symbols(vocab: GeneVocabulary) -> list[str]:
    """Symbols of the vocabulary's genes (upper case, as the closest-match search compares)."""
    return sorted({s.upper() for s, g in vocab.symbol_to_id.items() if g in vocab.token_ids})


def _gene_names(vocab: GeneVocabulary) -> tuple[dict[int, str], dict[int, str]]:
    """Token id to Ensembl id, and to symbol (the first symbol of each gene)."""
    by_token = {int(t): g for g, t in vocab.token_ids.items()}
    symbols: dict[str, str] = {}
    for symbol, gene in vocab.symbol_to_id.items():
        symbols.setdefault(gene, symbol)
    return by_token, {t: symbols.get(g, "") for t, g in by_token.items()}


def _select_cells(
    dataset: datasets.Dataset, options: PerturbSettings, source: str | None
) -> tuple[datasets.Dataset, np.ndarray]:
    """The corpus rows to perturb, and the dataset restricted to them."""
    n = len(dataset)
    rows = np.arange(n) if options.cells is None else np.asarray(options.cells, dtype=np.int64)
    outside = rows[(rows < 0) | (rows >= n)]
    if outside.size:
        raise InputError(
            f"cell {int(outside[0])} is not a row of the corpus ({n:,} cells)",
            file=source,
            where=setting("cells", flag="--cell"),
            fix=f"give rows 0 .. {n - 1}",
        )
    if options.max_cells is not None:
        rows = rows[: options.max_cells]
    if rows.size == 0:
        raise InputError(
            "no cells to perturb",
            file=source,
            where=setting("cells", flag="--cell"),
            fix="select at least one cell, or none (every cell)",
        )
    selected = dataset if options.cells is None and rows.size == n else dataset.select(rows)
    return selected, rows


def _state_names(options: PerturbSettings) -> tuple[str, ...]:
    if options.state_attribute is None:
        return ()
    return (options.start_state, options.goal_state, *options.alt_states)


def _state_rows(
    dataset: datasets.Dataset, options: PerturbSettings, source: str | None
) -> dict[str, np.ndarray]:
    """The corpus rows of each cell state to model (empty without ``state_attribute``)."""
    attribute = options.state_attribute
    given = [options.start_state, options.goal_state, *options.alt_states]
    if attribute is None:
        if any(given):
            raise InputError(
                "cell states given without the attribute that holds them",
                where=setting("state_attribute"),
                fix=f"pass {option('state_attribute')} (the corpus column of the states)",
            )
        return {}
    if attribute not in dataset.column_names:
        raise InputError(
            f"no cell attribute {attribute!r} in the corpus",
            file=source,
            where=setting("state_attribute"),
            fix="tokenize with --attribute for that obs column, or pick one of: "
            + ", ".join(c for c in dataset.column_names if c not in ("input_ids", "length")),
        )
    if options.start_state is None or options.goal_state is None or len(set(given)) < len(given):
        raise InputError(
            "in silico treatment needs a start state and a goal state, all states different",
            where="/".join(_state_settings()),
            fix="pass {} and {} (and {}) as distinct values of {}".format(
                *_state_settings(), attribute
            ),
        )
    values = np.asarray(dataset[attribute]).astype(str)
    present = set(values)
    missing = [state for state in given if str(state) not in present]
    if missing:
        raise InputError(
            f"state {missing[0]!r} is not a value of {attribute} (values: "
            + ", ".join(sorted(present)[:20])
            + ")",
            file=source,
            where=f"column {attribute}",
            fix="give {}/{}/{} values the column holds".format(*_state_settings()),
        )
    return {state: np.flatnonzero(values == str(state)) for state in given}


def _state_settings() -> tuple[str, str, str]:
    return (
        setting("start_state"),
        setting("goal_state"),
        setting("alt_states", flag="--alt-state"),
    )


def _state_embeddings(
    runner: _Runner, dataset: datasets.Dataset, state_rows: dict[str, np.ndarray], chunk: int
) -> Any:
    """Each state's mean cell embedding over its cells (accumulated in float64), once."""
    import torch

    means = []
    for rows in state_rows.values():
        total = torch.zeros(runner.encoder.config.hidden_size, dtype=torch.float64)
        for begin in range(0, len(rows), chunk):  # a chunk of cells in memory at a time
            part = _corpus_tokens(dataset.select(rows[begin : begin + chunk]), None, None)
            cells = np.split(part.values, part.offsets[1:-1])
            total += _reference_states(runner, cells).cells.double().sum(0).cpu()
        means.append((total / len(rows)).float())
    return torch.stack(means).to(runner.target)


# ---------------------------------------------------------------------------------------------
# The perturbations of one cell


@dataclass
class _CellPlan:
    """One cell's perturbed copies, as gathers of its reference tokens.

    ``origin[k, j]`` is the reference position of copy ``k``'s token ``j`` (a token inserted
    that the cell lacks: ``-(token + 1)``); ``compare[k, j]`` marks the genes whose cosine
    enters the value; ``reference`` is the cell's tokens (cut as the longest copy is)."""

    slot: int
    reference: np.ndarray
    origin: np.ndarray
    compare: np.ndarray
    perturbed: list[tuple[int, ...]]
    rank: np.ndarray  # position among the cell's genes of a single perturbed gene, else -1
    n_present: np.ndarray


def _all_genes_plan(slot: int, ids: np.ndarray, kind: str, special: int) -> _CellPlan:
    """Each gene of the cell deleted, or moved to the front, in turn."""
    length = len(ids)
    genes = np.arange(special, length - special)
    if kind == "overexpress":
        genes = genes[1:]  # the first gene is at the front already
    width = length - 1
    j = np.arange(width)
    rest = j[None, :] + (j[None, :] >= genes[:, None])  # the reference without gene p
    if kind == "delete":
        origin = rest
    else:
        origin = np.concatenate([rest[:, :special], genes[:, None], rest[:, special:]], axis=1)
    compare = (origin >= special) & (origin < length - special)
    if kind == "overexpress":
        compare[:, special] = False
    return _CellPlan(
        slot,
        ids,
        origin.astype(np.int64),
        compare,
        [(int(ids[p]),) for p in genes],
        genes - special,
        np.ones(len(genes), dtype=np.int64),
    )


def _anchor_plan(
    slot: int, ids: np.ndarray, kind: str, anchor: int, special: int
) -> _CellPlan | None:
    """The anchor gene and each other gene of the cell perturbed together, pair by pair (as
    Geneformer's ``anchor_gene`` with ``combos=1``): both deleted, or both moved to the front
    in their order in the cell (a pair already at the front is left out, as the first gene
    is in ``all_genes``). None when the cell has no such pair."""
    length = len(ids)
    where = int(np.flatnonzero(ids[special : length - special] == anchor)[0]) + special
    partners = np.setdiff1d(np.arange(special, length - special), [where])
    if kind == "overexpress":  # the pair already in front: the copy would be the cell
        partners = partners[np.maximum(partners, where) > special + 1]
    if partners.size == 0:
        return None
    taken = np.ones((len(partners), length), dtype=bool)
    taken[:, where] = False
    taken[np.arange(len(partners)), partners] = False
    rest = np.nonzero(taken)[1].reshape(len(partners), length - 2)
    if kind == "delete":
        origin = rest
    else:
        pair = np.sort(np.stack([np.full(len(partners), where), partners], axis=1), axis=1)
        origin = np.concatenate([rest[:, :special], pair, rest[:, special:]], axis=1)
    compare = (origin >= special) & (origin < length - special)
    if kind == "overexpress":
        compare[:, special : special + 2] = False
    return _CellPlan(
        slot,
        ids,
        origin.astype(np.int64),
        compare,
        [(anchor, int(ids[p])) for p in partners],
        partners - special,
        np.full(len(partners), 2, dtype=np.int64),
    )


def _set_plan(
    slot: int, ids: np.ndarray, kind: str, tokens: list[int], special: int, max_len: int
) -> _CellPlan | None:
    """The named genes deleted jointly (None: the cell lacks one) or moved to the front."""
    length = len(ids)
    where = {int(t): i for i, t in enumerate(ids[special : length - special], start=special)}
    present = [where[t] for t in tokens if t in where]
    if kind == "delete" and len(present) < len(tokens):
        return None
    keep = np.setdiff1d(np.arange(special, length - special), present)
    reference = ids
    if kind == "delete":
        origin = np.concatenate([np.arange(special), keep, np.arange(length - special, length)])
        compare = (origin >= special) & (origin < length - special)
    else:
        # The genes moved to the front are never compared: written as inserted tokens.
        front = np.array([-(t + 1) for t in tokens], dtype=np.int64)
        overflow = max(0, length + len(tokens) - len(present) - max_len)
        if overflow:
            # As Geneformer: the copy is cut to the model's input size and compared with
            # the cell cut by as many genes, so both hold the same genes.
            keep = keep[: len(keep) - overflow]
            reference = np.concatenate(
                [ids[: length - special - overflow], ids[length - special :]]
            )
        tail = np.arange(len(reference) - special, len(reference)) + (length - len(reference))
        origin = np.concatenate([np.arange(special), front, keep, tail])
        origin = np.where(origin >= length - special, origin - (length - len(reference)), origin)
        compare = (origin >= special) & (origin < len(reference) - special)
    rank = np.array([present[0] - special if len(tokens) == 1 and present else -1])
    return _CellPlan(
        slot,
        reference,
        origin[None, :].astype(np.int64),
        compare[None, :],
        [tuple(tokens)],
        rank,
        np.array([len(present)]),
    )


# ---------------------------------------------------------------------------------------------
# Running a chunk of cells


@dataclass
class _Runner:
    """What every chunk's forward passes need."""

    encoder: BertModel
    index: int  # hidden_states index of emb_layer
    emb_mode: str
    pad: int
    special: int
    batch_size: int
    target: Any
    #: The mean cell embedding of each cell state to model (n_states, hidden), or None.
    states: Any = None
    #: A gene mode (``cell_and_gene``, ``cls_and_gene``): every affected gene's cosine kept.
    genes: bool = False


@dataclass
class _References:
    """The unperturbed cells of a chunk: token ids and hidden states, flat (tokens first),
    each cell's offset into them, and each cell's embedding (``emb_mode``)."""

    ids: Any
    states: Any
    offsets: np.ndarray
    cells: Any


def _reference_states(runner: _Runner, references: list[np.ndarray]) -> _References:
    """The hidden states of each cell's unperturbed tokens, computed once."""
    import torch

    lengths = np.array([len(r) for r in references])
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    tokens = _Tokens(np.concatenate(references), offsets, None, None)
    hidden = runner.encoder.config.hidden_size
    flat = torch.empty((int(offsets[-1]), hidden), device=runner.target)
    cells = torch.empty((len(references), hidden), device=runner.target)
    order = np.argsort(-lengths, kind="stable")
    for begin in range(0, len(references), runner.batch_size):
        rows = order[begin : begin + runner.batch_size]
        input_ids, mask, genes = _batch(tokens, rows, runner.pad, runner.special, runner.target)
        (state,) = layer_states(runner.encoder, input_ids, mask, [runner.index])
        state = state.float()
        cells[torch.from_numpy(rows).to(runner.target)] = _pooled(state, genes, runner.emb_mode)
        for i, row in enumerate(rows):
            flat[offsets[row] : offsets[row + 1]] = state[i, : lengths[row]]
    ids = torch.from_numpy(tokens.values).to(runner.target)
    return _References(ids, flat, offsets[:-1], cells)


def _copies(plans: list[_CellPlan], chosen: list[tuple[int, int]]) -> tuple[np.ndarray, ...]:
    """Padded origin and compare matrices of the copies ``(plan, row)``, their cells and
    lengths."""
    lengths = np.array([plans[p].origin.shape[1] for p, _ in chosen])
    width = int(lengths.max())
    origin = np.zeros((len(chosen), width), dtype=np.int64)
    compare = np.zeros((len(chosen), width), dtype=bool)
    for i, (p, k) in enumerate(chosen):
        origin[i, : lengths[i]] = plans[p].origin[k]
        compare[i, : lengths[i]] = plans[p].compare[k]
    cells = np.array([p for p, _ in chosen])
    return origin, compare, cells, lengths


def _batch_values(
    runner: _Runner, refs: _References, origin: np.ndarray, compare: np.ndarray, cells, lengths
) -> Any:
    """One batch of copies through the encoder: (copies, 1 + 2 * states) values: Geneformer's
    cos_sim, the shift towards each cell state, and the unperturbed cell's cosine to each."""
    import torch
    import torch.nn.functional as F

    target = runner.target
    origin_t = torch.from_numpy(origin).to(target)
    base = torch.from_numpy(refs.offsets[cells]).to(target)[:, None]
    at = base + origin_t.clamp(min=0)
    input_ids = torch.where(origin_t >= 0, refs.ids[at.clamp(max=len(refs.ids) - 1)], -origin_t - 1)
    positions = np.arange(origin.shape[1])[None, :]
    valid = positions < lengths[:, None]
    input_ids[torch.from_numpy(~valid).to(target)] = runner.pad
    mask = None if valid.all() else torch.from_numpy(valid).to(target)
    (state,) = layer_states(runner.encoder, input_ids, mask, [runner.index])
    state = state.float()
    weights = torch.from_numpy(compare).to(target)
    sims = None
    if runner.emb_mode != "cls" or runner.genes:
        sims = F.cosine_similarity(state, refs.states[at], dim=-1) * weights
    if runner.emb_mode == "cls":
        value = F.cosine_similarity(state[:, 0], refs.states[base[:, 0]], dim=-1)
    else:
        value = sims.sum(1) / weights.sum(1)  # NaN for a cell left without genes
    affected = (sims, input_ids) if runner.genes else None
    if runner.states is None:
        return value[:, None], affected
    # In silico treatment: cos(perturbed cell, state) - cos(original cell, state).
    genes = (positions >= runner.special) & (positions < lengths[:, None] - runner.special)
    after = _pooled(state, torch.from_numpy(genes).to(target), runner.emb_mode)
    before = refs.cells[torch.from_numpy(cells).to(target)]
    unperturbed = F.cosine_similarity(before[:, None], runner.states[None], dim=-1)
    shift = F.cosine_similarity(after[:, None], runner.states[None], dim=-1) - unperturbed
    return torch.cat([value[:, None], shift, unperturbed], dim=1), affected


def _chunk_values(
    runner: _Runner, plans: list[_CellPlan]
) -> tuple[list[np.ndarray], list[list[tuple[np.ndarray, np.ndarray]]] | None]:
    """Each plan's values, one row per copy: its copies batched across the cells by length;
    in a gene mode also each copy's affected genes (token ids) and their cosines."""
    refs = _reference_states(runner, [p.reference for p in plans])
    n_states = 0 if runner.states is None else len(runner.states)
    values = [np.empty((len(p.perturbed), 1 + 2 * n_states), dtype=np.float32) for p in plans]
    chosen = [(p, k) for p, plan in enumerate(plans) for k in range(len(plan.perturbed))]
    width = np.array([plans[p].origin.shape[1] for p, _ in chosen])
    chosen = [chosen[i] for i in np.argsort(-width, kind="stable")]
    genes = [[None] * len(plan.perturbed) for plan in plans] if runner.genes else None
    for begin in range(0, len(chosen), runner.batch_size):
        batch = chosen[begin : begin + runner.batch_size]
        copies = _copies(plans, batch)
        found, affected = _batch_values(runner, refs, *copies)
        found = found.cpu().numpy()
        for (p, k), row in zip(batch, found, strict=True):
            values[p][k] = row
        if genes is not None:
            sims, ids = (a.cpu().numpy() for a in affected)
            compare = copies[1]
            for i, (p, k) in enumerate(batch):
                genes[p][k] = (ids[i][compare[i]], sims[i][compare[i]].astype(np.float32))
    return values, genes


def _chunk_table(
    plans: list[_CellPlan],
    values: list[np.ndarray],
    obs: pd.DataFrame,
    names: tuple[dict, dict],
    states: tuple[str, ...],
) -> pd.DataFrame:
    """One row per perturbation of the chunk's cells."""
    import pandas as pd

    by_token, symbols = names
    parts = []
    for plan, value in zip(plans, values, strict=True):
        n = len(plan.perturbed)
        cell = obs.iloc[[plan.slot] * n].reset_index(drop=True)
        shifts = {f"shift_{state}": value[:, 1 + i] for i, state in enumerate(states)}
        shifts.update(
            {f"cos_{state}": value[:, 1 + len(states) + i] for i, state in enumerate(states)}
        )
        parts.append(
            cell.assign(
                perturbed=[",".join(by_token.get(t, str(t)) for t in g) for g in plan.perturbed],
                symbol=[",".join(symbols.get(t, "") for t in g) for g in plan.perturbed],
                token_ids=[",".join(str(t) for t in g) for g in plan.perturbed],
                rank=plan.rank.astype(np.int64),
                n_present=plan.n_present.astype(np.int64),
                n_compared=plan.compare.sum(1).astype(np.int64),
                cos_sim=value[:, 0],
                **shifts,
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


# ---------------------------------------------------------------------------------------------
# The public verb


@shared_docs
def perturb(
    model: PreTrainedModel | str | os.PathLike,
    corpus: datasets.Dataset | str | os.PathLike,
    *,
    out: str | os.PathLike,
    vocabulary: GeneVocabulary | str | os.PathLike | None = None,
    dictionaries: str | os.PathLike | None = None,
    settings: PerturbSettings | None = None,
    **overrides: Any,
) -> RunResult:
    """Delete or overexpress genes in each cell and measure how far the embeddings move.

    Parameters
    ----------
    model
        A Geneformer checkpoint directory (or one written by genoformer), or a loaded BERT
        model (its encoder is used).
    {corpus_dataset}
    out
        The run directory: ``perturbations.parquet`` / ``.tsv``, ``genes.tsv``,
        ``chunks/`` (per chunk of cells), ``manifest.json``.
    {corpus_vocabulary}
    {settings:PerturbSettings}
        For example ``perturb_type="overexpress", genes=("NKG7",)``.

    Returns
    -------
    RunResult
        ``outputs["perturbations"]``: one row per perturbation and cell (``row``,
        ``cell_id``, ``cell_index``, the cell attributes, ``perturbed`` (Ensembl ids),
        ``symbol``, ``token_ids``, ``rank`` (the gene's place in the cell), ``n_present``,
        ``n_compared`` (genes averaged), ``cos_sim``); ``outputs["genes"]``: per perturbed
        gene (or group) the cells it was perturbed in and the mean ``cos_sim`` (0 cells for
        a gene no selected cell holds); ``metrics``.

    Raises
    ------
    InputError
        A gene not in the vocabulary, ``cls`` mode on a corpus without ``<cls>``, a model
        whose vocabulary is not the corpus's, cells out of range, bad settings.
    """
    start = time.perf_counter()
    options = with_overrides(PerturbSettings, settings, overrides, "perturb")
    options = dataclasses.replace(
        options,
        genes=tuple(options.genes),
        cells=None if options.cells is None else tuple(int(c) for c in options.cells),
        alt_states=tuple(options.alt_states),
    )
    _check_settings(options)
    dataset, path, source = _load(corpus)
    # At most max_cells of the cells of the start state that express the anchor (as
    # Geneformer filters before it downsamples): max_cells is applied once they are known.
    anchored = options.anchor_gene is not None
    state_rows = _state_rows(dataset, options, source)
    later = anchored or bool(state_rows)
    selection = dataclasses.replace(options, max_cells=None) if later else options
    selected, rows = _select_cells(dataset, selection, source)
    if state_rows:  # only the start state's cells are perturbed
        selected, rows = _start_state_cells(dataset, rows, state_rows, options, anchored, source)
    tokens = _corpus_tokens(selected, source, None)
    tokens.obs.insert(0, "row", rows)
    vocab = _resolve_vocabulary(vocabulary, dictionaries, path, tokens)
    check_cls_mode(options.emb_mode.removesuffix("_and_gene"), vocab, source)
    wanted = gene_tokens(options.genes, vocab, _genes_setting(options)) if options.genes else []
    anchor, without_anchor = None, 0
    if anchored:
        anchor = _anchor_token(options, vocab, wanted)
        tokens, without_anchor = _anchor_cells(tokens, anchor, options, vocab, source)
    encoder, model_name = _encoder(model, vocab)
    _check_input_size(encoder, tokens, tokenize_record(path), model_name)
    index = hidden_state_index(options.emb_layer, len(encoder.encoder.layer))
    arguments = _arguments(model, corpus, vocabulary, dictionaries, options)
    if options.resume:
        check_resume_arguments(Path(out) / MANIFEST, arguments, _RESUMABLE)
    resume, overwrite = options.resume, options.overwrite
    run = RunDir(out, command="sc perturb", arguments=arguments, resume=resume, overwrite=overwrite)
    with run.step("perturb"):
        runner = _runner(encoder, index, options, vocab, model_name is None)
        if state_rows:
            with running(runner.encoder, index, options.threads, runner.target):
                runner.states = _state_embeddings(runner, dataset, state_rows, options.chunk_cells)
        table, gene_table, done_before = _run_chunks(
            run, runner, tokens, options, wanted, vocab, anchor
        )
    files = _write_tables(run, table, gene_table)
    groups = [(anchor, t) for t in wanted] if anchored else [tuple(wanted)] if wanted else []
    genes = _gene_summary(table, options, groups, _gene_names(vocab))
    files["genes"] = write_table(run.file("genes.tsv"), genes)
    if state_rows:  # the states' embeddings, for the pictures of `sc perturb-stats`
        files.update(_write_states(run, runner.states, state_rows, options))
    metrics = _metrics(table, genes, options, vocab, tokens, time.perf_counter() - start)
    metrics["cells_resumed"] = done_before
    if anchored:
        metrics.update(_anchor_metrics(vocab, anchor, without_anchor))
    run.record_results("perturb", metrics)
    return run.finish(metrics, files)


def _write_tables(
    run: RunDir, table: pd.DataFrame, gene_table: pd.DataFrame | None
) -> dict[str, Path]:
    """The perturbations (and, in the gene modes, the gene shifts) as Parquet and TSV."""
    files = {
        "perturbations": write_table(run.file("perturbations.parquet"), table),
        "perturbations_tsv": write_table(run.file("perturbations.tsv"), table),
    }
    if gene_table is not None:
        files["gene_shifts"] = write_table(run.file("gene_shifts.parquet"), gene_table)
        files["gene_shifts_tsv"] = write_table(run.file("gene_shifts.tsv"), gene_table)
    return files


def _anchor_metrics(vocab: GeneVocabulary, anchor: int, without_anchor: int) -> dict[str, Any]:
    by_token, symbols = _gene_names(vocab)
    return {
        "anchor_gene": by_token[anchor],
        "anchor_symbol": symbols.get(anchor, ""),
        "n_cells_without_anchor": without_anchor,
    }


def _arguments(
    model: Any, corpus: Any, vocabulary: Any, dictionaries: Any, options: PerturbSettings
) -> dict[str, Any]:
    def named(value: Any, fallback: str) -> Any:
        if value is None or isinstance(value, (str, os.PathLike)):
            return None if value is None else str(value)
        return getattr(value, "name", fallback)

    arguments = {
        "model": named(model, type(model).__name__),
        "corpus": named(corpus, "<Dataset>"),
        "vocabulary": named(vocabulary, "<GeneVocabulary>"),
        "dictionaries": named(dictionaries, ""),
        **dataclasses.asdict(options),
    }
    return json.loads(json.dumps(arguments, default=str))


def _runner(
    encoder: BertModel, index: int, options: PerturbSettings, vocab: GeneVocabulary, given: bool
) -> _Runner:
    """The encoder on its device, in the precision asked for (a caller's model is copied
    before it is cast, so it stays as it was), and what the forward passes need."""
    import torch

    from genoformer.engine.device import pick_device

    target = pick_device(options.device)
    if options.precision == "bf16":
        encoder = (copy.deepcopy(encoder) if given else encoder).to(torch.bfloat16)
    pad = vocab.pad_id if vocab.pad_id is not None else int(encoder.config.pad_token_id or 0)
    special = 1 if vocab.has_cls_eos else 0
    base = options.emb_mode.removesuffix("_and_gene")
    runner = _Runner(
        encoder.to(target).eval(), index, base, pad, special, options.batch_size, target
    )
    runner.genes = options.emb_mode.endswith("_and_gene")
    return runner


def _write_states(
    run: RunDir, embeddings: Any, state_rows: dict[str, np.ndarray], options: PerturbSettings
) -> dict[str, Path]:
    states = _state_table(embeddings, state_rows, options)
    return {
        "states": write_table(run.file("states.parquet"), states),
        "states_tsv": write_table(run.file("states.tsv"), states),
    }


def _state_table(
    embeddings: Any, state_rows: dict[str, np.ndarray], options: PerturbSettings
) -> pd.DataFrame:
    """One row per cell state: its role, its number of cells and its mean embedding."""
    import pandas as pd

    roles = ["start", "goal", *("alternative" for _ in options.alt_states)]
    values = embeddings.float().cpu().numpy()
    table = pd.DataFrame(values, columns=[str(i) for i in range(values.shape[1])])
    table.insert(0, "n_cells", [len(rows) for rows in state_rows.values()])
    table.insert(0, "role", roles)
    table.insert(0, "state", [str(s) for s in state_rows])
    return table


def _anchor_token(options: PerturbSettings, vocab: GeneVocabulary, wanted: list[int]) -> int:
    """The anchor gene's token; it may not also be one of the genes it is paired with."""
    where = setting("anchor_gene")
    (anchor,) = gene_tokens((options.anchor_gene,), vocab, where=where)
    if anchor in wanted:
        raise InputError(
            f"the anchor gene {options.anchor_gene!r} is also one of the genes to perturb",
            where=where,
            fix="name it once, as the anchor: it is perturbed with each of the other genes",
        )
    return anchor


def _anchor_cells(
    tokens: _Tokens,
    anchor: int,
    options: PerturbSettings,
    vocab: GeneVocabulary,
    source: str | None,
) -> tuple[_Tokens, int]:
    """The selected cells that express the anchor gene (at most ``max_cells`` of them), and
    how many were left out for lacking it. Cells the caller named must all express it."""
    by_token, symbols = _gene_names(vocab)
    name = by_token[anchor] + (f" ({symbols[anchor]})" if symbols.get(anchor) else "")
    cell = np.repeat(np.arange(len(tokens)), tokens.lengths)
    holds = np.zeros(len(tokens), dtype=bool)
    holds[cell[tokens.values == anchor]] = True
    lacking = np.flatnonzero(~holds)
    if options.cells is not None and lacking.size:
        rows = tokens.obs["row"].to_numpy()[lacking]
        listed = ", ".join(str(int(r)) for r in rows[:5]) + (" ..." if rows.size > 5 else "")
        raise InputError(
            f"{'cell' if rows.size == 1 else f'{rows.size:,} cells'} {listed} "
            f"{'does' if rows.size == 1 else 'do'} not express the anchor gene {name}",
            file=source,
            where=setting("cells", flag="--cell"),
            fix="select cells that express it, or select none: every cell that expresses it "
            "is perturbed and the others are counted (n_cells_without_anchor)",
        )
    keep = np.flatnonzero(holds)
    if keep.size == 0:
        raise InputError(
            f"no selected cell expresses the anchor gene {name} ({len(tokens):,} cells)",
            file=source,
            where=setting("anchor_gene"),
            fix="pick an anchor gene the cells express",
        )
    if options.max_cells is not None:
        keep = keep[: options.max_cells]
    return _subset(tokens, keep), int(lacking.size)


def _subset(tokens: _Tokens, keep: np.ndarray) -> _Tokens:
    """The cells ``keep`` of ``tokens``, in that order."""
    lengths = tokens.lengths[keep]
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    shift = np.repeat(tokens.offsets[keep] - offsets[:-1], lengths)
    values = tokens.values[np.arange(int(offsets[-1])) + shift]
    obs = tokens.obs.iloc[keep].reset_index(drop=True)
    obs.attrs.update(tokens.obs.attrs)
    return _Tokens(values, offsets, obs, tokens.source)


def _start_state_cells(
    dataset: datasets.Dataset,
    rows: np.ndarray,
    state_rows: dict[str, np.ndarray],
    options: PerturbSettings,
    anchored: bool,
    source: str | None,
) -> tuple[datasets.Dataset, np.ndarray]:
    """The selected cells of the start state (the only ones perturbed), at most
    ``max_cells`` of them unless the anchor's filter still follows."""
    rows = rows[np.isin(rows, state_rows[options.start_state])]
    if options.max_cells is not None and not anchored:
        rows = rows[: options.max_cells]
    if rows.size == 0:
        raise InputError(
            f"no selected cell has {options.state_attribute}={options.start_state!r}",
            file=source,
            where=setting("cells", flag="--cell"),
            fix=f"select cells of the start state, or none (every cell of {options.start_state})",
        )
    return dataset.select(rows), rows


def _chunk_plans(
    tokens: _Tokens,
    slots: np.ndarray,
    options: PerturbSettings,
    wanted: list[int],
    runner: _Runner,
    anchor: int | None = None,
) -> list[_CellPlan]:
    max_len = int(runner.encoder.config.max_position_embeddings)
    kind, special = options.perturb_type, runner.special
    plans = []
    for slot in slots:
        ids = tokens.values[tokens.offsets[slot] : tokens.offsets[slot + 1]]
        if anchor is not None and options.all_genes:
            plan = _anchor_plan(int(slot), ids, kind, anchor, special)
            if plan is not None:
                plans.append(plan)
            continue
        if anchor is not None:  # the anchor with each named gene: one plan per pair
            plans += _anchor_pairs(int(slot), ids, kind, anchor, wanted, special, max_len)
            continue
        if options.all_genes:
            if len(ids) - 2 * runner.special > (options.perturb_type == "overexpress"):
                plans.append(_all_genes_plan(int(slot), ids, options.perturb_type, runner.special))
            continue
        plan = _set_plan(int(slot), ids, options.perturb_type, wanted, runner.special, max_len)
        if plan is not None:
            plans.append(plan)
    return plans


def _anchor_pairs(
    slot: int,
    ids: np.ndarray,
    kind: str,
    anchor: int,
    wanted: list[int],
    special: int,
    max_len: int,
) -> list[_CellPlan]:
    """The anchor and each named gene perturbed jointly, one plan per pair: deleted where the
    cell holds the gene, overexpressed in every cell (the pair moved to the front in its
    order in the cell, a gene the cell lacks inserted after the anchor)."""
    genes = ids[special : len(ids) - special]
    position = {int(t): i for i, t in enumerate(genes)}
    plans = []
    for gene in wanted:
        pair = sorted((anchor, gene), key=lambda t: position.get(t, len(genes)))
        plan = _set_plan(slot, ids, kind, pair, special, max_len)
        if plan is None:
            continue
        plan.perturbed = [(anchor, gene)]
        plan.rank = np.array([position.get(gene, -1)])
        plans.append(plan)
    return plans


def _run_chunks(
    run: RunDir,
    runner: _Runner,
    tokens: _Tokens,
    options: PerturbSettings,
    wanted: list[int],
    vocab: GeneVocabulary,
    anchor: int | None = None,
) -> tuple[pd.DataFrame, int]:
    """Every chunk's table (computed, or read back from an earlier run of ``run``), joined in
    the order the cells were selected; and how many cells came from the earlier run."""
    import pandas as pd

    from genoformer.engine.progress import progress_bar

    # Longest first, as Geneformer runs them: chunks hold cells of similar length.
    order = np.argsort(-tokens.lengths, kind="stable")
    chunks = [order[i : i + options.chunk_cells] for i in range(0, len(order), options.chunk_cells)]
    names = _gene_names(vocab)
    tables, gene_tables, resumed = [], [], 0
    depth = runner.index
    with (
        running(runner.encoder, depth, options.threads, runner.target),
        progress_bar(enabled=options.progress, unit="cells") as bar,
    ):
        task = bar.add_task("perturbing cells", total=len(order))
        started = time.perf_counter()
        for number, slots in enumerate(chunks):
            path = run.file(f"{CHUNKS}/chunk_{number:06d}.parquet")
            genes_path = run.file(f"{CHUNKS}/genes_{number:06d}.parquet")
            if path.exists() and (genes_path.exists() or not runner.genes):
                tables.append(pd.read_parquet(path))
                if runner.genes:
                    gene_tables.append(pd.read_parquet(genes_path))
                resumed += len(slots)
            else:
                plans = _chunk_plans(tokens, slots, options, wanted, runner, anchor)
                values, genes = _chunk_values(runner, plans) if plans else ([], None)
                table = _chunk_table(plans, values, tokens.obs, names, _state_names(options))
                if runner.genes:  # written first: a chunk is done when its table is
                    write_table(genes_path, _gene_table(plans, genes, table, names))
                    gene_tables.append(pd.read_parquet(genes_path))
                write_table(path, table.assign(_slot=[p.slot for p in plans for _ in p.perturbed]))
                tables.append(pd.read_parquet(path))
            bar.advance(task, len(slots))
            rate = (bar.tasks[0].completed - resumed) / max(time.perf_counter() - started, 1e-9)
            bar.update(task, description=f"perturbing cells ({rate:.2f} cells/s)")
    tables = [t for t in tables if len(t)]
    if not tables:
        columns = [*tokens.obs.columns, "perturbed", "symbol", "token_ids", "rank", "n_present"]
        columns += ["n_compared", "cos_sim", *(f"shift_{s}" for s in _state_names(options))]
        columns += [f"cos_{s}" for s in _state_names(options)]
        empty = pd.DataFrame(columns=_GENE_COLUMNS) if runner.genes else None
        return pd.DataFrame(columns=columns), empty, resumed
    table = pd.concat(tables, ignore_index=True)
    table = table.sort_values(["_slot", "rank"], kind="stable").drop(columns="_slot")
    gene_table = None
    if runner.genes:
        gene_table = pd.concat([t for t in gene_tables if len(t)], ignore_index=True)
        gene_table = gene_table.sort_values(["_slot", "_copy"], kind="stable")
        gene_table = gene_table.drop(columns=["_slot", "_copy"]).reset_index(drop=True)
    return table.reset_index(drop=True), gene_table, resumed


#: The columns of the gene shifts table (a gene embedding mode).
_GENE_COLUMNS = ["row", "cell_id", "perturbed", "symbol", "token_ids", "affected"]
_GENE_COLUMNS += ["affected_symbol", "affected_token", "cos_sim"]


def _gene_table(
    plans: list[_CellPlan],
    genes: list[list[tuple[np.ndarray, np.ndarray]]] | None,
    table: pd.DataFrame,
    names: tuple[dict, dict],
) -> pd.DataFrame:
    """One row per perturbation and affected gene of the chunk's cells: the cosine between
    the gene's embedding after and before (the genes averaged into ``cos_sim``)."""
    import pandas as pd

    by_token, symbols = names
    columns = [*_GENE_COLUMNS, "_slot", "_copy"]
    if not plans:
        return pd.DataFrame(columns=columns)
    counts = [len(ids) for plan_genes in genes for ids, _ in plan_genes]
    tokens = np.concatenate([ids for plan_genes in genes for ids, _ in plan_genes]).astype(np.int64)
    sims = np.concatenate([v for plan_genes in genes for _, v in plan_genes])
    # The row of `table` (one per copy, plan by plan) each affected gene belongs to.
    owner = np.repeat(np.arange(len(table)), counts)
    slots = np.repeat([p.slot for p in plans for _ in p.perturbed], counts)
    copy = np.repeat(np.arange(len(table)), counts)
    unique = np.unique(tokens)
    ensembl = dict(zip(unique, (by_token.get(int(t), str(t)) for t in unique), strict=True))
    symbol = dict(zip(unique, (symbols.get(int(t), "") for t in unique), strict=True))
    cell_id = table["cell_id"] if "cell_id" in table else pd.Series([""] * len(table))
    return pd.DataFrame(
        {
            "row": table["row"].to_numpy()[owner],
            "cell_id": cell_id.to_numpy()[owner],
            "perturbed": table["perturbed"].to_numpy()[owner],
            "symbol": table["symbol"].to_numpy()[owner],
            "token_ids": table["token_ids"].to_numpy()[owner],
            "affected": [ensembl[t] for t in tokens],
            "affected_symbol": [symbol[t] for t in tokens],
            "affected_token": tokens,
            "cos_sim": sims,
            "_slot": slots,
            "_copy": copy,
        }
    )


def _gene_summary(
    table: pd.DataFrame,
    options: PerturbSettings,
    groups: list[tuple[int, ...]],
    names: tuple[dict, dict],
) -> pd.DataFrame:
    """Per perturbed gene (or group): cells, mean and standard deviation of cos_sim; a named
    group (the genes perturbed jointly, or an anchor pair) no selected cell holds is listed
    with 0 cells."""
    import pandas as pd

    grouped = table.groupby(["perturbed", "symbol", "token_ids"], sort=False)
    summary = grouped["cos_sim"].agg(n_cells="size", mean_cos_sim="mean", sd_cos_sim="std")
    for state in _state_names(options):
        summary[f"mean_shift_{state}"] = grouped[f"shift_{state}"].mean()
    summary = summary.reset_index()
    by_token, symbols = names
    found = set(summary["perturbed"])
    absent = [
        {
            "perturbed": ",".join(by_token[t] for t in group),
            "symbol": ",".join(symbols.get(t, "") for t in group),
            "token_ids": ",".join(str(t) for t in group),
            "n_cells": 0,
            "mean_cos_sim": np.nan,
            "sd_cos_sim": np.nan,
        }
        for group in groups
        if ",".join(by_token[t] for t in group) not in found
    ]
    if absent:
        summary = pd.concat([summary, pd.DataFrame(absent)], ignore_index=True)
    return summary.sort_values(["mean_cos_sim", "perturbed"], na_position="last").reset_index(
        drop=True
    )


def _metrics(
    table: pd.DataFrame,
    genes: pd.DataFrame,
    options: PerturbSettings,
    vocab: GeneVocabulary,
    tokens: _Tokens,
    seconds: float,
) -> dict[str, Any]:
    n_cells = int(table["row"].nunique()) if len(table) else 0
    metrics: dict[str, Any] = {
        "perturb_type": options.perturb_type,
        "n_cells_selected": len(tokens),
        "n_cells_perturbed": n_cells,
        "n_perturbations": len(table),
        "emb_mode": options.emb_mode,
        "emb_layer": options.emb_layer,
        "precision": options.precision,
        "vocabulary": vocab.name,
        "seconds": round(seconds, 3),
        "seconds_per_cell": round(seconds / n_cells, 4) if n_cells else None,
    }
    absent = genes.loc[genes["n_cells"] == 0, "perturbed"].tolist()
    if absent:
        metrics["absent_from_every_cell"] = ", ".join(absent)
    return metrics
