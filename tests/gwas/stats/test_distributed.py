"""The Dask engine gives the same numbers, in the same order, as a plain loop over chunks."""

from __future__ import annotations

import numpy as np
import pytest
from distributed import Client, LocalCluster

from genoformer.gwas.io.genotypes import open_genotypes
from genoformer.gwas.stats.distributed import map_chunks


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    from bed_reader import to_bed

    rng = np.random.default_rng(11)
    G = rng.binomial(2, rng.uniform(0.05, 0.95, 1000), size=(200, 1000)).astype(np.float32)
    G[rng.random(G.shape) < 0.02] = np.nan
    path = tmp_path_factory.mktemp("dask") / "g.bed"
    to_bed(path, G)
    return path


def allele_frequency(index, G):
    return index, np.nanmean(G, axis=0) / 2


def _slope_func(y):
    def slope(index, G):
        # Per-variant least-squares slope of y on the genotype, missing calls dropped.
        called = ~np.isnan(G)
        g = np.where(called, G, 0.0)
        n = called.sum(axis=0)
        yy = np.where(called, y[:, None], 0.0)
        gm, ym = g.sum(0) / n, yy.sum(0) / n
        cov = (g * yy).sum(0) / n - gm * ym
        var = (g * g).sum(0) / n - gm**2
        return index, cov / var

    return slope


def _assert_same(dask_results, plain_results):
    assert len(dask_results) == len(plain_results)
    for (i_d, v_d), (i_p, v_p) in zip(dask_results, plain_results, strict=True):
        np.testing.assert_array_equal(i_d, i_p)
        np.testing.assert_array_equal(v_d, v_p)


def test_map_chunks_matches_plain_loop(bed):
    source = open_genotypes(bed)
    y = np.random.default_rng(0).normal(size=source.n_samples)
    slope = _slope_func(y)
    plain = [allele_frequency(i, G) for i, G in source.chunks(128)]
    _assert_same(list(map_chunks(source, allele_frequency, chunk_size=128, n_workers=2)), plain)
    plain = [slope(i, G) for i, G in source.chunks(128)]
    # A closure works on the default (threaded, in-process) cluster.
    _assert_same(list(map_chunks(bed, slope, chunk_size=128, n_workers=2)), plain)


def test_map_chunks_with_selection_and_scheduler_address(bed):
    source = open_genotypes(bed)
    keep = np.zeros(source.n_samples, dtype=bool)
    keep[::3] = True
    variants = np.arange(5, 1000, 7)[::-1]  # unsorted on purpose: chunks sort selections
    y = np.random.default_rng(1).normal(size=int(keep.sum()))
    slope = _slope_func(y)
    plain = [slope(i, G) for i, G in source.chunks(50, samples=keep, variants=variants)]
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        results = list(
            map_chunks(
                source,
                slope,
                chunk_size=50,
                samples=keep,
                variants=variants,
                scheduler=cluster.scheduler_address,
                max_pending=2,
            )
        )
        _assert_same(results, plain)
        with Client(cluster) as client:
            results = list(map_chunks(source, allele_frequency, chunk_size=64, scheduler=client))
            assert client.status == "running"  # a client we were given stays open
    _assert_same(results, [allele_frequency(i, G) for i, G in source.chunks(64)])


def test_map_chunks_errors_and_early_stop(bed):
    def boom(index, G):
        raise ArithmeticError(f"chunk starting at {index[0]}")

    with pytest.raises(ArithmeticError, match="chunk starting at 0"):
        list(map_chunks(bed, boom, chunk_size=400, n_workers=1))
    chunks = map_chunks(bed, allele_frequency, chunk_size=100, n_workers=1)
    first = next(chunks)
    np.testing.assert_array_equal(first[0], np.arange(100))
    chunks.close()  # shuts the local cluster down without running the rest
    with pytest.raises(ValueError, match="chunk size"):
        next(map_chunks(bed, allele_frequency, chunk_size=0))
