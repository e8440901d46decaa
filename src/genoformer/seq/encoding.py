"""DNA sequences as numbers: one-hot encoding, reverse complements and k-mer tokens.

The one layout every model reads is the one-hot encoding of shape ``(N, 4, L)``: channel
first, channels in the order of :data:`ALPHABET` (A, C, G, T), as tangermeme and
``torch.nn.Conv1d`` expect.

Characters: upper and lower case are the same base. ``N``, the other IUPAC ambiguity codes
(``RYSWKMBDHV``) and the alignment gap ``-`` are *unknown* bases: an all-zero column (or an
error with ``unknown="error"``). ``U`` is not accepted (convert RNA to DNA first), and
neither is any other character, whitespace included.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from os import PathLike
from typing import Literal, TypeVar

import numpy as np
import torch
from numpy.typing import DTypeLike

from genoformer.engine.errors import InputError, command_line, option

ALPHABET = "ACGT"
#: Characters that are valid but not one of ALPHABET: encoded as an all-zero column.
UNKNOWN_BASES = "NRYSWKMBDHV-"

UnknownMode = Literal["zero", "error"]
ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)

_UNKNOWN, _INVALID = 4, 5  # codes 0..3 are A, C, G, T
_CODES = bytearray([_INVALID] * 256)
for _i, _base in enumerate(ALPHABET):
    _CODES[ord(_base)] = _CODES[ord(_base.lower())] = _i
for _base in UNKNOWN_BASES:
    _CODES[ord(_base)] = _CODES[ord(_base.lower())] = _UNKNOWN
#: bytes.translate table: byte -> 0..3 (ACGT, any case), 4 (unknown base), 5 (invalid).
_CODE_TABLE = bytes(_CODES)
#: Per unknown mode: the upper-case and the lower-case bytes one_hot accepts.
_ALLOWED = {
    "zero": ((ALPHABET + UNKNOWN_BASES).encode(), (ALPHABET + UNKNOWN_BASES).lower().encode()),
    "error": (ALPHABET.encode(), ALPHABET.lower().encode()),
}
_BASE_BYTES = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)
_DECODE = np.frombuffer(b"ACGTN", dtype=np.uint8)
# Both cases spelled out: IGNORECASE would also accept non-ASCII look-alikes (the Kelvin
# sign for K, the long s for S).
_VALID = ALPHABET + UNKNOWN_BASES
_NOT_IUPAC = re.compile(f"[^{re.escape(_VALID + _VALID.lower())}]")
_NOT_ACGT = re.compile(f"[^{ALPHABET}{ALPHABET.lower()}]")
_COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVN-acgtryswkmbdhvn", "TGCAYRSWMKVHDBN-tgcayrswmkvhdbn")
#: Bases per tile of the one-hot encoder: small enough that a tile's bytes and its one-hot
#: stay in the L2 cache while the four channels are written.
_TILE = 1 << 16


def _as_list(sequences: str | Sequence[str]) -> list[str]:
    if isinstance(sequences, str):
        return [sequences]
    seqs = list(sequences)
    for i, s in enumerate(seqs):
        if not isinstance(s, str):
            raise TypeError(f"sequence {i} is {type(s).__name__}, expected str")
    return seqs


def _record(names: Sequence[str] | None, i: int) -> str:
    return f"record {names[i]!r}" if names is not None else f"sequence index {i}"


def bad_character_error(
    sequences: Sequence[str],
    *,
    unknown: UnknownMode = "zero",
    file: str | PathLike | None = None,
    place: Callable[[int], str] | None = None,
) -> InputError | None:
    """The error for the first character that may not be encoded, or None if all are fine.

    Parameters
    ----------
    sequences
        The sequences to check.
    unknown
        ``"zero"`` accepts N and the other IUPAC codes; ``"error"`` accepts only ACGT.
    file
        The file the sequences come from, for the message.
    place
        Describes sequence ``i`` in the message, e.g. ``"record 'chr1:5-9' (line 3)"``;
        default ``"sequence index i"``.
    """
    pattern = _NOT_ACGT if unknown == "error" else _NOT_IUPAC
    for i, seq in enumerate(sequences):
        found = pattern.search(seq)
        if found is None:
            continue
        char = found.group()
        where = f"{place(i) if place else _record(None, i)}, position {found.start() + 1}"
        if _NOT_IUPAC.match(char) is None:
            return InputError(
                f"ambiguous base {char!r} where unknown='error' asks for A, C, G, T only",
                file=file,
                where=where,
                fix="pass unknown='zero' to encode ambiguous bases as all-zero columns, "
                "or remove the record",
            )
        shown = repr(char) if char.isprintable() else f"{char!r} (U+{ord(char):04X})"
        return InputError(
            f"character {shown} is not a DNA base (allowed: A, C, G, T, the IUPAC codes "
            f"{UNKNOWN_BASES[:-1]} and '-', in either case)",
            file=file,
            where=where,
            fix="remove or replace the character (e.g. with N)",
        )
    return None


def check_characters(
    sequences: str | Sequence[str],
    *,
    unknown: UnknownMode = "zero",
    file: str | PathLike | None = None,
    place: Callable[[int], str] | None = None,
) -> None:
    """Raise :class:`InputError` at the first character that may not be encoded.

    Fast when every character is fine (one pass in C over all bases); the search for the
    place of a bad character runs only when there is one. Arguments as in
    :func:`bad_character_error`.
    """
    seqs = _as_list(sequences)
    joined = "".join(seqs)
    # Deleting every allowed character leaves nothing when all are fine.
    if joined.isascii() and not joined.encode("ascii").translate(None, b"".join(_ALLOWED[unknown])):
        return
    error = bad_character_error(seqs, unknown=unknown, file=file, place=place)
    if error is not None:
        raise error


def check_lengths(
    sequences: str | Sequence[str],
    *,
    length: int | None = None,
    names: Sequence[str] | None = None,
    file: str | PathLike | None = None,
) -> int | None:
    """The common length of the sequences; :class:`InputError` if they differ.

    With ``length`` every sequence must have that length. Returns None for no sequences
    (and no ``length``). The error names the first record whose length differs.
    """
    seqs = _as_list(sequences)
    if not seqs:
        return length
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    expected = int(lengths[0]) if length is None else int(length)
    bad = np.flatnonzero(lengths != expected)
    if bad.size == 0:
        return expected
    i = int(bad[0])
    if length is None:
        problem = f"length {lengths[i]}, but {_record(names, 0)} has length {expected}"
    else:
        problem = f"length {lengths[i]}, expected {expected}"
    raise InputError(
        problem + f" ({bad.size} of {len(seqs)} sequences differ in length)",
        file=file,
        where=_record(names, i),
        fix=length_fix(length),
    )


def length_fix(length: int | None = None) -> str:
    """How to bring sequences to one length (``length``, else any), in the caller's terms:
    the command's ``--length-mode``, the Python ``harmonize_lengths``, or by hand."""
    to = f" to {length} bp" if length else " to one length"
    if not command_line():
        mode = f"mode='fit', length={length}" if length else "mode='pad' or 'crop'"
        reading = f"lengths='fit', length={length}" if length else "lengths='pad' or 'crop'"
        return f"pad or crop the sequences{to}: harmonize_lengths(data, {mode}), or {reading} when reading them"
    if option("length_mode") is None:
        return f"pad (with N) or crop the sequences{to} first; `seq train --length-mode` does so for training"
    if length:
        return f"pad or crop the sequences{to} with --length-mode fit --length {length}"
    return "pad or crop the sequences to one length with --length-mode pad or crop (and --length)"


def one_hot(
    sequences: str | Sequence[str],
    *,
    unknown: UnknownMode = "zero",
    dtype: DTypeLike = np.float32,
    names: Sequence[str] | None = None,
    file: str | PathLike | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """One-hot encode DNA sequences of equal length.

    Parameters
    ----------
    sequences
        One sequence (a str, encoded as a batch of one) or equal-length sequences; any case.
    unknown
        ``"zero"``: N, the other IUPAC codes and ``-`` become all-zero columns.
        ``"error"``: they raise :class:`InputError`.
    dtype
        Output dtype. One-byte dtypes (``int8``, ``uint8``, ``bool``) are written directly
        and are several times faster than ``float32``, which writes four times the bytes.
    names
        Record names for error messages (default: the index of the sequence).
    file
        File name for error messages.
    out
        A C-contiguous ``(N, 4, L)`` array to write into (``dtype`` is then ignored), e.g.
        to reuse one buffer batch after batch.

    Returns
    -------
    numpy.ndarray
        Shape ``(N, 4, L)``, channels A, C, G, T (``out`` when given).

    Raises
    ------
    InputError
        On unequal lengths, a character outside IUPAC, or (``unknown="error"``) an
        ambiguous base; the message names the file, the record, the position and the fix.
    """
    if unknown not in ("zero", "error"):
        raise InputError(f"unknown={unknown!r}", fix="use unknown='zero' or unknown='error'")
    seqs = _as_list(sequences)
    n = len(seqs)
    length = check_lengths(seqs, names=names, file=file) or 0
    if out is None:
        out = np.empty((n, 4, length), dtype=dtype)
    elif out.shape != (n, 4, length) or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous of shape {(n, 4, length)}, got {out.shape}")
    if n == 0 or length == 0:
        return out
    place = (lambda i: _record(names, i)) if names is not None else None
    direct = out.itemsize == 1
    rows = max(1, _TILE // length)
    # One-byte outputs get their booleans written in place; wider ones go through a small
    # int8 tile that is then cast, because comparisons that write float32 are much slower.
    tile = None if direct else np.empty((min(rows, n), 4, length), dtype=np.int8)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = out[start:stop] if direct else tile[: stop - start]
        if not _one_hot_tile(seqs[start:stop], block.view(np.bool_), unknown):
            _raise_bad_character(seqs[start:stop], unknown, file, _shift(place, start))
        if not direct:
            np.copyto(out[start:stop], block, casting="unsafe")
    return out


def _one_hot_tile(seqs: list[str], flags: np.ndarray, unknown: UnknownMode) -> bool:
    """Write the one-hot of ``seqs`` into boolean ``flags`` (n, 4, L); False on a bad character.

    Three tiers, each paid only by the tiles that need it: upper-case ACGT (the common
    case); upper case with unknown bases; lower case.
    """
    try:
        raw = "".join(seqs).encode("ascii")
    except UnicodeEncodeError:
        return False
    x = np.frombuffer(raw, dtype=np.uint8).reshape(len(seqs), -1)
    for channel in range(4):
        np.equal(x, _BASE_BYTES[channel], out=flags[:, channel])
    # Each position matches at most one base, so the tile is all upper-case ACGT exactly
    # when the number of set flags is the number of bases.
    if np.count_nonzero(flags) == x.size:
        return True
    upper, lower = _ALLOWED[unknown]
    rest = raw.translate(None, upper)
    if not rest:  # upper-case unknown bases: their columns are already all zero
        return True
    if rest.translate(None, lower):
        return False
    # Lower-case bases: compare again with ASCII letters made upper case.
    folded = np.bitwise_and(x, np.uint8(0xDF))
    for channel in range(4):
        np.equal(folded, _BASE_BYTES[channel], out=flags[:, channel])
    return True


def _raise_bad_character(
    seqs: Sequence[str], unknown: UnknownMode, file: str | PathLike | None, place: Callable
) -> None:
    error = bad_character_error(seqs, unknown=unknown, file=file, place=place)
    # The fast check saw a bad byte, so the search finds it; the fallback is a guard only.
    raise error or RuntimeError("a bad character was seen but not located")


def _shift(place: Callable[[int], str] | None, offset: int) -> Callable[[int], str]:
    """``place`` for a slice of the sequences that starts at ``offset``."""
    if place is None:
        return lambda i: _record(None, i + offset)
    return lambda i: place(i + offset)


def reverse_complement(seq: str) -> str:
    """Reverse complement of a DNA sequence; IUPAC-aware, case preserved.

    Raises
    ------
    InputError
        When ``seq`` holds a character outside IUPAC.
    """
    check_characters(seq)
    return seq.translate(_COMPLEMENT)[::-1]


def reverse_complement_one_hot(x: ArrayOrTensor) -> ArrayOrTensor:
    """Reverse complement of one-hot sequences ``(..., 4, L)``, numpy or torch.

    With channels in the order A, C, G, T, reversing the channels complements each base;
    reversing the positions reverses the sequence. Returns a new contiguous array.
    """
    if x.ndim < 2 or x.shape[-2] != 4:
        raise ValueError(f"expected shape (..., 4, L), got {tuple(x.shape)}")
    if isinstance(x, torch.Tensor):
        return torch.flip(x, dims=(-2, -1))
    return np.ascontiguousarray(x[..., ::-1, ::-1])


def decode_one_hot(x: np.ndarray | torch.Tensor) -> list[str]:
    """Sequences back from one-hot ``(N, 4, L)`` or ``(4, L)``; an all-zero column is N.

    A column with more than one non-zero value decodes to its largest (the first on ties).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1] != 4:
        raise ValueError(f"expected shape (N, 4, L) or (4, L), got {x.shape}")
    n, _, length = x.shape
    codes = x.argmax(axis=1)
    codes[~(x != 0).any(axis=1)] = 4
    text = _DECODE[codes].tobytes().decode("ascii")
    return [text[i * length : (i + 1) * length] for i in range(n)]


def _check_k(k: int, stride: int) -> None:
    if not 1 <= k <= 31:
        raise InputError(f"k={k}", fix="use a k-mer size from 1 to 31 (ids must fit in int64)")
    if stride < 1:
        raise InputError(f"stride={stride}", fix="use a stride of 1 or more")


def _kmer_ids(codes: ArrayOrTensor, unknown: ArrayOrTensor, k: int, stride: int) -> ArrayOrTensor:
    """k-mer ids from int64 base codes 0..3 ``(N, L)`` and a mask of unknown bases.

    Works alike on numpy arrays and torch tensors.
    """
    n, length = codes.shape
    n_kmers = max(0, (length - k) // stride + 1)
    span = stride * (n_kmers - 1) + 1 if n_kmers else 0
    ids = codes[:, 0:span:stride] * 1
    bad = unknown[:, 0:span:stride] | False
    for j in range(1, k):
        ids = ids * 4 + codes[:, j : j + span : stride]
        bad = bad | unknown[:, j : j + span : stride]
    ids[bad] = 4**k
    return ids


def kmer_tokens(sequences: str | Sequence[str], k: int, stride: int = 1) -> np.ndarray:
    """k-mer token ids of equal-length sequences, int64 ``(N, n_kmers)``.

    The id of a k-mer is its base-4 number (A=0, C=1, G=2, T=3, first base most
    significant); a k-mer with any other base (N, IUPAC codes) gets ``4**k``, the unknown
    token. ``n_kmers = (L - k) // stride + 1`` (0 when ``L < k``).
    """
    _check_k(k, stride)
    seqs = _as_list(sequences)
    length = check_lengths(seqs) or 0
    check_characters(seqs)
    raw = "".join(seqs).encode("ascii").translate(_CODE_TABLE)
    codes = np.frombuffer(raw, dtype=np.uint8).reshape(len(seqs), length)
    unknown = codes == _UNKNOWN
    return _kmer_ids((codes & 3).astype(np.int64), unknown, k, stride)


def kmer_tokens_from_one_hot(x: torch.Tensor, k: int, stride: int = 1) -> torch.Tensor:
    """k-mer token ids, as :func:`kmer_tokens`, from one-hot ``(N, 4, L)``.

    An all-zero column is an unknown base. Returns a LongTensor on the device of ``x``.
    """
    _check_k(k, stride)
    x = torch.as_tensor(x)
    if x.ndim != 3 or x.shape[1] != 4:
        raise ValueError(f"expected shape (N, 4, L), got {tuple(x.shape)}")
    with torch.no_grad():
        codes = x.argmax(dim=1)
        unknown = ~(x != 0).any(dim=1)
        return _kmer_ids(codes, unknown, k, stride)
