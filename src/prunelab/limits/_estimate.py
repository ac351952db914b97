"""Step 3 of the spectral limit: the :class:`LimitEstimate` from spectral measures (pure math).

:func:`limit_from_measures` turns the prunable weights, one discrete spectral measure per
SLQ seed (or one exact spectrum), ``ε`` and the null-space mass into a
:class:`LimitEstimate`. It needs no model, so tests can feed exact eigenvalues; the
model-facing :func:`prunelab.limits.predict_limit` feeds SLQ measures through
:func:`estimate_from_measures`, which adds the ``"ritz"`` point mass and the
convergence and quadrature diagnostics.

Already-pruned input: weights that are exactly zero count as removed. The prediction is
made for the remaining ``D_live`` weights (their ``R`` and their Hessian block) and then
expressed as a sparsity of the whole prunable set: ``p = p₀ + (1 − p₀)·q`` where ``p₀``
is the fraction already zero and ``q`` the removable fraction of the remaining weights.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from prunelab.curvature import SpectralMeasure, ritz_deflate
from prunelab.errors import PrunelabError
from prunelab.limits import _crossing as cx
from prunelab.limits._spectra import SeedMeasures

log = logging.getLogger(__name__)

#: Warn when ``p̂`` from ``m/2`` and ``m`` Lanczos steps, or from the Gauss ``m−1`` and
#: anti-Gauss ``m`` rules, differ by more than this (2 points, the accuracy we aim for).
CONVERGENCE_WARN = 0.02


@dataclass
class LimitEstimate:
    """A predicted pruning limit with its bounds, curve and settings.

    All sparsities are fractions of the whole prunable set removed (methods.md §0).

    Attributes:
        method: ``"gaussian-width"`` (004) or ``"cosine"`` (003).
        p_hat: The prediction. Gaussian width: the crossing ``ρ(R(p̂)) = p̂`` with
            ``ρ = (1/D) Σ r̃_i²`` the normalised sum of the squared semi-axes of the
            sublevel ellipsoid projected at distance ``R`` (004's quantity). Cosine: ``p*``.
        lower: Gaussian width: crossing of ``(2/π)·ρ`` — the squared Gaussian width of an
            ellipsoid is at least ``(2/π) Σ r̃_i²`` (Jensen, ``E|g| = sqrt(2/π)``). Cosine:
            ``p_safe``.
        upper: Gaussian width: crossing of ``ρ + 1/D_live`` — ``w² ≤ Σ r̃_i²`` and the
            statistical dimension is at most ``w² + 1``, so ``upper − p̂`` is tiny: ``p̂``
            *is* the upper end of the width bracket. Cosine: ``p*``.
        trace_lower: Crossing of the trace-only bound ``1/(1 + R² tr|H| / (2εD))``
            (Jensen): needs only the first moment, never above ``p̂``. ``None`` for cosine.
        curve: ``{"p": grid, "rho": ρ(R(p)), "R": R(p)}`` (cosine: ``{"p", "cos"}``).
        eps: Loss tolerance ``ε`` used (``None`` for cosine).
        zero_mass: Point mass at ``λ = 0`` (fraction of the remaining weights).
        p_hat_without_zero_mass: The same crossing with the point mass removed.
        spread: Standard deviation of ``p̂`` over SLQ seeds (``ddof=1``; NaN with one seed,
            0 for the deterministic cosine rule).
        p_hat_runs: ``p̂`` of each seed's measure alone.
        initial_sparsity: Fraction of prunable weights already zero in the input.
        num_weights: ``D``, size of the prunable set.
        settings: Everything needed to reproduce the number (spectral settings, ``ε``
            source, sample count, seeds, null-space method, trace estimates).
    """

    method: str
    p_hat: float
    lower: float
    upper: float
    trace_lower: float | None
    curve: dict[str, list[float]]
    eps: float | None
    zero_mass: float
    p_hat_without_zero_mass: float
    spread: float
    p_hat_runs: list[float]
    initial_sparsity: float
    num_weights: int
    settings: dict = field(default_factory=dict)

    @property
    def stderr(self) -> float:
        """Standard error of ``p̂`` from the seed spread: ``spread / sqrt(seeds)``."""
        n = len(self.p_hat_runs)
        return self.spread / math.sqrt(n) if n > 1 else float("nan")

    def to_dict(self) -> dict:
        """JSON-able dict (NaN becomes ``None``; NumPy scalars become floats)."""
        return _jsonable(asdict(self) | {"stderr": self.stderr})


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


Measure = SpectralMeasure | tuple[np.ndarray, np.ndarray]


def _pad_stack(measures: list[Measure]) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(runs_i, m_i)`` measures into one ``(Σ runs_i, max m)``; padding has weight 0."""
    pairs = [m.to_numpy() if isinstance(m, SpectralMeasure) else m for m in measures]
    arrs = [
        (np.atleast_2d(np.asarray(n, float)), np.atleast_2d(np.asarray(w, float))) for n, w in pairs
    ]
    m = max(a.shape[1] for a, _ in arrs)
    nodes = [np.pad(a, ((0, 0), (0, m - a.shape[1]))) for a, _ in arrs]
    wts = [np.pad(b, ((0, 0), (0, m - b.shape[1]))) for _, b in arrs]
    return np.concatenate(nodes), np.concatenate(wts)


def limit_from_measures(
    weights_flat,
    measures: list[Measure],
    eps: float,
    zero_mass: float = 0.0,
    *,
    curve_points: int = 1001,
    settings: dict | None = None,
) -> LimitEstimate:
    """Assemble a Gaussian-width :class:`LimitEstimate` from spectral measures.

    Args:
        weights_flat: All prunable weights (any shape; exact zeros = already pruned).
        measures: One :class:`~prunelab.curvature.SpectralMeasure` or ``(nodes, weights)``
            pair per SLQ seed, each ``(runs, m)`` (or ``(m,)``); the spectrum of the
            Hessian block of the remaining weights that are not in the null-space point
            mass. An exact spectrum: ``[(λ, full(1/D))]``.
        eps: Loss tolerance ``ε > 0``.
        zero_mass: Point mass at ``λ = 0`` as a fraction of the remaining weights.
        curve_points: Points of the reported curve on ``[0, 1]``.
        settings: Extra settings to record.

    Returns:
        The estimate; ``p̂`` uses all seeds' runs pooled (mean over runs), ``spread``
        the per-seed crossings.
    """
    if hasattr(weights_flat, "detach"):
        weights_flat = weights_flat.detach().to("cpu").double().numpy()
    w = np.asarray(weights_flat, dtype=np.float64).reshape(-1)
    live = w[w != 0]
    d, d_live = w.size, live.size
    p0 = 1.0 - d_live / d if d else 0.0
    if not measures:
        raise PrunelabError("no spectral measure given")
    if d_live == 0:
        raise PrunelabError("every prunable weight is already zero: nothing left to predict for")
    removed = cx.removed_norm_curve(live)
    nodes, wts = _pad_stack(measures)
    z = float(zero_mass)

    def total(q: float) -> float:  # removable fraction of the remaining → of the whole set
        return p0 + (1.0 - p0) * q

    q_hat = cx.crossing(removed, nodes, wts, eps, z)
    q_lower = cx.crossing(removed, nodes, wts, eps, z, scale=cx.GW_LOWER_FACTOR)
    q_upper = cx.solve_crossing(
        lambda q: float(cx.rho(removed(q), nodes, wts, eps, z)) + 1.0 / max(d_live, 1)
    )
    m_abs = cx.mean_abs_eigenvalue(nodes, wts)
    q_trace = cx.jensen_crossing(removed, m_abs, eps, z)
    q_no_zero = cx.crossing(removed, nodes, wts, eps, 0.0)
    per_seed = [total(cx.crossing(removed, *_pad_stack([m]), eps, z)) for m in measures]
    spread = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan")

    p_grid = np.linspace(0.0, 1.0, curve_points)
    q_grid = np.clip((p_grid - p0) / (1.0 - p0), 0.0, 1.0) if p0 < 1 else np.ones_like(p_grid)
    r_grid = removed(q_grid)
    rho_grid = total(cx.rho(r_grid, nodes, wts, eps, z))
    signed = (wts * nodes).sum(axis=1)  # per-run Hutchinson estimate of tr(H)/D
    info = {
        "num_weights_remaining": int(d_live),
        "mean_eigenvalue": float(signed.mean()),
        "mean_eigenvalue_stderr": (
            float(signed.std(ddof=1) / math.sqrt(signed.size)) if signed.size > 1 else None
        ),
        "mean_abs_eigenvalue": m_abs,
        "spectral_runs_pooled": int(nodes.shape[0]),
    }
    return LimitEstimate(
        method="gaussian-width",
        p_hat=total(q_hat),
        lower=total(q_lower),
        upper=total(q_upper),
        trace_lower=total(q_trace),
        curve={"p": p_grid.tolist(), "rho": rho_grid.tolist(), "R": r_grid.tolist()},
        eps=float(eps),
        zero_mass=z,
        p_hat_without_zero_mass=total(q_no_zero),
        spread=spread,
        p_hat_runs=per_seed,
        initial_sparsity=p0,
        num_weights=int(d),
        settings=info | dict(settings or {}),
    )


def estimate_from_measures(
    weights_flat,
    spectra: SeedMeasures,
    eps: float,
    zero_mass: float = 0.0,
    *,
    ritz: bool = False,
    curve_points: int = 1001,
    settings: dict | None = None,
) -> LimitEstimate:
    """Step 3 of :func:`~prunelab.limits.predict_limit`: crossings → :class:`LimitEstimate`.

    Args:
        weights_flat: All prunable weights (exact zeros = already pruned).
        spectra: The per-seed measures from step 2.
        eps: Loss tolerance ``ε > 0``.
        zero_mass: Point mass at ``λ = 0`` (fraction of the remaining weights).
        ritz: Move unresolved Ritz values into the point mass
            (:func:`~prunelab.curvature.ritz_deflate`); ``p_hat_without_zero_mass`` then
            uses the raw measures and ``zero_mass`` reports the moved mass.
        curve_points: Points of the reported curve.
        settings: Settings to record.

    Returns:
        The estimate, with ``settings["convergence"]`` (``p̂`` after ``m/2`` and ``m``
        steps) and, without ``ritz``, ``settings["quadrature_bracket"]``; a warning is
        logged when either moves ``p̂`` by more than :data:`CONVERGENCE_WARN`.
    """
    iters, half = spectra.num_iters, spectra.half_iters
    measures, halves, z_report = spectra.measures, spectra.halves, zero_mass
    if ritz:  # the unresolved mass sits at λ = 0 inside each run's measure
        measures, z_report = ritz_deflate(measures, iters)
        halves, _ = ritz_deflate(halves, half)
    est = limit_from_measures(
        weights_flat, measures, eps, zero_mass, curve_points=curve_points, settings=settings
    )
    if ritz:  # "without" = the raw SLQ measure, before moving Ritz mass to 0
        est.zero_mass = z_report
        est.p_hat_without_zero_mass = limit_from_measures(
            weights_flat, spectra.measures, eps, 0.0
        ).p_hat
    p_half = limit_from_measures(weights_flat, halves, eps, zero_mass, curve_points=2).p_hat
    est.settings["convergence"] = {"num_iters": [half, iters], "p_hat": [p_half, est.p_hat]}
    if spectra.brackets and not ritz:  # p̂ of Gauss m-1 and of anti-Gauss m, separately
        est.settings["quadrature_bracket"] = {
            name: limit_from_measures(
                weights_flat, [b[i] for b in spectra.brackets], eps, zero_mass, curve_points=2
            ).p_hat
            for i, name in enumerate(("gauss_m-1", "anti_gauss_m"))
        }
    gap = np.ptp(list(est.settings.get("quadrature_bracket", {0: 0.0}).values()))
    if max(abs(p_half - est.p_hat), gap) > CONVERGENCE_WARN:
        log.warning(
            "quadrature not converged: p_hat %.4f after %d Lanczos steps, %.4f after %d; "
            "Gauss/anti-Gauss gap %.4f (see settings); increase num_iters",
            p_half,
            half,
            est.p_hat,
            iters,
            gap,
        )
    return est
