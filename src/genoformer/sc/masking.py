"""Masked-language-model inputs for cells: which genes are hidden, and how, reproducibly.

BERT's rule, as Geneformer pretrains: each gene token of a cell is chosen with probability
0.15; a chosen token becomes ``<mask>`` (80%), a random gene (10%) or stays as it is (10%),
and the model is scored on the chosen positions only. Two choices differ from Geneformer
on purpose:

- Special tokens (``<pad>``, ``<mask>``, ``<cls>``, ``<eos>``) are never chosen, and a random
  replacement is always a gene token. Geneformer's collator treats ``<cls>`` and ``<eos>``
  as ordinary tokens, so a V2 model learns to predict them (trivially: they are always
  first and last) and can see one written in the middle of a cell.
- A cell with gene tokens but none chosen gets one chosen at random, so every cell
  contributes to the loss (this matters only for cells of a handful of genes).

The random choices for one cell come from a generator keyed by ``(seed, stream, epoch,
row)``: the same cell gets the same mask whatever the batch, the process (``torchrun``) or
the order it is read in, a new one each epoch, and a resumed run re-creates exactly the
masks of an uninterrupted one. Held-out cells use their own stream and epoch 0, so every
evaluation scores the same masked positions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from genoformer.engine.errors import InputError

if TYPE_CHECKING:
    import torch

    from genoformer.sc.vocabulary import GeneVocabulary

__all__ = ["IGNORE", "MaskedCells", "MaskingRule", "PadCollator", "truncate"]

#: Label of positions the loss ignores (PyTorch's cross-entropy default).
IGNORE = -100
#: Generator streams: training masks change by epoch, held-out masks never do.
TRAIN_STREAM, HELD_OUT_STREAM = 0, 1


@dataclass(frozen=True)
class MaskingRule:
    """BERT masking restricted to gene tokens.

    Attributes
    ----------
    mask_id
        Token id of ``<mask>``.
    gene_token_ids
        Token ids a random replacement is drawn from (the vocabulary's genes).
    special_ids
        Token ids never chosen (``<pad>``, ``<mask>``, ``<cls>``, ``<eos>``).
    probability
        Chance that a gene token is chosen (0.15).
    mask_share, random_share
        Of the chosen tokens: share replaced by ``<mask>`` (0.8) and by a random gene (0.1);
        the rest stay as they are.
    """

    mask_id: int
    gene_token_ids: np.ndarray
    special_ids: np.ndarray
    probability: float = 0.15
    mask_share: float = 0.8
    random_share: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.probability < 1:
            raise InputError(
                f"masking probability {self.probability}, expected between 0 and 1",
                fix="use 0.15 (BERT, Geneformer)",
            )
        if self.mask_share < 0 or self.random_share < 0 or self.mask_share + self.random_share > 1:
            raise InputError(
                f"mask share {self.mask_share} and random share {self.random_share} must be "
                "non-negative and add up to at most 1",
                fix="use 0.8 and 0.1 (BERT)",
            )
        if len(self.gene_token_ids) == 0:
            raise InputError("the vocabulary has no gene tokens to draw replacements from")

    @classmethod
    def from_vocabulary(cls, vocabulary: GeneVocabulary, **options: float) -> MaskingRule:
        """The rule for cells tokenized with ``vocabulary``."""
        if vocabulary.mask_id is None:
            raise InputError(
                f"the {vocabulary.name} vocabulary has no <mask> token",
                fix="use a vocabulary with a <mask> token (Geneformer's V1 and V2 have one)",
            )
        special = sorted({vocabulary.token_ids[t] for t in vocabulary.special_tokens.values()})
        genes = np.array([vocabulary.token_ids[g] for g in vocabulary.gene_ids()], dtype=np.int64)
        return cls(
            mask_id=vocabulary.mask_id,
            gene_token_ids=genes,
            special_ids=np.array(special, dtype=np.int64),
            **options,
        )

    def apply(self, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, labels)`` of one cell: labels hold the original token at chosen
        positions and :data:`IGNORE` elsewhere."""
        ids = np.asarray(ids, dtype=np.int64)
        is_gene = ~np.isin(ids, self.special_ids)
        chosen = (rng.random(ids.size) < self.probability) & is_gene
        if not chosen.any() and is_gene.any():
            chosen[rng.choice(np.flatnonzero(is_gene))] = True
        labels = np.where(chosen, ids, IGNORE)
        draw = rng.random(ids.size)
        masked = chosen & (draw < self.mask_share)
        replaced = chosen & (draw >= self.mask_share) & (draw < self.mask_share + self.random_share)
        inputs = ids.copy()
        inputs[masked] = self.mask_id
        n_replaced = int(replaced.sum())
        if n_replaced:
            inputs[replaced] = self.gene_token_ids[
                rng.integers(self.gene_token_ids.size, size=n_replaced)
            ]
        return inputs, labels


def truncate(ids: np.ndarray, max_length: int | None, eos_id: int | None) -> np.ndarray:
    """The first ``max_length`` tokens of a cell (its highest-ranked genes); a cell that
    ends with ``<eos>`` keeps it as its last token, as Geneformer's V2 tokenizer truncates."""
    if max_length is None or len(ids) <= max_length:
        return ids
    if eos_id is not None and ids[-1] == eos_id:
        return np.concatenate([ids[: max_length - 1], ids[-1:]])
    return ids[:max_length]


@dataclass
class MaskedCells:
    """Cells of a tokenized corpus as masked-language-model items (a torch map dataset).

    Parameters
    ----------
    corpus
        The corpus (``datasets.Dataset`` with ``input_ids``).
    rows
        The corpus rows this dataset holds, in order.
    lengths
        Token count of each of those rows after truncation (for length-grouped batches).
    rule
        The masking rule.
    seed, stream
        Key of the masking generator (with the epoch and the row).
    max_length
        Truncate cells to this many tokens (None: never).
    eos_id
        ``<eos>``, kept last when a cell is truncated (None for V1 corpora).
    vocab_size
        Token ids must be below it (the model's embedding size).
    locate
        Maps a corpus row to the file and the row in it, for error messages.
    """

    corpus: Any
    rows: np.ndarray
    lengths: np.ndarray
    rule: MaskingRule
    seed: int
    stream: int = TRAIN_STREAM
    max_length: int | None = None
    eos_id: int | None = None
    vocab_size: int | None = None
    locate: Callable[[int], tuple[Any, int]] | None = None
    epoch: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._ids = self.corpus.select_columns(["input_ids"]).with_format("numpy")

    def set_epoch(self, epoch: int) -> None:
        """Training masks change by epoch; held-out masks stay those of epoch 0."""
        if self.stream == TRAIN_STREAM:
            self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def tokens(self, index: int) -> np.ndarray:
        """The (truncated) token ids of item ``index``, checked against the vocabulary size."""
        row = int(self.rows[index])
        ids = truncate(np.asarray(self._ids[row]["input_ids"]), self.max_length, self.eos_id)
        if ids.size and (ids.min() < 0 or (self.vocab_size and ids.max() >= self.vocab_size)):
            bad = ids[(ids < 0) | (ids >= (self.vocab_size or np.iinfo(np.int64).max))][0]
            source, local = self.locate(row) if self.locate is not None else (None, row)
            raise InputError(
                f"token id {int(bad)} is outside the model's vocabulary of "
                f"{self.vocab_size:,} tokens",
                file=source,
                where=f"cell {local}",
                fix="pretrain with the vocabulary the corpus was tokenized with",
            )
        return ids

    def masked(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, labels)`` of item ``index`` under this dataset's masking key."""
        row = int(self.rows[index])
        rng = np.random.default_rng([self.seed, self.stream, self.epoch, row])
        return self.rule.apply(self.tokens(index), rng)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        inputs, labels = self.masked(index)
        return {"input_ids": inputs, "labels": labels}


@dataclass(frozen=True)
class PadCollator:
    """Pads a batch to its longest cell: ``<pad>`` in the inputs, :data:`IGNORE` in the
    labels, and an attention mask of the real tokens."""

    pad_id: int

    def __call__(self, items: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
        import torch

        width = max(len(item["input_ids"]) for item in items)
        inputs = np.full((len(items), width), self.pad_id, dtype=np.int64)
        labels = np.full((len(items), width), IGNORE, dtype=np.int64)
        attention = np.zeros((len(items), width), dtype=np.int64)
        for i, item in enumerate(items):
            n = len(item["input_ids"])
            inputs[i, :n] = item["input_ids"]
            labels[i, :n] = item["labels"]
            attention[i, :n] = 1
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.from_numpy(attention),
            "labels": torch.from_numpy(labels),
        }
