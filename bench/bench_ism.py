"""In silico saturation mutagenesis: genoformer against tangermeme on the same CNNs and input.

    .venv/bin/python bench/bench_ism.py [--n 100] [--length 1000] [--threads 2]

Random sequences (seeded), randomly initialised CNNs (``SequenceModel``, one conv layer,
max+mean pooling). Each tool computes tangermeme's default attribution (substitution
effects centred per position, projected onto the observed bases), which genoformer gives
with ``center=True, hypothetical=False``. tangermeme is timed with its defaults
(``fast=True``: its own fastISM through ``torch.export``, which it uses when it estimates
the plain job at more than 30 s) and with ``fast=False``. Both run in this process with
the same number of torch threads, on the CPU. The last line is the speed ratio
tangermeme-default seconds / genoformer seconds, summed over the models.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from genoformer.seq.attribution import saturation_mutagenesis
from genoformer.seq.models import SeqModelConfig, SequenceModel


class _Logits(torch.nn.Module):
    """tangermeme calls ``model(X)`` and expects a tensor, not a ModelOutput."""

    def __init__(self, model: SequenceModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="sequences")
    parser.add_argument("--length", type=int, default=1000, help="bases per sequence")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both tools")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--models",
        default="32x3,64x15",
        help="comma-separated FILTERSxWIDTH CNNs, e.g. 32x3,64x15; deep_cnn:32x3 for the "
        "deeper CNN (4 residual dilated layers)",
    )
    parser.add_argument(
        "--skip-slow", action="store_true", help="do not time tangermeme fast=False"
    )
    args = parser.parse_args()

    from tangermeme import __version__ as tm_version
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis as tm_ism

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (args.n, args.length))].transpose(0, 2, 1)
    x = torch.from_numpy(np.ascontiguousarray(x))
    print(
        f"{args.n} random sequences x {args.length} bp, {3 * args.n * args.length:,} "
        f"substitutions; torch {torch.__version__}, tangermeme {tm_version}, "
        f"{args.threads} threads, cpu"
    )

    ours_total = theirs_total = 0.0
    for spec in args.models.split(","):
        architecture, _, size = spec.rpartition(":")
        architecture = architecture or "cnn"
        n_filters, width = (int(v) for v in size.lower().split("x"))
        torch.manual_seed(args.seed)
        config = SeqModelConfig(architecture=architecture, n_filters=n_filters, filter_width=width)
        model = SequenceModel(config).eval()
        wrapped = _Logits(model)
        # Warm-up: first-call costs (kernel selection, lazy imports) are not the tools'.
        saturation_mutagenesis(model, x[:1], center=True, hypothetical=False)
        tm_ism(wrapped, x[:1], device="cpu", fast=False)

        ours, t_ours = _timed(
            lambda m=model: saturation_mutagenesis(m, x, center=True, hypothetical=False)
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            theirs, t_theirs = _timed(lambda w=wrapped: tm_ism(w, x, device="cpu").numpy())
        for w in caught:
            print(f"  tangermeme warned: {str(w.message)[:160]}")
        scale = float(np.abs(theirs).max())
        diff = float(np.abs(ours - theirs).max())
        print(
            f"{architecture} {n_filters} filters x width {width}: genoformer {t_ours:.2f} s, "
            f"tangermeme (default fast=True) {t_theirs:.2f} s, "
            f"max |difference| {diff:.2e} (max |attribution| {scale:.2e})"
        )
        if not diff <= 1e-4 * scale + 1e-7:
            raise SystemExit(f"results disagree for {spec}: {diff:.3g}")
        if not args.skip_slow:
            slow, t_slow = _timed(lambda w=wrapped: tm_ism(w, x, device="cpu", fast=False).numpy())
            print(
                f"  tangermeme fast=False {t_slow:.2f} s, "
                f"max |difference| {float(np.abs(ours - slow).max()):.2e}; "
                f"ratio against tangermeme's faster mode: {min(t_slow, t_theirs) / t_ours:.1f}x"
            )
        print(f"  ratio against tangermeme's default: {t_theirs / t_ours:.1f}x")
        ours_total += t_ours
        theirs_total += t_theirs

    print(f"total: genoformer {ours_total:.2f} s, tangermeme (default) {theirs_total:.2f} s")
    print(f"ratio genoformer/tangermeme ISM speed: {theirs_total / ours_total:.1f}x")


if __name__ == "__main__":
    main()
