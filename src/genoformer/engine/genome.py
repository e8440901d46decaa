"""Chromosome names and their natural order, for every pillar that places things on a genome."""

from __future__ import annotations

import re

__all__ = ["chromosome_order_key"]

_SPECIAL = {"X": 23, "Y": 24, "XY": 25, "MT": 26, "M": 26}


def chromosome_order_key(name: object) -> tuple[int, str]:
    """Sort key for chromosome names: 1..22, X, Y, XY, MT, then others alphabetically.

    A ``chr`` prefix is ignored, so ``chr2`` sorts before ``chr10`` and beside ``2``.
    """
    text = re.sub(r"^chr", "", str(name), flags=re.IGNORECASE).upper()
    if text.isdigit():
        return int(text), ""
    if text in _SPECIAL:
        return 1000 + _SPECIAL[text], ""
    return 10_000, text
