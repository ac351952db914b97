"""Argument checks shared by the estimators (private)."""

from __future__ import annotations

from prunelab.curvature.operator import CurvatureOperator
from prunelab.errors import PrunelabError


def check_int(value, name: str, minimum: int) -> int:
    """Return ``value`` as an int, or raise if it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PrunelabError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_operator(op) -> CurvatureOperator:
    """Refuse anything that is not a curvature operator."""
    if not isinstance(op, CurvatureOperator):
        raise PrunelabError(
            f"op must be a curvature operator (Hessian, GGN, EmpiricalFisher), got "
            f"{type(op).__name__}"
        )
    return op
