"""Pure float64 math of the spectral pruning limit (paper 004, methods.md §4.1).

No model and no data here: a flat weight vector, a discrete spectral measure and the
loss tolerance ``ε`` are all the inputs. Everything is float64 NumPy.

Pieces:

* :func:`removed_norm_curve` — ``R(p)``, the ℓ2 norm of what global magnitude pruning
  removes at sparsity ``p``, from one sort and one cumulative sum, evaluated
  *continuously* in ``p`` (no rounding of ``R``, unlike 004's code, notes A.6).
* :func:`rho` — the predicted removable fraction at distance ``R``,
  ``ρ(R) = z + (1 − z) · mean_runs Σ_j τ_j / (1 + R² |λ_j| / (2ε))``,
  integrated against the discrete SLQ measure itself (never a binned density, notes A.4).
* :func:`solve_crossing` / :func:`crossing` — ``p̂`` with ``ρ(R(p̂)) = p̂`` by Brent's
  method on the strictly decreasing difference ``ρ(R(p)) − p``.
* :func:`jensen_rho` — the trace-only lower bound of ``ρ`` (Jensen).

Example:
    >>> import numpy as np
    >>> curve = removed_norm_curve(np.array([3.0, -1.0, 2.0, 0.5]))
    >>> float(curve.squared(0.5))  # the two smallest |θ|: 0.5² + 1²
    1.25
    >>> nodes, weights = np.array([[0.0, 4.0]]), np.array([[0.5, 0.5]])
    >>> float(rho(1.0, nodes, weights, eps=1.0))  # 0.5·1 + 0.5/(1 + 4/2)
    0.6666666666666666
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from prunelab.errors import PrunelabError

#: Ratio of the lower to the upper end of the squared Gaussian width of an ellipsoid:
#: ``(2/π)·Σ r_i² ≤ w(E)² ≤ Σ r_i²`` (lower end by Jensen on ``E|g_i| = sqrt(2/π)``).
GW_LOWER_FACTOR = 2.0 / math.pi


@dataclass(frozen=True)
class RemovedNormCurve:
    """``R(p)``: ℓ2 norm of the weights global magnitude pruning removes at sparsity ``p``.

    Built by :func:`removed_norm_curve`. At an integer count ``k`` (``p = k/D``) ``R²`` is
    exactly the sum of the ``k`` smallest ``θ_i²``. Between integer counts ``R²`` is
    interpolated **linearly in p** (the next weight is "partly removed"), so ``R`` is
    continuous and non-decreasing on ``[0, 1]`` and the crossing ``ρ(R(p)) = p`` has a
    unique root that needs no rounding anywhere.

    Attributes:
        cumsum: Float64 array of shape ``(D + 1,)``; ``cumsum[k]`` = sum of the ``k``
            smallest squared weights (``cumsum[0] = 0``).
    """

    cumsum: np.ndarray

    @property
    def size(self) -> int:
        """``D``, the number of weights."""
        return int(self.cumsum.size - 1)

    def squared(self, p: float | np.ndarray) -> np.ndarray:
        """``R(p)²`` (same units as ``θ²``); ``p`` scalar or array in ``[0, 1]``."""
        x = np.asarray(p, dtype=np.float64) * self.size
        return np.interp(x, np.arange(self.size + 1, dtype=np.float64), self.cumsum)

    def __call__(self, p: float | np.ndarray) -> np.ndarray:
        """``R(p)`` (units of ``θ``); ``p`` scalar or array in ``[0, 1]``."""
        return np.sqrt(self.squared(p))

    def at_count(self, k: int) -> float:
        """``R`` after removing exactly the ``k`` smallest-magnitude weights."""
        if not 0 <= k <= self.size:
            raise PrunelabError(f"count k must be in [0, {self.size}], got {k}")
        return float(np.sqrt(self.cumsum[k]))


def removed_norm_curve(weights_flat) -> RemovedNormCurve:
    """Build ``R(p)`` from the prunable weights (one sort + one cumulative sum).

    Args:
        weights_flat: The prunable weights, any shape (flattened), as a NumPy array or a
            torch tensor; converted to float64.

    Returns:
        The continuous curve :class:`RemovedNormCurve`.

    Raises:
        PrunelabError: If there are no weights or some are not finite.
    """
    if hasattr(weights_flat, "detach"):  # torch tensor, without importing torch here
        weights_flat = weights_flat.detach().to("cpu").double().numpy()
    w = np.asarray(weights_flat, dtype=np.float64).reshape(-1)
    if w.size == 0:
        raise PrunelabError("the prunable set is empty: no weights to compute R(p) from")
    if not np.all(np.isfinite(w)):
        raise PrunelabError("prunable weights contain NaN or inf")
    sq = np.sort(np.abs(w)) ** 2
    return RemovedNormCurve(np.concatenate([[0.0], np.cumsum(sq)]))


def _as_measure(nodes, weights) -> tuple[np.ndarray, np.ndarray]:
    """Validate a spectral measure and return ``(|λ|, τ)`` as ``(runs, m)`` float64 arrays."""
    lam = np.atleast_2d(np.asarray(nodes, dtype=np.float64))
    tau = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if lam.shape != tau.shape or lam.size == 0:
        raise PrunelabError(
            f"nodes {lam.shape} and weights {tau.shape} must be non-empty arrays of one shape"
        )
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(tau))) or np.any(tau < 0):
        raise PrunelabError("spectral measure must have finite nodes and weights >= 0")
    sums = tau.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > 1e-4):
        raise PrunelabError(
            f"each run's weights must sum to 1, got sums {np.round(sums, 6).tolist()}"
        )
    # Renormalise the float round-off (a float32 Lanczos gives sums ~1 ± 1e-6).
    return np.abs(lam), tau / sums[:, None]


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not (math.isfinite(eps) and eps > 0):
        raise PrunelabError(f"eps (loss tolerance) must be a finite number > 0, got {eps!r}")
    return eps


def _check_zero_mass(zero_mass: float) -> float:
    z = float(zero_mass)
    if not (0.0 <= z <= 1.0):
        raise PrunelabError(f"zero_mass must be in [0, 1], got {zero_mass!r}")
    return z


def rho(R, nodes, weights, eps: float, zero_mass: float = 0.0) -> np.ndarray:
    """Predicted removable fraction at pruning distance ``R`` (paper 004's ``ρ``).

    ``ρ(R) = z + (1 − z) · (1/runs) Σ_runs Σ_j τ_j / (1 + R² |λ_j| / (2ε))``: each
    eigen-direction with semi-axis ``r² = 2ε/|λ|`` contributes ``r²/(R² + r²)``, the
    squared semi-axis of the sublevel ellipsoid after projection onto the sphere of
    radius ``R``. The point mass ``z`` at ``λ = 0`` contributes 1 per unit of mass.
    Negative eigenvalues enter through ``|λ|``.

    Args:
        R: Distance(s) in weight units; scalar or array of shape ``(K,)``.
        nodes: Eigenvalues / Ritz values, shape ``(m,)`` or ``(runs, m)``.
        weights: Their weights ``τ``, same shape; each run sums to 1 (padding: weight 0).
        eps: Loss tolerance ``ε > 0`` (loss units).
        zero_mass: Fraction ``z ∈ [0, 1]`` of directions with exactly zero curvature that
            the measure does not contain (the measure describes the other ``1 − z``).

    Returns:
        ``ρ`` with the shape of ``R``, values in ``[0, 1]``.
    """
    lam, tau = _as_measure(nodes, weights)
    eps, z = _check_eps(eps), _check_zero_mass(zero_mass)
    r = np.asarray(R, dtype=np.float64)
    c = (r.reshape(-1, 1, 1) ** 2) / (2.0 * eps)  # (K, 1, 1)
    per_run = (tau / (1.0 + c * lam)).sum(axis=2)  # (K, runs)
    out = z + (1.0 - z) * per_run.mean(axis=1)
    return out.reshape(r.shape)


def mean_abs_eigenvalue(nodes, weights) -> float:
    """First absolute moment ``Σ τ_j |λ_j|`` of the measure (mean over runs) = ``tr|H| / D``.

    With Rademacher SLQ starts, the signed first moment is exactly Hutchinson's trace
    estimate ``vᵀHv / D``; for a positive semi-definite ``H`` the two coincide.
    """
    lam, tau = _as_measure(nodes, weights)
    return float((tau * lam).sum(axis=1).mean())


def jensen_rho(R, mean_abs_lambda: float, eps: float, zero_mass: float = 0.0) -> np.ndarray:
    """Trace-only lower bound of :func:`rho`: ``z + (1 − z) / (1 + R² m / (2ε))``.

    ``1/(1 + c x)`` is convex in ``x``, so by Jensen ``Σ τ_j/(1 + c|λ_j|) ≥
    1/(1 + c Σ τ_j |λ_j|)``: with ``m = tr|H|/D`` (``= tr(H)/D`` when ``H ⪰ 0``) this
    lower-bounds ``ρ`` for every ``R``, exactly, on the same measure. The point mass is
    kept exact (applying Jensen to it too would only weaken the bound).

    Args:
        R: Distance(s) in weight units; scalar or array.
        mean_abs_lambda: ``m``, the mean absolute eigenvalue of the non-null part (≥ 0).
        eps: Loss tolerance ``ε > 0``.
        zero_mass: Point mass ``z`` at ``λ = 0``.

    Returns:
        The bound, shape of ``R``.
    """
    eps, z = _check_eps(eps), _check_zero_mass(zero_mass)
    m = float(mean_abs_lambda)
    if not (math.isfinite(m) and m >= 0):
        raise PrunelabError(f"mean_abs_lambda must be a finite number >= 0, got {mean_abs_lambda}")
    r = np.asarray(R, dtype=np.float64)
    return z + (1.0 - z) / (1.0 + r**2 * m / (2.0 * eps))


def solve_crossing(curve: Callable[[float], float], xtol: float = 1e-12) -> float:
    """Solve ``curve(p) = p`` on ``[0, 1]`` for a continuous non-increasing ``curve``.

    ``f(p) = curve(p) − p`` is continuous and strictly decreasing, so it has at most one
    root; Brent's method finds it to ``xtol``. ``curve(0) ≥ 0`` always holds for a
    fraction; if ``curve(1) ≥ 1`` everything is removable and ``1.0`` is returned.

    Args:
        curve: ``p -> value`` in ``[0, 1]``, continuous and non-increasing in ``p``.
        xtol: Absolute tolerance on ``p``.

    Returns:
        The crossing ``p̂ ∈ [0, 1]``.
    """
    f0 = float(curve(0.0))
    if f0 <= 0.0:
        return 0.0
    f1 = float(curve(1.0)) - 1.0
    if f1 >= 0.0:
        return 1.0
    return float(
        brentq(lambda p: float(curve(p)) - p, 0.0, 1.0, xtol=xtol, rtol=4 * np.finfo(float).eps)
    )


def crossing(
    removed: RemovedNormCurve,
    nodes,
    weights,
    eps: float,
    zero_mass: float = 0.0,
    scale: float = 1.0,
) -> float:
    """``p̂`` with ``scale · ρ(R(p̂)) = p̂`` (``scale = 2/π`` gives the Gaussian-width lower end).

    Args:
        removed: ``R(p)`` from :func:`removed_norm_curve`.
        nodes: Spectral nodes, ``(m,)`` or ``(runs, m)``.
        weights: Their weights, same shape.
        eps: Loss tolerance ``ε > 0``.
        zero_mass: Point mass at ``λ = 0`` (see :func:`rho`).
        scale: Multiplies ``ρ`` (``1`` for ``p̂``, :data:`GW_LOWER_FACTOR` for the lower end).

    Returns:
        The crossing sparsity in ``[0, 1]``.
    """
    lam, tau = _as_measure(nodes, weights)
    eps, z = _check_eps(eps), _check_zero_mass(zero_mass)
    return solve_crossing(lambda p: scale * float(rho(removed(p), lam, tau, eps, z)))


def jensen_crossing(
    removed: RemovedNormCurve, mean_abs_lambda: float, eps: float, zero_mass: float = 0.0
) -> float:
    """Crossing of the trace-only bound :func:`jensen_rho`; never above :func:`crossing`."""
    return solve_crossing(lambda p: float(jensen_rho(removed(p), mean_abs_lambda, eps, zero_mass)))
