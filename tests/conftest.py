"""Shared test fixtures: the real data under ../shared/data and a scratch run directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ../shared/data beside the repository; GENOFORMER_SHARED_DATA points elsewhere.
SHARED_DATA = Path(
    os.environ.get("GENOFORMER_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


def shared_data(relative: str) -> Path:
    """Path to a file under ../shared/data; fails (CI=true) or skips when it is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        message = f"shared data missing: {path}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
