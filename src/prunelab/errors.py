"""User-facing errors.

Every mistake a user can make (a bad name, a sparsity out of range, a missing file)
raises :class:`PrunelabError` with a one-line message that names the bad value and what
is allowed. The CLI turns it into exit code 2 without a traceback; library callers can
catch it like any ``ValueError``.
"""

from __future__ import annotations


class PrunelabError(ValueError):
    """A user mistake or unusable input, described in one line."""


def check_sparsity(p: float, name: str = "sparsity") -> float:
    """Validate a sparsity (fraction of prunable weights removed).

    Args:
        p: The value to check.
        name: How to call the value in the error message.

    Returns:
        ``p`` as a float.

    Raises:
        PrunelabError: If ``p`` is not a finite number in ``[0, 1)``.

    Example:
        >>> check_sparsity(0.9)
        0.9
    """
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise PrunelabError(f"{name} must be a number in [0, 1), got {p!r}") from None
    if not (0.0 <= value < 1.0):
        raise PrunelabError(f"{name} must be in [0, 1) (fraction of weights removed), got {p!r}")
    return value
