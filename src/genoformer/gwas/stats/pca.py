"""Population structure: principal components of standardised genotypes, as plink2 --pca.

Every variant is standardised by its allele frequency among the selected samples,
``x = (g - 2p) / sqrt(2p(1-p))``, and the samples' relationship matrix (GRM) is
eigen-decomposed. Two methods, each matching one plink2 mode:

``"exact"`` (plink2 ``--pca``)
    The n x n GRM is accumulated over variant chunks; a pair of samples is divided by the
    number of variants called in both, ``K_ij = sum_m x_im x_jm / #{m: both called}``, so
    missing calls neither add to nor dilute the relationship. Memory: two n x n float64
    matrices, so meant for up to some tens of thousands of samples.
``"randomized"`` (plink2 ``--pca approx``)
    Missing calls are mean-imputed (x = 0) and ``K = X X^T / M``; its leading
    eigenvectors come from randomized subspace iteration that streams over variant chunks
    (one pass per iteration), so memory is n x (k + oversampling) whatever the number of
    variants.

Monomorphic variants contribute nothing to the numerator but count in the denominator,
as in plink2. Eigenvectors have unit norm (as plink2 writes them); their signs are fixed
so that each vector's largest-magnitude entry is positive.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from genoformer.engine.runs import write_table, write_text

__all__ = ["PCAResult", "pca", "read_pca", "write_pca"]

#: Above this many samples "auto" switches to the randomized method (plink2's own advice).
EXACT_MAX_SAMPLES = 5_000
DEFAULT_CHUNK = 4_096


@dataclass
class PCAResult:
    """Principal components of the selected samples.

    Attributes
    ----------
    eigenvalues
        Eigenvalues of the GRM, descending, shape ``(k,)``.
    eigenvectors
        One row per sample: ``FID``, ``IID``, ``PC1`` ... ``PCk`` (unit-norm columns).
    loadings
        One row per variant used (``CHROM``, ``ID``, ``A1``, ``A2``, ``PC1`` ...): the right
        singular vectors of ``X / sqrt(M)``, per standardised count of ``A1``; ``None``
        unless asked for.
    method
        ``"exact"`` or ``"randomized"``.
    n_variants
        Number of variants in the GRM (monomorphic ones included, as plink2 counts them).
    """

    eigenvalues: np.ndarray
    eigenvectors: pd.DataFrame
    loadings: pd.DataFrame | None = None
    method: str = "exact"
    n_variants: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def components(self) -> np.ndarray:
        """The eigenvectors as an array, shape ``(n_samples, k)``."""
        return self.eigenvectors.filter(regex=r"^PC\d+$").to_numpy(dtype=np.float64)


def _standardise(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardised genotypes (missing -> 0) and the called-mask, both float64."""
    G = np.asarray(G, dtype=np.float64)
    called = ~np.isnan(G)
    n_called = called.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.nansum(G, axis=0) / (2.0 * n_called)
        sd = np.sqrt(2.0 * p * (1.0 - p))
        # Monomorphic or uncalled variants: x = 0 everywhere (plink2 keeps them in M).
        inv_sd = np.where((sd > 0) & np.isfinite(sd), 1.0 / sd, 0.0)
    X = (G - 2.0 * np.nan_to_num(p)) * inv_sd
    X[~called] = 0.0
    return X, called.astype(np.float64)


def _open(source: Any) -> Any:
    if isinstance(source, (str, os.PathLike)):
        from genoformer.gwas.io.genotypes import open_genotypes

        return open_genotypes(source)
    return source


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    # Deterministic orientation: the largest-magnitude entry of each vector is positive.
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def _exact(chunks, n: int, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    num = np.zeros((n, n))
    both = np.zeros((n, n))
    m = complete = 0
    for _, G in chunks:
        X, called = _standardise(G)
        num += X @ X.T
        if called.all():
            # Fully called chunks add the same count to every pair: skip the n x n product.
            complete += X.shape[1]
        else:
            both += called @ called.T
        m += X.shape[1]
    if m == 0:
        raise ValueError("no variants selected for PCA")
    both += complete
    with np.errstate(invalid="ignore", divide="ignore"):
        K = np.where(both > 0, num / both, 0.0)
    values, vectors = np.linalg.eigh(K)
    order = np.argsort(values)[::-1][:k]
    return values[order], vectors[:, order], m


def _randomized(
    source, n: int, k: int, chunk_size: int, samples, variants, seed: int, n_iter: int, extra: int
) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    width = min(n, k + extra)
    Q = np.linalg.qr(rng.standard_normal((n, width)))[0]
    m = 0

    def apply_k(Q: np.ndarray) -> np.ndarray:
        # One streamed pass: K Q = sum over chunks of X_c (X_c^T Q) / M.
        nonlocal m
        Y = np.zeros_like(Q)
        m = 0
        for _, G in source.chunks(size=chunk_size, samples=samples, variants=variants):
            X, _ = _standardise(G)
            Y += X @ (X.T @ Q)
            m += X.shape[1]
        if m == 0:
            raise ValueError("no variants selected for PCA")
        return Y / m

    # Block Krylov: keep every iterate, not just the last (subspace iteration) - the bulk
    # eigenvalues of a GRM lie close together and plain power steps separate them slowly.
    blocks = [Q]
    for _ in range(n_iter):
        if sum(b.shape[1] for b in blocks) >= n:
            break
        blocks.append(np.linalg.qr(apply_k(blocks[-1]))[0])
    basis = np.linalg.qr(np.hstack(blocks))[0][:, :n]
    # Rayleigh-Ritz on the Krylov space gives eigenvalues, not singular-value estimates.
    B = basis.T @ apply_k(basis)
    values, small = np.linalg.eigh((B + B.T) / 2.0)
    order = np.argsort(values)[::-1][:k]
    return values[order], basis @ small[:, order], m


def pca(
    source: Any,
    *,
    n_components: int = 10,
    samples: Sequence[int] | np.ndarray | None = None,
    variants: Sequence[int] | np.ndarray | None = None,
    method: Literal["auto", "exact", "randomized"] = "auto",
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    n_iter: int = 8,
    oversample: int | None = None,
    loadings: bool = False,
) -> PCAResult:
    """Principal components of standardised genotypes, as plink2 ``--pca``.

    Parameters
    ----------
    source
        A ``GenotypeSource`` (see :func:`genoformer.gwas.io.genotypes.open_genotypes`) or a path.
    n_components
        Number of components ``k``.
    samples, variants
        Subsets passed to ``source.chunks`` (e.g. LD-pruned variants); ``None`` for all.
    method
        ``"exact"`` (plink2 ``--pca``: full GRM, pairwise call counts), ``"randomized"``
        (plink2 ``--pca approx``: streamed randomized subspace iteration, missing calls
        mean-imputed) or ``"auto"``: exact up to 5,000 samples, randomized above.
    seed
        Seed of the random start of the randomized method.
    chunk_size
        Variants per chunk read from disk.
    n_iter, oversample
        Randomized method: passes over the data, and extra subspace columns
        (default ``max(k, 20)``).
    loadings
        Also return per-variant loadings (one extra pass over the data).

    Returns
    -------
    PCAResult
    """
    source = _open(source)
    sample_table = source.samples
    if samples is not None:
        sample_table = sample_table.iloc[np.asarray(samples)]
    n = len(sample_table)
    if n < 2:
        raise ValueError(f"PCA needs at least 2 samples, got {n}")
    k = int(n_components)
    if not 1 <= k <= n:
        raise ValueError(f"n_components must be between 1 and the number of samples ({n})")
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_SAMPLES else "randomized"
    if method == "exact":
        chunks = source.chunks(size=chunk_size, samples=samples, variants=variants)
        values, vectors, m = _exact(chunks, n, k)
        info: dict[str, Any] = {}
    elif method == "randomized":
        extra = max(k, 20) if oversample is None else int(oversample)
        values, vectors, m = _randomized(
            source, n, k, chunk_size, samples, variants, seed, n_iter, extra
        )
        info = {"n_iter": n_iter, "oversample": extra, "seed": seed}
    else:
        raise ValueError(f"method must be 'auto', 'exact' or 'randomized', not {method!r}")
    vectors = _fix_signs(vectors)

    names = [f"PC{i + 1}" for i in range(k)]
    table = pd.DataFrame(vectors, columns=names)
    table.insert(0, "IID", _column(sample_table, "iid").to_numpy())
    table.insert(0, "FID", _column(sample_table, "fid").to_numpy())
    result = PCAResult(
        eigenvalues=values, eigenvectors=table, method=method, n_variants=m, info=info
    )
    if loadings:
        result.loadings = _loadings(source, vectors, values, m, chunk_size, samples, variants)
    return result


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    for candidate in (name, name.upper(), name.capitalize()):
        if candidate in table.columns:
            return table[candidate].astype(str).reset_index(drop=True)
    raise KeyError(f"sample table has no {name!r} column: {list(table.columns)}")


def _loadings(source, vectors, values, m, chunk_size, samples, variants) -> pd.DataFrame:
    scale = 1.0 / np.sqrt(np.maximum(values, np.finfo(float).tiny) * m)
    parts, indices = [], []
    for idx, G in source.chunks(size=chunk_size, samples=samples, variants=variants):
        X, _ = _standardise(G)
        parts.append((X.T @ vectors) * scale)
        indices.append(np.asarray(idx))
    weights = np.vstack(parts)
    table = source.variants.iloc[np.concatenate(indices)].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "CHROM": table["chrom"].astype(str),
            "ID": table["id"].astype(str),
            "A1": table["a1"].astype(str),
            "A2": table["a2"].astype(str),
        }
    )
    for i in range(weights.shape[1]):
        out[f"PC{i + 1}"] = weights[:, i]
    return out


def write_pca(result: PCAResult, prefix: str | os.PathLike) -> list[Path]:
    """Write ``PREFIX.eigenval`` and ``PREFIX.eigenvec`` as plink2 does (and loadings).

    ``.eigenvec`` is tab-separated with a ``#FID IID PC1 ...`` header; ``.eigenval`` has one
    eigenvalue a line. Loadings, when present, go to ``PREFIX.eigenvec.var``
    (``#CHROM ID A1 A2 PC1 ...``). Numbers are written with 6 significant digits, as plink2.

    Returns
    -------
    list of Path
        The files written.
    """
    prefix = Path(prefix)
    values = "".join(f"{v:.6g}\n" for v in result.eigenvalues)
    written = [write_text(prefix.with_name(prefix.name + ".eigenval"), values)]
    vec = result.eigenvectors.rename(columns={"FID": "#FID"})
    written.append(
        write_table(prefix.with_name(prefix.name + ".eigenvec"), vec, float_format="%.6g")
    )
    if result.loadings is not None:
        var = result.loadings.rename(columns={"CHROM": "#CHROM"})
        written.append(
            write_table(prefix.with_name(prefix.name + ".eigenvec.var"), var, float_format="%.6g")
        )
    return written


def read_pca(prefix: str | os.PathLike) -> PCAResult:
    """Read ``PREFIX.eigenval`` / ``PREFIX.eigenvec`` written by plink2 or :func:`write_pca`."""
    prefix = Path(prefix)
    values = np.loadtxt(prefix.with_name(prefix.name + ".eigenval"), ndmin=1)
    vec = pd.read_csv(prefix.with_name(prefix.name + ".eigenvec"), sep="\t", dtype={0: str})
    vec = vec.rename(columns={"#FID": "FID", "#IID": "IID"})
    if "FID" not in vec.columns:
        vec.insert(0, "FID", vec["IID"])
    vec["FID"] = vec["FID"].astype(str)
    vec["IID"] = vec["IID"].astype(str)
    return PCAResult(eigenvalues=values, eigenvectors=vec, method="file")
