"""Transcription-factor motifs: JASPAR (offline), filters as motifs, Tomtom matches, logos.

Matrices are ``(4, W)`` with rows A, C, G, T, the layout of one-hot sequences and of
memelite. A PPM (position probability matrix) holds probabilities, each column sums to 1.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sqlite3
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import pandas as pd
import pyjaspar
from pyjaspar.utils import get_jaspardb_path

from genoformer.engine.errors import InputError
from genoformer.engine.stats import benjamini_hochberg

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "DEFAULT_RELEASE",
    "FilterPPMs",
    "Motif",
    "activation_ppms",
    "information_content",
    "jaspar_motif",
    "load_jaspar",
    "logo",
    "logo_grid",
    "tomtom_matches",
    "trim_ppm",
]

BASES = ("A", "C", "G", "T")
#: The newest JASPAR release that the installed pyjaspar ships (JASPAR2026 in pyjaspar 4).
DEFAULT_RELEASE: str = pyjaspar.JASPAR_LATEST_RELEASE
#: Columns with less information than this (bits) are trimmed from a query's edges.
TRIM_BITS = 0.5
_MATRIX_ID = re.compile(r"^[A-Z]{2}\d{4}(\.\d+)?$", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class Motif:
    """One position probability matrix with its JASPAR annotation.

    Attributes
    ----------
    matrix_id
        JASPAR matrix id with version, e.g. ``"MA0139.2"``.
    name
        Transcription factor name, e.g. ``"CTCF"``; dimers read ``"Pou5f1::Sox2"``.
    ppm
        ``(4, W)`` probabilities, rows A, C, G, T; read-only.
    family, tf_class
        JASPAR's structural family and class of the factor (e.g. ``("Maf-related",)``,
        ``("Basic leucine zipper factors (bZIP)",)``); one entry per partner of a dimer.
    collection, tax_group
        JASPAR collection (``"CORE"``) and taxonomic group (``"vertebrates"``).
    """

    matrix_id: str
    name: str
    ppm: np.ndarray
    family: tuple[str, ...] = ()
    tf_class: tuple[str, ...] = ()
    collection: str | None = None
    tax_group: str | None = None

    @property
    def width(self) -> int:
        """Number of positions."""
        return int(self.ppm.shape[1])

    @property
    def consensus(self) -> str:
        """The most probable base at each position."""
        return "".join(BASES[i] for i in self.ppm.argmax(axis=0))

    def log_odds(
        self, *, pseudocount: float = 0.01, background: Sequence[float] = (0.25,) * 4
    ) -> np.ndarray:
        """Log2-odds scores ``(4, W)`` against ``background``, for scanning sequences.

        ``pseudocount`` is a probability added to every base before renormalising, so that a
        base never seen at a position scores finite.
        """
        p = (self.ppm + pseudocount) / (1.0 + 4 * pseudocount)
        return np.log2(p / np.asarray(background, dtype=np.float64)[:, None])

    def reverse_complement(self) -> Motif:
        """The motif read on the other strand."""
        return replace(self, ppm=_read_only(self.ppm[::-1, ::-1]))


def _read_only(a: np.ndarray) -> np.ndarray:
    # Motifs are cached and shared between callers; a stray in-place edit must not leak.
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def _normalise(m: np.ndarray) -> np.ndarray:
    """Columns scaled to sum to 1; an all-zero column becomes uniform."""
    m = np.asarray(m, dtype=np.float64)
    total = m.sum(axis=0, keepdims=True)
    return np.where(total > 0, m / np.where(total > 0, total, 1.0), 0.25)


def information_content(ppm: np.ndarray) -> np.ndarray:
    """Information per position in bits, ``2 - entropy``, against a uniform background."""
    p = _normalise(ppm)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log2(p), 0.0)
    return 2.0 + plogp.sum(axis=0)


def trim_ppm(ppm: np.ndarray, min_bits: float = TRIM_BITS) -> tuple[int, int]:
    """``(start, end)`` of the span from the first to the last column with ``min_bits``.

    Returns the whole matrix when no column reaches ``min_bits``.
    """
    keep = np.flatnonzero(information_content(ppm) >= min_bits)
    if keep.size == 0:
        return 0, int(np.shape(ppm)[1])
    return int(keep[0]), int(keep[-1]) + 1


# ---------------------------------------------------------------------------------------
# JASPAR
# ---------------------------------------------------------------------------------------


def _check_release(release: str) -> None:
    if release not in pyjaspar.jaspar_releases:
        raise InputError(
            f"JASPAR release {release!r} is not shipped with pyjaspar {pyjaspar.__version__}",
            fix=f"use one of {', '.join(sorted(pyjaspar.jaspar_releases))}",
        )


@functools.lru_cache(maxsize=4)
def _release_motifs(release: str) -> tuple[tuple[Motif, ...], frozenset[str]]:
    """Every matrix of a release and the ids of the latest version of each base id.

    Reads pyjaspar's offline SQLite file in three queries: pyjaspar's own ``fetch_motifs``
    issues several queries per matrix and takes seconds for the vertebrate collection.
    Selection follows pyjaspar: the latest version per base id.
    """
    _check_release(release)
    path = get_jaspardb_path(pyjaspar.jaspar_releases[release])
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        matrices = conn.execute(
            "SELECT ID, COLLECTION, BASE_ID, VERSION, NAME FROM MATRIX ORDER BY ID"
        ).fetchall()
        data = conn.execute("SELECT ID, row, col, val FROM MATRIX_DATA").fetchall()
        notes = conn.execute(
            "SELECT ID, TAG, VAL FROM MATRIX_ANNOTATION "
            "WHERE TAG IN ('family', 'class', 'tax_group') ORDER BY rowid"
        ).fetchall()
    conn.close()

    ids, rows, cols, vals = (np.asarray(v) for v in zip(*data, strict=True))
    ids, cols = ids.astype(np.int64), cols.astype(np.int64)
    rows = np.searchsorted(np.array(BASES), np.char.upper(rows.astype("U1")))
    vals = vals.astype(np.float64)
    order = np.lexsort((cols, rows, ids))
    ids, rows, cols, vals = ids[order], rows[order], cols[order], vals[order]
    bounds = np.flatnonzero(np.diff(ids)) + 1
    counts: dict[int, np.ndarray] = {}
    for s, e in zip(np.append(0, bounds), np.append(bounds, ids.size), strict=True):
        first = cols[s:e].min()
        c = np.zeros((4, int(cols[s:e].max() - first + 1)))
        c[rows[s:e], cols[s:e] - first] = vals[s:e]
        counts[int(ids[s])] = c

    family: dict[int, list[str]] = {}
    tf_class: dict[int, list[str]] = {}
    tax: dict[int, str] = {}
    for int_id, tag, val in notes:
        if tag == "family":
            family.setdefault(int_id, []).append(val)
        elif tag == "class":
            tf_class.setdefault(int_id, []).append(val)
        else:
            tax[int_id] = val

    latest: dict[str, int] = {}
    for _, _, base_id, version, _ in matrices:
        latest[base_id] = max(latest.get(base_id, 0), int(version))
    motifs = []
    newest = set()
    for int_id, collection, base_id, version, name in matrices:
        if int_id not in counts:
            continue
        matrix_id = f"{base_id}.{version}"
        if int(version) == latest[base_id]:
            newest.add(matrix_id)
        motifs.append(
            Motif(
                matrix_id=matrix_id,
                name=name,
                ppm=_read_only(_normalise(counts[int_id])),
                family=tuple(family.get(int_id, ())),
                tf_class=tuple(tf_class.get(int_id, ())),
                collection=collection,
                tax_group=tax.get(int_id),
            )
        )
    return tuple(motifs), frozenset(newest)


def load_jaspar(
    *,
    release: str = DEFAULT_RELEASE,
    collection: str | None = "CORE",
    tax_group: str | None = "vertebrates",
) -> list[Motif]:
    """JASPAR motifs from the databases shipped offline with pyjaspar.

    Parameters
    ----------
    release
        JASPAR release, e.g. ``"JASPAR2024"``; default the newest pyjaspar ships.
    collection
        ``"CORE"`` (curated) or ``"UNVALIDATED"``; ``None`` for all.
    tax_group
        ``"vertebrates"``, ``"plants"``, ``"insects"``, ...; ``None`` for all.

    Returns
    -------
    list of Motif
        The latest version of each matrix, in database order (what pyjaspar's
        ``fetch_motifs`` returns). The load is cached per release.
    """
    motifs, newest = _release_motifs(release)
    coll = None if collection is None else collection.upper()
    group = None if tax_group is None else tax_group.lower()
    selected = [
        m
        for m in motifs
        if m.matrix_id in newest
        and (coll is None or (m.collection or "").upper() == coll)
        and (group is None or (m.tax_group or "").lower() == group)
    ]
    if not selected:
        raise InputError(
            f"no JASPAR motifs in {release} for collection={collection!r}, tax_group={tax_group!r}",
            fix="check the spelling, e.g. collection='CORE', tax_group='vertebrates'",
        )
    return selected


def jaspar_motif(matrix_id_or_name: str, *, release: str = DEFAULT_RELEASE) -> Motif:
    """One JASPAR motif by matrix id (``"MA0139"``, ``"MA0139.1"``) or factor name.

    A base id without version gives the latest version. A name is matched exactly, then
    ignoring case; among several matrices with that name the latest version is preferred,
    then the CORE collection, then vertebrates, then the lowest matrix id.
    """
    motifs, newest = _release_motifs(release)
    key = matrix_id_or_name.strip()
    if _MATRIX_ID.match(key):
        wanted = key.upper()
        hits = [
            m
            for m in motifs
            if m.matrix_id.upper() == wanted
            or ("." not in wanted and m.matrix_id in newest and m.matrix_id.split(".")[0] == wanted)
        ]
    else:
        hits = [m for m in motifs if m.name == key] or [
            m for m in motifs if m.name.casefold() == key.casefold()
        ]
    if not hits:
        close = difflib.get_close_matches(key, sorted({m.name for m in motifs}), n=3)
        raise InputError(
            f"no JASPAR motif {matrix_id_or_name!r} in {release}",
            fix=f"did you mean {', '.join(close)}?" if close else "use a JASPAR matrix id",
        )
    return min(
        hits,
        key=lambda m: (
            m.matrix_id not in newest,
            m.collection != "CORE",
            m.tax_group != "vertebrates",
            m.matrix_id,
        ),
    )


# ---------------------------------------------------------------------------------------
# First-layer filters as motifs
# ---------------------------------------------------------------------------------------


class FilterPPMs(NamedTuple):
    """Motifs read off convolution filters.

    Attributes
    ----------
    ppms
        ``(F, 4, width)`` position probability matrices.
    n_sites
        ``(F,)`` number of windows averaged per filter; 0 flags a filter that never
        activated above zero, whose PPM is uniform.
    """

    ppms: np.ndarray
    n_sites: np.ndarray


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor; torch itself is not imported here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def activation_ppms(
    activations,
    one_hot,
    width: int,
    *,
    threshold: float = 0.5,
    top: int | None = None,
    padding: Literal["same", "valid"] = "same",
    pseudocount: float = 0.1,
) -> FilterPPMs:
    """Turn first-layer convolution filters into PPMs from the windows that activate them.

    For each filter, the sequence windows whose activation exceeds ``threshold`` times the
    filter's largest activation over the data set (and is above zero) are stacked and
    their one-hot bases counted per position (Alipanahi et al. 2015; Kelley et al. 2016).

    Parameters
    ----------
    activations
        ``(N, F, L_out)`` filter outputs (numpy or torch), best taken before pooling.
    one_hot
        ``(N, 4, L)`` the one-hot sequences they were computed on (N is all zero).
    width
        The convolution's kernel width.
    threshold
        Fraction of each filter's maximum activation that a window must exceed.
    top
        If given, keep at most the ``top`` highest windows per filter (ties at the cut are
        all kept).
    padding
        ``"same"``: ``L_out == L`` and output position ``p`` reads the window starting at
        ``p - (width - 1) // 2`` (PyTorch's ``padding="same"``); ``"valid"``:
        ``L_out == L - width + 1`` and the window starts at ``p``. Windows that run off
        either end of the sequence are skipped.
    pseudocount
        Count added to every base at every position before normalising.

    Returns
    -------
    FilterPPMs
        ``ppms`` ``(F, 4, width)`` and ``n_sites`` ``(F,)`` (0 marks a filter with no
        positive activation; its PPM is uniform).
    """
    act = _to_numpy(activations).astype(np.float32, copy=False)
    x = _to_numpy(one_hot).astype(np.float32, copy=False)
    if act.ndim != 3 or x.ndim != 3 or x.shape[1] != 4 or act.shape[0] != x.shape[0]:
        raise InputError(
            f"activations {act.shape} and one_hot {x.shape} must be (N, F, L_out) and "
            "(N, 4, L) with the same N"
        )
    n, n_filters, l_out = act.shape
    length = x.shape[2]
    if width < 1 or width > length:
        raise InputError(f"filter width {width} must be between 1 and the length {length}")
    if padding == "same":
        left, expected = (width - 1) // 2, length
    elif padding == "valid":
        left, expected = 0, length - width + 1
    else:
        raise InputError(f"padding {padding!r} is not 'same' or 'valid'")
    if l_out != expected:
        raise InputError(
            f"activations have {l_out} positions; {padding!r} padding of length {length} "
            f"with width {width} gives {expected}",
            fix="pass the padding the convolution used and activations before pooling",
        )
    if not 0 <= threshold < 1:
        raise InputError(f"threshold {threshold} must be in [0, 1)")

    # Output positions whose window lies inside the sequence.
    lo, hi = left, length - width + left + 1
    inside = act[:, :, lo:hi]
    peak = inside.max(axis=(0, 2)) if inside.size else np.zeros(n_filters, np.float32)
    cut = np.where(peak > 0, threshold * peak, np.inf).astype(np.float32)
    if top is not None:
        if top < 1:
            raise InputError(f"top={top} must be at least 1")
        for f in np.flatnonzero(peak > 0):
            values = inside[:, f, :].ravel()
            if values.size > top:
                kth = np.partition(values, values.size - top)[values.size - top]
                # Strictly above the cut below, so step just under the k-th value.
                cut[f] = max(cut[f], np.nextafter(kth, np.float32(-np.inf)))

    counts = np.zeros((n_filters, 4, width), dtype=np.float64)
    n_sites = np.zeros(n_filters, dtype=np.int64)
    # Chunks over sequences bound the memory of the boolean mask and the shifted copies.
    chunk = max(1, int(2**24 // max(1, n_filters * inside.shape[2])))
    for s in range(0, n, chunk):
        mask = (inside[s : s + chunk] > cut[None, :, None]).astype(np.float32)
        n_sites += mask.sum(axis=(0, 2)).astype(np.int64)
        m2 = mask.transpose(1, 0, 2).reshape(n_filters, -1)
        for k in range(width):
            # Window start for output position lo + j is j, so base k sits at j + k.
            bases = x[s : s + chunk, :, k : k + inside.shape[2]]
            counts[:, :, k] += m2 @ bases.transpose(0, 2, 1).reshape(-1, 4)
    counts += pseudocount
    ppms = counts / counts.sum(axis=1, keepdims=True)
    ppms[n_sites == 0] = 0.25
    return FilterPPMs(ppms=ppms, n_sites=n_sites)


# ---------------------------------------------------------------------------------------
# Tomtom against JASPAR
# ---------------------------------------------------------------------------------------

_MATCH_COLUMNS = [
    "query",
    "rank",
    "target_id",
    "target_name",
    "target_family",
    "target_class",
    "p_value",
    "e_value",
    "q_value",
    "offset",
    "overlap",
    "strand",
    "query_start",
    "query_width",
    "query_bits",
]


def tomtom_matches(
    query_ppms,
    *,
    names: Sequence[str] | None = None,
    motifs: Sequence[Motif] | None = None,
    top: int | None = 1,
    trim_bits: float | None = TRIM_BITS,
) -> pd.DataFrame:
    """The JASPAR motifs most similar to each query PPM, with Tomtom's statistics.

    Uses memelite's Tomtom (complete scores, Euclidean column distance, both strands of
    each target). A query's flat edges are trimmed first: learned filters are often wider
    than their motif, and flat columns only add noise to the alignment.

    Parameters
    ----------
    query_ppms
        ``(F, 4, W)`` array or a list of ``(4, W_i)`` matrices, rows A, C, G, T; columns are
        normalised to probabilities.
    names
        One name per query; default ``"query<i>"``.
    motifs
        Targets; default :func:`load_jaspar` (CORE vertebrates of the default release).
        Tomtom's p-values use the target columns as the background, so give a whole
        database, not a handful of motifs.
    top
        Matches kept per query, best first; ``None`` keeps every target.
    trim_bits
        Leading and trailing columns with less information than this (bits, out of 2) are
        dropped before matching; ``None`` or 0 keeps the whole query. A query with no
        column that informative is matched whole; ``query_bits`` shows how flat it is.

    Returns
    -------
    pandas.DataFrame
        One row per query and match: ``query``, ``rank`` (1 = best), ``target_id``,
        ``target_name``, ``target_family`` and ``target_class`` (``"; "``-joined for
        dimers), ``p_value``, ``e_value`` (p times the number of targets), ``q_value``
        (Benjamini-Hochberg over all targets of that query), ``offset`` and ``overlap`` of
        the alignment as Tomtom reports them (offset: the column of the target, read on
        the matched strand, that the trimmed query's first column aligns with; negative
        when the query overhangs the target on the left), ``strand`` (``"-"``: the
        query matches the target's reverse complement), ``query_start`` and
        ``query_width`` (the trimmed span within the query) and ``query_bits`` (its
        total information in bits).
    """
    from memelite import tomtom

    queries = _as_ppm_list(query_ppms)
    names = [f"query{i}" for i in range(len(queries))] if names is None else list(names)
    if len(names) != len(queries):
        raise InputError(f"{len(names)} names for {len(queries)} query motifs")
    targets = load_jaspar() if motifs is None else list(motifs)
    if not targets:
        raise InputError("no target motifs to match against")
    if not queries:
        return pd.DataFrame(columns=_MATCH_COLUMNS)

    spans = [trim_ppm(q, trim_bits) if trim_bits else (0, q.shape[1]) for q in queries]
    # float64 and contiguous every time: numba compiles tomtom once per array layout.
    qs = [
        np.ascontiguousarray(q[:, s:e], dtype=np.float64)
        for q, (s, e) in zip(queries, spans, strict=True)
    ]
    ts = [np.ascontiguousarray(m.ppm, dtype=np.float64) for m in targets]
    p, _scores, offsets, overlaps, strands = tomtom(qs, ts)
    p = np.clip(p, 0.0, 1.0)
    q_values = benjamini_hochberg(p)
    n_targets = len(ts)
    keep = n_targets if top is None else max(0, min(int(top), n_targets))
    best = np.argsort(p, axis=1, kind="stable")[:, :keep]

    records = []
    for i, name in enumerate(names):
        start, end = spans[i]
        bits = float(information_content(qs[i]).sum())
        for rank, j in enumerate(best[i], start=1):
            t = targets[j]
            records.append(
                {
                    "query": name,
                    "rank": rank,
                    "target_id": t.matrix_id,
                    "target_name": t.name,
                    "target_family": "; ".join(t.family),
                    "target_class": "; ".join(t.tf_class),
                    "p_value": float(p[i, j]),
                    "e_value": float(p[i, j] * n_targets),
                    "q_value": float(q_values[i, j]),
                    "offset": int(offsets[i, j]),
                    "overlap": int(overlaps[i, j]),
                    "strand": "-" if strands[i, j] else "+",
                    "query_start": start,
                    "query_width": end - start,
                    "query_bits": bits,
                }
            )
    return pd.DataFrame.from_records(records, columns=_MATCH_COLUMNS)


def _as_ppm_list(query_ppms) -> list[np.ndarray]:
    if isinstance(query_ppms, Motif):
        query_ppms = [query_ppms.ppm]
    elif hasattr(query_ppms, "ndim") or hasattr(query_ppms, "detach"):
        arr = _to_numpy(query_ppms)
        query_ppms = [arr] if arr.ndim == 2 else list(arr)
    out = []
    for i, q in enumerate(query_ppms):
        q = _to_numpy(q.ppm if isinstance(q, Motif) else q).astype(np.float64)
        if q.ndim != 2 or q.shape[0] != 4 or q.shape[1] == 0:
            raise InputError(f"query motif {i} has shape {q.shape}, expected (4, width)")
        if not np.isfinite(q).all() or (q < 0).any():
            raise InputError(
                f"query motif {i} has negative or non-finite values",
                fix="pass probabilities (a PPM), not log-odds or filter weights",
            )
        out.append(_normalise(q))
    return out


# ---------------------------------------------------------------------------------------
# Logos
# ---------------------------------------------------------------------------------------


def _logo_heights(matrix, kind: str) -> np.ndarray:
    m = _to_numpy(matrix).astype(np.float64)
    if m.ndim != 2 or m.shape[0] != 4:
        raise InputError(f"logo matrix has shape {m.shape}, expected (4, width)")
    if kind == "weight":
        return m
    if kind not in ("information", "probability"):
        raise InputError(f"logo kind {kind!r} is not 'information', 'probability' or 'weight'")
    if (m < 0).any():
        raise InputError(
            f"a {kind} logo needs non-negative probabilities or counts",
            fix="draw attribution scores and filter weights with kind='weight'",
        )
    p = _normalise(m)
    return p * information_content(p) if kind == "information" else p


def draw_letters(heights: np.ndarray, ax: Axes, positions: np.ndarray | None = None) -> None:
    """Draw ``(4, W)`` letter heights (rows A, C, G, T) on ``ax``; the one logo drawing.

    ``positions`` labels the columns (default 0..W-1).
    """
    import logomaker  # imports pyplot; deferred so that importing this module stays light

    frame = pd.DataFrame(np.asarray(heights).T, index=positions, columns=list(BASES))
    with warnings.catch_warnings():
        # An all-zero matrix (a filter that never fires) has no height to scale to.
        warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)
        # flip_below=False keeps letters upright below zero so they stay readable.
        logomaker.Logo(frame, ax=ax, color_scheme="classic", flip_below=False)


def logo(
    ppm_or_matrix,
    ax: Axes | None = None,
    title: str | None = None,
    kind: Literal["information", "probability", "weight"] = "information",
) -> Axes:
    """Draw a ``(4, W)`` matrix as a sequence logo.

    ``"information"``: a PPM (or counts) as letters scaled by their share of each
    position's information, in bits (0 to 2); ``"probability"``: letter heights are the
    probabilities; ``"weight"``: raw values such as attributions or filter weights, negative
    ones drawn below zero. Returns the axes (new ones if ``ax`` is None).
    """
    heights = _logo_heights(ppm_or_matrix, kind)
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(max(2.0, 0.35 * heights.shape[1] + 0.8), 1.6))
    draw_letters(heights, ax)
    if kind == "information":
        ax.set_ylim(0, 2)
        ax.set_ylabel("bits", fontsize="small")
    elif kind == "probability":
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability", fontsize="small")
    else:
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel("weight", fontsize="small")
    ax.set_xticks([])
    if title:
        ax.set_title(title, fontsize="small")
    return ax


def logo_grid(
    ppms,
    titles: Sequence[str] | None,
    path: str | os.PathLike,
    *,
    kind: Literal["information", "probability", "weight"] = "information",
    columns: int = 4,
    formats: Sequence[str] = ("png",),
) -> list[Path]:
    """Save a grid of logos, one per matrix, atomically (PNG by default).

    Parameters
    ----------
    ppms
        ``(F, 4, W)`` array or list of ``(4, W_i)`` matrices.
    titles
        One title per matrix, or None.
    path
        Target path (see :func:`~genoformer.engine.plots.save_figure`).
    kind
        As in :func:`logo`.
    columns
        Logos per row.
    formats
        File formats to write.

    Returns
    -------
    list of Path
        The files written.
    """
    from matplotlib.figure import Figure

    from genoformer.engine.plots import save_figure

    mats = [_to_numpy(m) for m in (ppms if not hasattr(ppms, "ndim") else list(ppms))]
    if not mats:
        raise InputError("no matrices to draw")
    titles = [None] * len(mats) if titles is None else list(titles)
    if len(titles) != len(mats):
        raise InputError(f"{len(titles)} titles for {len(mats)} logos")
    ncols = max(1, min(columns, len(mats)))
    nrows = -(-len(mats) // ncols)
    panel_w = max(1.8, 0.3 * max(m.shape[-1] for m in mats) + 0.6)
    # Figure without pyplot: no global state, nothing left open in long runs.
    fig = Figure(figsize=(panel_w * ncols, 1.5 * nrows + 0.2), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, m, t in zip(axes, mats, titles, strict=False):
        logo(m, ax=ax, title=t, kind=kind)
    for ax in axes[len(mats) :]:
        ax.set_axis_off()
    return save_figure(fig, path, formats=formats)
