"""Fixtures shared by the reader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.seq.test_data import write


@pytest.fixture
def genome(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    rng = np.random.default_rng(0)
    chroms = {name: "".join(rng.choice(list("ACGT"), 120)) for name in ("chr1", "chr2")}
    chroms["chr2"] = chroms["chr2"][:60] + chroms["chr2"][60:].lower()
    text = "".join(
        f">{name}\n{seq[:50]}\n{seq[50:100]}\n{seq[100:]}\n" for name, seq in chroms.items()
    )
    return write(tmp_path / "genome.fa", text), chroms
