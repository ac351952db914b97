"""Shared pytest fixtures: float64 by default for exactness tests, src/ on the path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def pytest_ignore_collect(collection_path: Path, config):
    """Do not collect the per-layer ``conftest.py`` files as doctest modules.

    ``--doctest-modules`` imports every ``.py`` file under ``tests/`` as a module named by
    its bare file name (the folders are not packages), so two ``tests/<layer>/conftest.py``
    would both be ``conftest`` and fail with "import file mismatch". They hold no
    doctests; pytest still loads them as conftests.
    """
    if collection_path.name == "conftest.py":
        return True
    return None


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype, restoring the previous default after."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch.float64
    finally:
        torch.set_default_dtype(old)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Make every test start from the same global RNG state."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """Run on one thread (tiny models; OpenMP barriers slow them 5-10x on a busy box)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)
