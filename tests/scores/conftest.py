"""Fixtures of the criterion tests: one thread, and every shared case of ``score_cases.py``."""

from __future__ import annotations

import pytest
from score_cases import CASE_NAMES, Case, make_case


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one thread (the fixture lives in ``tests/conftest.py``)."""
    yield


@pytest.fixture(params=CASE_NAMES)
def score_case(request) -> Case:
    """Every shared criterion case in turn (a fresh copy for each test)."""
    return make_case(request.param)
