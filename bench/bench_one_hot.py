"""One-hot encoding speed: genoformer.seq.encoding.one_hot against tangermeme.

Encodes 100,000 random sequences of 1,000 bp (seed 0) with both tools, checks that they
give the same array, and prints the speed of each in Mbp/s; the last line is the ratio.

    .venv/bin/python bench/bench_one_hot.py [--n 100000] [--length 1000] [--n-fraction 0]

Both are timed to the same int8 output, tangermeme's default; genoformer's float32 (the
dtype models read) is timed too, and both dtypes again writing into a preallocated buffer.
tangermeme encodes one sequence per call, so it is timed over the list of all sequences;
the torch.stack that makes the (N, 4, L) batch is timed apart and not counted in the ratio.
If tangermeme would take more than about 60 s, it is timed on a subset and the time is
extrapolated (the output says so). CPU times are printed beside wall-clock ones: on a busy
machine the wall clock also counts time spent waiting for a core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from genoformer.seq.encoding import one_hot

TANGERMEME_BUDGET_S = 60.0


def random_sequences(n: int, length: int, *, n_fraction: float, seed: int) -> list[str]:
    """``n`` random sequences over ACGT (and N at ``n_fraction`` of the positions)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, length), dtype=np.uint8)
    if n_fraction > 0:
        codes[rng.random((n, length)) < n_fraction] = 4
    raw = np.frombuffer(b"ACGTN", dtype=np.uint8)[codes]
    return [row.decode("ascii") for row in raw.view(f"S{length}").ravel()]


def median_time(function, repeats: int = 3) -> tuple[float, float, object]:
    """Median wall-clock and CPU seconds of ``repeats`` calls, and the last result."""
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        result = None  # free the previous output before the next run allocates its own
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu), result


def timed(label: str, seconds: float, cpu: float, mbp: float, note: str) -> None:
    print(f"{label:27s}: {seconds:7.3f} s  {mbp / seconds:8.1f} Mbp/s  (CPU {cpu:.3f} s; {note})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--length", type=int, default=1_000)
    parser.add_argument("--n-fraction", type=float, default=0.0, help="fraction of N bases")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from tangermeme.utils import one_hot_encode

    sequences = random_sequences(args.n, args.length, n_fraction=args.n_fraction, seed=args.seed)
    mbp = args.n * args.length / 1e6
    print(
        f"{args.n:,} sequences of {args.length:,} bp ({mbp:,.0f} Mbp), N fraction "
        f"{args.n_fraction:g}, 1 thread; load average {os.getloadavg()[0]:.2f} on "
        f"{os.cpu_count()} CPUs (other processes slow the wall-clock times)"
    )
    torch.set_num_threads(1)

    t_int8, cpu_int8, ours = median_time(lambda: one_hot(sequences, dtype=np.int8))
    timed("genoformer one_hot int8", t_int8, cpu_int8, mbp, "new array, median of 3")
    t_f32, cpu_f32, _ = median_time(lambda: one_hot(sequences, dtype=np.float32))
    timed("genoformer one_hot float32", t_f32, cpu_f32, mbp, "new array, median of 3")
    # The same into a buffer allocated once: the encoder without the cost of fresh memory
    # (page faults, and in a VM the host backing new pages, which can dominate).
    for dtype in (np.int8, np.float32):
        buffer = np.ones((args.n, 4, args.length), dtype=dtype)
        seconds, cpu, _ = median_time(lambda b=buffer: one_hot(sequences, out=b))
        timed(f"  into out= {np.dtype(dtype).name}", seconds, cpu, mbp, "reused buffer")
        del buffer

    one_hot_encode(sequences[0])  # numba compiles on the first call; not timed
    probe = max(1, min(args.n, 2_000))
    start = time.perf_counter()
    theirs = [one_hot_encode(s) for s in sequences[:probe]]
    estimate = (time.perf_counter() - start) * args.n / probe
    if estimate > TANGERMEME_BUDGET_S:
        subset = max(probe, int(args.n * TANGERMEME_BUDGET_S / estimate))
        note = f"EXTRAPOLATED from {subset:,} of {args.n:,} sequences"
    else:
        subset, note = args.n, "all sequences, one call each"
    start, start_cpu = time.perf_counter(), time.process_time()
    theirs = [one_hot_encode(s) for s in sequences[:subset]]
    t_tm = (time.perf_counter() - start) * args.n / subset
    cpu_tm = (time.process_time() - start_cpu) * args.n / subset
    timed("tangermeme one_hot_encode", t_tm, cpu_tm, mbp, note)
    start = time.perf_counter()
    stacked = torch.stack(theirs)
    print(f"  + torch.stack to (N, 4, L): {time.perf_counter() - start:6.3f} s (not in the ratio)")

    same = np.array_equal(stacked.numpy(), ours[:subset])
    print(f"same array: {same}")
    if not same:
        raise SystemExit("genoformer and tangermeme disagree")
    # The ratio compares the plain calls: genoformer making a new int8 array, tangermeme
    # encoding every sequence (its stack not counted).
    print(f"ratio genoformer/tangermeme one-hot speed: {t_tm / t_int8:.1f}x")


if __name__ == "__main__":
    main()
