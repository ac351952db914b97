"""Fixtures of the criterion tests: one thread, and every shared case of ``score_cases.py``."""

from __future__ import annotations

import pytest
import torch
from score_cases import CASE_NAMES, Case, make_case


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one thread (tiny models; OpenMP barriers slow them 5-10x on a busy box)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture(params=CASE_NAMES)
def score_case(request) -> Case:
    """Every shared criterion case in turn (a fresh copy for each test)."""
    return make_case(request.param)
