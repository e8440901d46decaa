"""Fixtures shared by the gwas tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of tiny models: one thread is as fast as two there,
    and threads that wait on each other on a busy machine make a step many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
