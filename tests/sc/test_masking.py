"""Masked-language-model inputs: BERT's 15% and 80/10/10 on gene tokens only, reproducible."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genoformer.engine.errors import InputError
from genoformer.sc.masking import (
    HELD_OUT_STREAM,
    IGNORE,
    TRAIN_STREAM,
    MaskedCells,
    MaskingRule,
    PadCollator,
    truncate,
)
from genoformer.sc.vocabulary import GeneVocabulary

PAD, MASK, CLS, EOS = 0, 1, 2, 3
N_TOKENS = 504


def vocabulary() -> GeneVocabulary:
    medians = {f"ENSG{i:011d}": 1.0 + i for i in range(N_TOKENS - 4)}
    return GeneVocabulary.from_medians(medians, name="test", input_size=64)


RULE = MaskingRule.from_vocabulary(vocabulary())
GENES = np.arange(4, N_TOKENS)


def cell(n_genes: int, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([[CLS], rng.choice(GENES, size=n_genes, replace=False), [EOS]])


def test_rule_comes_from_the_vocabulary():
    assert RULE.mask_id == MASK
    assert RULE.special_ids.tolist() == [PAD, MASK, CLS, EOS]
    np.testing.assert_array_equal(RULE.gene_token_ids, GENES)


def test_shares_are_bert_s_and_special_tokens_are_never_chosen():
    rng = np.random.default_rng(0)
    chosen = masked = randomized = kept = genes = 0
    for _ in range(400):
        ids = cell(300, rng)
        inputs, labels = RULE.apply(ids, rng)
        assert labels[0] == IGNORE and labels[-1] == IGNORE  # <cls>, <eos>
        assert inputs[0] == CLS and inputs[-1] == EOS
        picked = labels != IGNORE
        np.testing.assert_array_equal(labels[picked], ids[picked])
        np.testing.assert_array_equal(inputs[~picked], ids[~picked])
        chosen += picked.sum()
        genes += ids.size - 2
        masked += (inputs[picked] == MASK).sum()
        kept += (inputs[picked] == ids[picked]).sum()
        others = inputs[picked & (inputs != MASK) & (inputs != ids)]
        assert np.isin(others, GENES).all()  # random replacements are genes
        randomized += others.size
    # 120,000 genes: the binomial standard error of each share is well below 0.5%.
    assert chosen / genes == pytest.approx(0.15, abs=0.005)
    assert masked / chosen == pytest.approx(0.8, abs=0.01)
    # A random replacement draws the original gene 1 time in 500: "kept" gains that much.
    assert randomized / chosen == pytest.approx(0.1 * (1 - 1 / 500), abs=0.01)
    assert kept / chosen == pytest.approx(0.1 + 0.1 / 500, abs=0.01)


def test_a_short_cell_always_has_one_gene_to_predict():
    rng = np.random.default_rng(1)
    for _ in range(200):
        ids = cell(1, rng)
        _, labels = RULE.apply(ids, rng)
        assert labels.tolist() == [IGNORE, ids[1], IGNORE]
    only_special = np.array([CLS, EOS])
    assert (RULE.apply(only_special, rng)[1] == IGNORE).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, N_TOKENS - 1), min_size=1, max_size=80),
    st.integers(0, 2**32 - 1),
)
def test_masking_invariants(tokens, seed):
    ids = np.array(tokens)
    inputs, labels = RULE.apply(ids, np.random.default_rng(seed))
    special = np.isin(ids, RULE.special_ids)
    picked = labels != IGNORE
    assert not (picked & special).any()
    assert picked.any() == (~special).any()
    np.testing.assert_array_equal(labels[picked], ids[picked])
    np.testing.assert_array_equal(inputs[~picked], ids[~picked])
    assert np.isin(inputs[picked], np.append(GENES, MASK)).all()


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"probability": 0.0}, "masking probability"),
        ({"probability": 1.5}, "masking probability"),
        ({"mask_share": 0.95, "random_share": 0.1}, "add up to at most 1"),
    ],
)
def test_bad_masking_options(options, problem):
    with pytest.raises(InputError, match=problem):
        MaskingRule.from_vocabulary(vocabulary(), **options)


def test_vocabulary_without_mask_token():
    bare = GeneVocabulary.from_medians({"ENSG00000000001": 1.0}, name="bare", special=("pad",))
    with pytest.raises(InputError, match="no <mask> token"):
        MaskingRule.from_vocabulary(bare)


def test_truncation_keeps_the_highest_ranked_genes_and_eos():
    ids = np.array([CLS, 10, 11, 12, 13, EOS])
    assert truncate(ids, 4, EOS).tolist() == [CLS, 10, 11, EOS]
    assert truncate(ids, 6, EOS).tolist() == ids.tolist()
    assert truncate(ids, None, EOS).tolist() == ids.tolist()
    v1 = np.array([10, 11, 12, 13])
    assert truncate(v1, 2, None).tolist() == [10, 11]


def corpus(n_cells: int, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    cells = [cell(int(rng.integers(5, 40)), rng).astype(np.int32) for _ in range(n_cells)]
    return datasets.Dataset.from_dict({"input_ids": cells})


def masked_cells(stream: int, seed: int = 7, **options) -> MaskedCells:
    data = corpus(30)
    rows = np.arange(5, 25)
    lengths = np.array([len(data[int(r)]["input_ids"]) for r in rows])
    return MaskedCells(
        corpus=data,
        rows=rows,
        lengths=lengths,
        rule=RULE,
        seed=seed,
        stream=stream,
        eos_id=EOS,
        vocab_size=N_TOKENS,
        **options,
    )


def test_masks_depend_on_seed_epoch_and_row_only():
    a, b = masked_cells(TRAIN_STREAM), masked_cells(TRAIN_STREAM)
    first = [a[i]["labels"] for i in range(len(a))]
    # Read in another order: the same masks.
    for i in reversed(range(len(b))):
        np.testing.assert_array_equal(b[i]["labels"], first[i])
    a.set_epoch(1)
    later = [a[i]["labels"] for i in range(len(a))]
    assert any(not np.array_equal(x, y) for x, y in zip(first, later, strict=True))
    a.set_epoch(0)
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i]["labels"], first[i])
    other_seed = masked_cells(TRAIN_STREAM, seed=8)
    assert any(
        not np.array_equal(other_seed[i]["labels"], first[i]) for i in range(len(other_seed))
    )


def test_held_out_masks_never_change():
    held = masked_cells(HELD_OUT_STREAM)
    before = [held[i]["input_ids"] for i in range(len(held))]
    held.set_epoch(3)
    for i in range(len(held)):
        np.testing.assert_array_equal(held[i]["input_ids"], before[i])
    train = masked_cells(TRAIN_STREAM)
    assert any(not np.array_equal(train[i]["input_ids"], before[i]) for i in range(len(train)))


def test_items_are_truncated_when_asked():
    cells = masked_cells(TRAIN_STREAM, max_length=6)
    for i in range(len(cells)):
        ids = cells.tokens(i)
        assert len(ids) <= 6 and ids[-1] == EOS


def test_a_token_outside_the_model_vocabulary_names_the_cell():
    cells = masked_cells(TRAIN_STREAM)
    cells.vocab_size = 20
    with pytest.raises(InputError, match=r"cell 5: token id \d+ is outside"):
        cells[0]


def test_collator_pads_to_the_longest_cell():
    items = [
        {
            "input_ids": np.array([CLS, 7, MASK, EOS]),
            "labels": np.array([IGNORE, IGNORE, 9, IGNORE]),
        },
        {"input_ids": np.array([CLS, 8, EOS]), "labels": np.array([IGNORE, 8, IGNORE])},
    ]
    batch = PadCollator(pad_id=PAD)(items)
    assert batch["input_ids"].tolist() == [[CLS, 7, MASK, EOS], [CLS, 8, EOS, PAD]]
    assert batch["labels"].tolist() == [[IGNORE, IGNORE, 9, IGNORE], [IGNORE, 8, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert all(t.dtype == torch.int64 for t in batch.values())
