"""Fixtures of the curvature tests: one thread, and every shared case of ``cases.py``."""

from __future__ import annotations

import pytest
from cases import CASE_NAMES, Case, make_case


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one thread (the fixture lives in ``tests/conftest.py``)."""
    yield


@pytest.fixture(params=CASE_NAMES)
def case(request) -> Case:
    """Every shared case in turn."""
    return make_case(request.param)
