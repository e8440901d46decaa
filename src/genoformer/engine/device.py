"""Pick the device a model runs on: cpu, cuda, Ascend npu or Apple mps; borrow a model."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import torch

from genoformer.engine.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "npu", "mps")


def npu_available() -> bool:
    """True when the Ascend backend (``torch_npu``) imports and sees a device."""
    try:
        importlib.import_module("torch_npu")
    except ImportError:
        return False
    npu = getattr(torch, "npu", None)
    return bool(npu is not None and npu.is_available())


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(name: str = "auto") -> torch.device:
    """The torch device for ``name``.

    ``auto`` picks cuda, then an Ascend npu when ``torch_npu`` imports, then mps, then cpu.
    Asking for a device whose backend is absent is an :class:`InputError`.
    """
    name = (name or "auto").lower()
    base = name.split(":", 1)[0]
    if base not in DEVICE_CHOICES:
        raise InputError(
            f"unknown device '{name}'",
            where="--device",
            fix=f"use one of {', '.join(DEVICE_CHOICES)} (cuda:1 and the like also work)",
        )
    available = {
        "cuda": torch.cuda.is_available,
        "npu": npu_available,
        "mps": mps_available,
        "cpu": lambda: True,
    }
    if base == "auto":
        for candidate in ("cuda", "npu", "mps"):
            if available[candidate]():
                return torch.device(candidate)
        return torch.device("cpu")
    if not available[base]():
        raise InputError(
            f"device '{name}' was asked for but its PyTorch backend is not available here",
            where="--device",
            fix="use --device auto (or cpu)",
        )
    return torch.device(name)


@contextlib.contextmanager
def evaluating(
    model: torch.nn.Module, device: str | torch.device | None = None
) -> Iterator[torch.device]:
    """Run ``model`` in eval mode on ``device``; give back its train mode and device after.

    ``device=None`` keeps the device the model is already on; a name goes through
    :func:`pick_device` (``"auto"`` included). Yields the device the model runs on.
    """
    try:
        original = next(model.parameters()).device
    except StopIteration:
        original = torch.device("cpu")
    target = original if device is None else pick_device(str(device))
    was_training = model.training
    model.to(target)
    model.eval()
    try:
        yield target
    finally:
        model.train(was_training)
        model.to(original)
