"""Option groups of the public verbs: a frozen dataclass with defaults, overridable by name.

As Hugging Face's ``TrainingArguments``: a verb's many settings live in one dataclass that
documents them once, so the verb's own signature stays short. The verb still takes each
setting by name (``pretrain(corpus, out=..., max_steps=20)``), which is what
:func:`with_overrides` applies; a name the dataclass does not have is a ``TypeError``, as an
unknown keyword argument is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["with_overrides"]

T = TypeVar("T")


def with_overrides(kind: type[T], options: T | None, overrides: Mapping[str, Any], verb: str) -> T:
    """``options`` (default: ``kind()``) with the settings named in ``overrides`` replaced."""
    known = {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(
            f"{verb}() got an unexpected keyword argument {unknown[0]!r} "
            f"(its settings: {', '.join(sorted(known))})"
        )
    return dataclasses.replace(options if options is not None else kind(), **overrides)
