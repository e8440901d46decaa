"""Model directories (``config.json`` + weights): read back, or bad input naming the file.

Kept apart from :mod:`genoformer.engine.training`, which loads the Trainer (seconds of
imports), so that commands that only load a model start quickly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from genoformer.engine.errors import InputError

__all__ = ["checkpoint_config", "load_pretrained"]


def checkpoint_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint directory; a missing or damaged one is bad input
    naming the file (transformers raises a bare ``OSError``)."""
    path = Path(directory) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no config.json here", file=directory, fix=_CHECKPOINT_FIX) from None
    except (OSError, ValueError) as error:
        raise InputError(
            f"config.json is not JSON ({error})", file=path, fix=_CHECKPOINT_FIX
        ) from None
    if not isinstance(config, dict):
        raise InputError("config.json is not a JSON object", file=path, fix=_CHECKPOINT_FIX)
    return config


def load_pretrained(model_class: type, directory: str | os.PathLike, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(directory, **kwargs)``; a damaged checkpoint (config.json
    that is not JSON, truncated or mismatched weights) is bad input naming the file."""
    from safetensors import SafetensorError

    checkpoint_config(directory)
    try:
        return model_class.from_pretrained(directory, **kwargs)
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        weights = next(iter(sorted(Path(directory).glob("*.safetensors"))), Path(directory))
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(
            f"cannot load the checkpoint ({first})",
            file=weights,
            fix="the weights are damaged or do not match config.json: copy the checkpoint "
            "again, or train it again",
        ) from None


_CHECKPOINT_FIX = "pass a checkpoint directory written whole (copy it again, or train it again)"
