"""One-hot encoding, reverse complements and k-mer tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genoformer.engine.errors import InputError
from genoformer.seq.encoding import (
    ALPHABET,
    check_characters,
    decode_one_hot,
    kmer_tokens,
    kmer_tokens_from_one_hot,
    one_hot,
    reverse_complement,
    reverse_complement_one_hot,
)

IUPAC = "ACGTNRYSWKMBDHV-"
IUPAC_BOTH_CASES = IUPAC + IUPAC.lower()
FAST = settings(max_examples=60, deadline=None)


def equal_length_batches(alphabet: str, max_n: int = 6, max_length: int = 40):
    """Lists of 1..max_n sequences sharing one length (0..max_length) over ``alphabet``."""
    return st.integers(0, max_length).flatmap(
        lambda length: st.lists(
            st.text(alphabet, min_size=length, max_size=length), min_size=1, max_size=max_n
        )
    )


def reference_one_hot(sequences: list[str]) -> np.ndarray:
    """A slow, obviously right encoder: one column per character."""
    out = np.zeros((len(sequences), 4, len(sequences[0]) if sequences else 0), np.float32)
    for i, seq in enumerate(sequences):
        for j, char in enumerate(seq.upper()):
            if char in ALPHABET:
                out[i, ALPHABET.index(char), j] = 1
    return out


def reference_kmer_ids(seq: str, k: int, stride: int) -> list[int]:
    ids = []
    for start in range(0, len(seq) - k + 1, stride):
        kmer = seq[start : start + k].upper()
        if any(c not in ALPHABET for c in kmer):
            ids.append(4**k)
        else:
            ids.append(sum(ALPHABET.index(c) * 4 ** (k - 1 - j) for j, c in enumerate(kmer)))
    return ids


def test_one_hot_layout_is_channel_first_acgt():
    x = one_hot(["ACGTN"])
    assert x.shape == (1, 4, 5) and x.dtype == np.float32
    expected = np.concatenate([np.eye(4), np.zeros((4, 1))], axis=1)
    np.testing.assert_array_equal(x[0], expected)
    # A single str is a batch of one; lower case is the same base.
    np.testing.assert_array_equal(one_hot("acgtn"), x)


@FAST
@given(equal_length_batches(IUPAC_BOTH_CASES))
def test_one_hot_matches_reference_and_decodes_back(sequences):
    x = one_hot(sequences)
    np.testing.assert_array_equal(x, reference_one_hot(sequences))
    expected = ["".join(c if c in ALPHABET else "N" for c in s.upper()) for s in sequences]
    assert decode_one_hot(x) == expected
    assert decode_one_hot(torch.from_numpy(x)) == expected


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.bool_, np.float16, np.float64])
def test_one_hot_dtypes_agree(dtype):
    seqs = ["ACGTNacgtnRYK-", "TTTTGGGGCCCCAA"]
    x = one_hot(seqs, dtype=dtype)
    assert x.dtype == dtype
    np.testing.assert_array_equal(x.astype(np.float32), one_hot(seqs))
    buffer = np.full((2, 4, 14), 7, dtype=dtype)
    assert one_hot(seqs, out=buffer) is buffer
    np.testing.assert_array_equal(buffer, x)


def test_one_hot_tiles_with_mixed_content_match_reference():
    # Several tiles of the encoder; some hold only upper-case ACGT (fast path), some lower
    # case or N (slow path), and one sequence is longer than a tile.
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), 700)) for _ in range(400)]
    seqs[10] = seqs[10][:5] + "NRY-" + seqs[10][9:]
    seqs[150] = seqs[150][:100] + "n" + seqs[150][101:]
    seqs[390] = seqs[390].lower()
    np.testing.assert_array_equal(one_hot(seqs, dtype=np.int8), reference_one_hot(seqs))
    seqs[333] = seqs[333][:99] + "*" + seqs[333][100:]
    with pytest.raises(InputError, match=r"sequence index 333, position 100: character '\*'"):
        one_hot(seqs)
    with pytest.raises(InputError, match=r"sequence index 10, position 6: ambiguous base 'N'"):
        one_hot(seqs, unknown="error")
    long = "".join(rng.choice(list("ACGTN"), 70_001))
    np.testing.assert_array_equal(one_hot(long), reference_one_hot([long]))


@FAST
@given(equal_length_batches("ACGTN", max_n=4, max_length=60))
def test_one_hot_agrees_with_tangermeme(sequences):
    from tangermeme.utils import one_hot_encode

    theirs = np.stack([one_hot_encode(s).numpy() for s in sequences])
    np.testing.assert_array_equal(one_hot(sequences, dtype=np.int8), theirs)


def test_one_hot_of_nothing_is_empty():
    assert one_hot([]).shape == (0, 4, 0)
    assert one_hot(["", ""]).shape == (2, 4, 0)


def test_one_hot_bad_character_names_file_record_position_and_fix():
    with pytest.raises(InputError) as error:
        one_hot(["ACGT", "ACXT"], names=["a", "b"], file="in.fa")
    message = str(error.value)
    assert message.startswith("in.fa record 'b', position 3:")
    assert "'X' is not a DNA base" in message and "fix:" in message


def test_one_hot_bad_character_without_names_gives_index():
    with pytest.raises(InputError, match=r"sequence index 1, position 2: .*'\\t'"):
        one_hot(["AC", "A\t"])
    with pytest.raises(InputError, match=r"sequence index 0, position 3: .*'é'"):
        one_hot(["ACé"])


def test_one_hot_unknown_error_rejects_ambiguous_bases():
    with pytest.raises(InputError) as error:
        one_hot(["ACGT", "ACGr"], unknown="error", names=["a", "b"], file="in.fa")
    assert "in.fa record 'b', position 4: ambiguous base 'r'" in str(error.value)
    assert "unknown='zero'" in error.value.fix
    np.testing.assert_array_equal(one_hot(["ACGT"], unknown="error"), one_hot(["ACGT"]))


def test_one_hot_unequal_lengths_say_to_pad_or_crop():
    with pytest.raises(InputError) as error:
        one_hot(["ACGT", "ACGT", "ACG"], names=["a", "b", "c"], file="in.fa")
    message = str(error.value)
    assert message.startswith("in.fa record 'c': length 3, but record 'a' has length 4")
    assert "pad" in error.value.fix and "crop" in error.value.fix


def test_check_characters_places_the_error():
    check_characters(["ACGTNRYSWKMBDHV-", "acgtnryswkmbdhv-"])
    with pytest.raises(InputError, match=r"f.fa line 7, position 2: character 'U'"):
        check_characters(["AA", "AU"], file="f.fa", place=lambda i: f"line {i + 6}")


def test_reverse_complement_examples():
    assert reverse_complement("AACGTn") == "nACGTT"
    assert reverse_complement("RYSWKMBDHV-") == "-BDHVKMWSRY"
    with pytest.raises(InputError, match="'Z'"):
        reverse_complement("ACZ")


@FAST
@given(st.text(IUPAC_BOTH_CASES, max_size=50))
def test_reverse_complement_is_an_involution(seq):
    assert reverse_complement(reverse_complement(seq)) == seq
    assert len(reverse_complement(seq)) == len(seq)


@FAST
@given(equal_length_batches(IUPAC_BOTH_CASES))
def test_reverse_complement_matches_one_hot_flip(sequences):
    x = one_hot(sequences)
    flipped = reverse_complement_one_hot(x)
    np.testing.assert_array_equal(flipped, one_hot([reverse_complement(s) for s in sequences]))
    assert flipped.flags.c_contiguous
    np.testing.assert_array_equal(reverse_complement_one_hot(torch.from_numpy(x)).numpy(), flipped)


@FAST
@given(
    equal_length_batches("ACGTNacgt", max_n=4, max_length=30),
    st.integers(1, 6),
    st.integers(1, 3),
)
def test_kmer_ids_agree_with_reference_and_one_hot_version(sequences, k, stride):
    ids = kmer_tokens(sequences, k, stride)
    assert ids.dtype == np.int64
    expected = [reference_kmer_ids(s, k, stride) for s in sequences]
    assert ids.shape == (len(sequences), len(expected[0]))
    assert ids.tolist() == expected
    from_tensor = kmer_tokens_from_one_hot(torch.from_numpy(one_hot(sequences)), k, stride)
    assert from_tensor.dtype == torch.int64
    np.testing.assert_array_equal(from_tensor.numpy(), ids)


def test_kmer_ids_examples():
    assert kmer_tokens("ACGT", 2).tolist() == [[1, 6, 11]]  # AC, CG, GT
    assert kmer_tokens(["AANT"], 2).tolist() == [[0, 16, 16]]
    assert kmer_tokens(["ACGTAC"], 3, stride=2).tolist() == [[6, 44]]  # ACG, GTA
    with pytest.raises(InputError, match="k=32"):
        kmer_tokens("ACGT", 32)
    with pytest.raises(InputError, match="stride=0"):
        kmer_tokens("ACGT", 2, stride=0)
