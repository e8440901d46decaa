"""Gradient attributions of any differentiable model, in tangermeme's shape.

``saliency(model, X, args=..., target=..., batch_size=..., device=...)``, likewise
:func:`gradient_x_input` and :func:`integrated_gradients`. ``model`` is a callable
``model(X, *args)`` returning one row of outputs per sample, shape (N,) or (N, K) (an
``nn.Module`` is put in eval mode on ``device`` and given back as it was). ``args`` are
extra inputs sliced along with ``X`` batch by batch (``None`` passes through). ``target``
chooses the output explained: an int (one column), ``None`` (the only output, or the mean
over outputs) or a callable that takes the detached outputs of a batch and returns one
column index per row (for example the predicted class). Each pillar adapts its own models
to this: seq's one-hot sequences, gwas's dosages with missing masks and covariates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from genoformer.engine.device import evaluating, pick_device
from genoformer.engine.errors import InputError

__all__ = [
    "Target",
    "check_batch_size",
    "explained",
    "gradient_x_input",
    "gradients",
    "integrated_gradients",
    "saliency",
]

#: An output column, None (the only output or the mean), or a chooser from the outputs.
Target = int | None | Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def _placed(model: Callable, device: str | torch.device | None) -> Iterator[torch.device]:
    if isinstance(model, nn.Module):
        with evaluating(model, device) as dev:
            yield dev
    else:
        yield torch.device("cpu") if device is None else pick_device(str(device))


def _dtype(model: Callable) -> torch.dtype:
    if isinstance(model, nn.Module):
        for parameter in model.parameters():
            return parameter.dtype
    return torch.float32


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise InputError(f"batch_size is {batch_size}", fix="use a batch size of 1 or more")


def _rows(args: Sequence[Any], lo: int, hi: int, device: torch.device) -> list[Any]:
    return [None if a is None else a[lo:hi].to(device) for a in args]


def explained(y: torch.Tensor, target: Target) -> torch.Tensor:
    """The explained output of each row of ``y`` ((N,) or (N, K)) -> (N,)."""
    if y.ndim == 1:
        return y
    if y.ndim != 2:
        raise ValueError(f"the model returned shape {tuple(y.shape)}; expected (N,) or (N, K)")
    if target is None:
        return y[:, 0] if y.shape[1] == 1 else y.mean(dim=1)
    if callable(target):
        index = torch.as_tensor(target(y.detach()), device=y.device).long()
        return y.gather(1, index[:, None])[:, 0]
    return y[:, int(target)]


def gradients(
    model: Callable,
    X: torch.Tensor,
    *,
    args: Sequence[Any] = (),
    target: Target = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Gradient of the explained output with respect to ``X``, float32 on the CPU."""
    check_batch_size(batch_size)
    X = torch.as_tensor(X)
    grads = torch.empty(X.shape, dtype=torch.float32)
    with _placed(model, device) as dev:
        dtype = _dtype(model)
        for lo in range(0, len(X), batch_size):
            hi = lo + batch_size
            xb = X[lo:hi].detach().to(dev, dtype).requires_grad_(True)
            with torch.enable_grad():
                y = explained(model(xb, *_rows(args, lo, hi, dev)), target)
                if y.shape[0] != xb.shape[0]:
                    raise ValueError(
                        f"the model returned {y.shape[0]} outputs for {xb.shape[0]} samples"
                    )
                # Rows are independent in eval mode: the gradient of the sum is each row's.
                (grad,) = torch.autograd.grad(y.sum(), xb)
            grads[lo:hi] = grad.float().cpu()
    return grads


def saliency(model: Callable, X: torch.Tensor, **options: Any) -> torch.Tensor:
    """The gradient of the explained output with respect to each input value; ``options``
    (``args``, ``target``, ``batch_size``, ``device``) are those of :func:`gradients`."""
    return gradients(model, X, **options)


def gradient_x_input(model: Callable, X: torch.Tensor, **options: Any) -> torch.Tensor:
    """Gradient times input: the first-order contribution of each input value; ``options``
    (``args``, ``target``, ``batch_size``, ``device``) are those of :func:`gradients`."""
    return gradients(model, X, **options) * torch.as_tensor(X).detach().float().cpu()


def integrated_gradients(
    model: Callable,
    X: torch.Tensor,
    *,
    args: Sequence[Any] = (),
    target: Target = None,
    baselines: torch.Tensor | None = None,
    n_steps: int = 32,
    smoothgrad_samples: int = 0,
    smoothgrad_sd: float = 0.2,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Integrated gradients (Captum) from ``baselines`` (zeros by default) to ``X``.

    Parameters
    ----------
    n_steps
        Points of the Gauss-Legendre rule along the path.
    smoothgrad_samples
        With ``> 0``, SmoothGrad over IG (Captum ``NoiseTunnel``): the mean IG of this many
        noisy copies of each sample, noise of standard deviation ``smoothgrad_sd``.
    batch_size
        Samples per Captum call (each expands to ``n_steps`` forward and backward passes).
    seed
        Seed of the SmoothGrad noise (torch's global generator is left as it was).

    Returns
    -------
    torch.Tensor
        The shape of ``X``, float32 on the CPU; without SmoothGrad, each row sums to the
        explained output at ``X`` minus that at the baseline, up to the quadrature error.
    """
    from captum.attr import IntegratedGradients, NoiseTunnel

    check_batch_size(batch_size)
    if n_steps < 1:
        raise InputError(f"n_steps is {n_steps}", fix="use at least 1 integration step")
    if smoothgrad_samples < 0 or smoothgrad_sd < 0:
        raise InputError(
            "smoothgrad_samples and smoothgrad_sd must not be negative",
            fix="use smoothgrad_samples=0 to turn SmoothGrad off",
        )
    X = torch.as_tensor(X)
    base = torch.zeros_like(X) if baselines is None else torch.as_tensor(baselines)
    base = base.expand_as(X)
    out = torch.empty(X.shape, dtype=torch.float32)

    def forward(x: torch.Tensor, *extra: Any) -> torch.Tensor:
        return explained(model(x, *extra), target)

    method = IntegratedGradients(forward)
    with _placed(model, device) as dev, torch.random.fork_rng(devices=[]):
        dtype = _dtype(model)
        torch.manual_seed(seed)
        for lo in range(0, len(X), batch_size):
            hi = lo + batch_size
            extra = tuple(_rows(args, lo, hi, dev))
            kwargs = dict(
                baselines=base[lo:hi].to(dev, dtype),
                additional_forward_args=extra or None,
                n_steps=n_steps,
                internal_batch_size=batch_size * n_steps,
            )
            xb = X[lo:hi].to(dev, dtype)
            if smoothgrad_samples:
                attr = NoiseTunnel(method).attribute(
                    xb,
                    nt_type="smoothgrad",
                    nt_samples=smoothgrad_samples,
                    # One noisy copy per IG call keeps each call at batch_size * n_steps.
                    nt_samples_batch_size=1,
                    stdevs=float(smoothgrad_sd),
                    **kwargs,
                )
            else:
                attr = method.attribute(xb, **kwargs)
            out[lo:hi] = attr.detach().float().cpu()
    return out
