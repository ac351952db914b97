"""The predicted pruning limit when the trained weights are scaled by ``α`` (paper 004).

Paper 004 names weight magnitude as one of the two factors of the limit ("the smaller
the weight magnitude, the [more prunable]"). The thought experiment: multiply the
trained weights by ``α`` while the **curvature is held fixed** (the same measure of the
GGN ``G`` and the same ``ε``). Then the removed norm scales, ``R_α(p) = α·R(p)``, and

    ρ_α(R(p)) = ∫ dμ(λ) / (1 + α² R(p)² λ / (2ε)),     p̂(α): ρ_α(R(p̂)) = p̂,

so ``α`` acts exactly like dividing ``ε`` by ``α²``. (Scaling a ReLU net's weights
really does change its function and curvature; holding ``G`` fixed isolates the
magnitude term, as 004's analysis does.)

Numerics — only predictions whose quadrature is certified:

* ``method="exact"``: the dense GGN (``D ≤`` :data:`EXACT_MAX_DIM`), its eigenvalues in
  float64; the measure is ``(1/D) Σ δ_λi`` and ``p_lower = p_upper`` is exact.
* ``method="lanczos"``: Rademacher probes, and per probe the Gauss (lower) and
  Gauss–Radau-at-0 (upper) rules of :mod:`prunelab.limits.certified`; Lanczos runs until
  the bracket is at most ``tolerance`` for **every** ``α`` (larger ``α`` probes ``f``
  closer to 0, where the bracket is widest) or ``max_iters`` is reached. Each point
  says whether it converged; an unconverged one is a bracket, not a number.

**Closed form beside it** (``p_trace``): the trace-only (sharpness) form of the limit,
``p = 1 / (1 + α² R(p)² m / (2ε))`` with ``m = tr(G)/D`` — the ``‖w* − w^k‖`` and
``Tr(H)`` form that the notes on 004 attribute to its bounds (paper text not
retrieved: its exact constants are unverified). By Jensen it is a lower bound of the
exact ``p̂(α)`` for every ``α`` (``m`` is exact for the exact method and the probes'
Hutchinson estimate, the Gauss rule's first moment, for Lanczos).

Example:
    >>> import numpy as np
    >>> from prunelab.limits._crossing import removed_norm_curve
    >>> r = removed_norm_curve(np.array([1.0, 2.0, 3.0]))
    >>> float(scaled_curve(r, 2.0).squared(1 / 3))  # (2·1)²
    4.0
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from prunelab._evaluate import loss_function
from prunelab.curvature import GGN, restrict_to_mask
from prunelab.curvature.estimate import probe_rows
from prunelab.curvature.lanczos import run_chains
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits._crossing import (
    RemovedNormCurve,
    crossing,
    jensen_crossing,
    removed_norm_curve,
)
from prunelab.limits._inputs import _prunable_weights, resolve_eps
from prunelab.limits.certified import (
    CHECK_EVERY,
    _chain_lengths,
    _measures,
    _padded,
    ggn_rank_bound,
)
from prunelab.prunable import PrunableSpec

DEFAULT_ALPHAS = (1.0, 2.0, 3.0, 4.0, 5.0)
#: Largest ``D`` for which ``method="auto"`` forms the dense GGN (``D²`` floats, ``eigh``).
EXACT_MAX_DIM = 4000
METHODS = ("auto", "exact", "lanczos")


@dataclass(frozen=True)
class ScaledLimit:
    """The predicted limit at one scale ``α``.

    Attributes:
        alpha: The weight scale.
        p_lower: Crossing of the lower bound of ``ρ_α`` (exact method: the exact value).
        p_upper: Crossing of the upper bound (exact method: the same value).
        p_trace: The trace-only closed form (≤ the exact limit).
    """

    alpha: float
    p_lower: float
    p_upper: float
    p_trace: float

    @property
    def p_mid(self) -> float:
        """Midpoint of the bracket."""
        return 0.5 * (self.p_lower + self.p_upper)

    @property
    def width(self) -> float:
        """``p_upper − p_lower``."""
        return self.p_upper - self.p_lower


@dataclass(frozen=True)
class WeightScaling:
    """Predicted limits ``p̂(α)`` of one model, curvature held fixed.

    Attributes:
        points: One :class:`ScaledLimit` per ``α``, in the order asked.
        method: ``"exact"`` or ``"lanczos"``.
        converged: Every point's bracket is at most ``tolerance`` wide.
        tolerance: The bracket width asked for.
        eps: Loss tolerance ``ε``.
        mean_eigenvalue: ``m = tr(G)/D`` behind ``p_trace``.
        dim: ``D``, prunable weights.
        num_examples: ``N`` in the GGN.
        num_iters: Lanczos steps taken (exact: ``D``).
        num_probes: Probes (exact: 0).
        rank_bound: ``N·(C−1)``; ``rank_deficient`` when ``D`` exceeds it, and then
            ``p̂(α) ≥ rho_floor = 1 − rank_bound/D`` for every ``α``.
        rank_deficient: See ``rank_bound``.
        rho_floor: See ``rank_bound`` (0 when not rank deficient), of the remaining weights.
        initial_sparsity: Fraction of the prunable set already zero (exact method only);
            the points are sparsities of the whole set, ``p0 + (1 − p0)·p̂_remaining``.
    """

    points: list[ScaledLimit]
    method: str
    converged: bool
    tolerance: float
    eps: float
    mean_eigenvalue: float
    dim: int
    num_examples: int
    num_iters: int
    num_probes: int
    rank_bound: int
    rank_deficient: bool
    rho_floor: float
    initial_sparsity: float = 0.0

    def to_dict(self) -> dict:
        """Plain dict (points as dicts with their midpoints)."""
        out = asdict(self)
        out["points"] = [{**asdict(p), "p_mid": p.p_mid} for p in self.points]
        return out


def scaled_curve(removed: RemovedNormCurve, alpha: float) -> RemovedNormCurve:
    """``R`` of the weights ``α·θ``: ``R_α(p)² = α² R(p)²`` (the same sort order)."""
    return RemovedNormCurve(removed.cumsum * float(alpha) ** 2)


def _check_alphas(alphas) -> list[float]:
    out = [float(a) for a in alphas] if isinstance(alphas, Sequence) else []
    if not out or not all(math.isfinite(a) and a > 0 for a in out):
        raise PrunelabError(f"alphas must be a non-empty list of numbers > 0, got {alphas!r}")
    return out


def scaled_limits(removed, lower, upper, eps: float, alphas, mean_eigenvalue: float):
    """The crossings of both bounds and of the trace form at every ``α`` (pure math).

    Args:
        removed: ``R(p)`` of the unscaled weights.
        lower: ``(nodes, weights)`` of the lower-bound measure, ``(runs, m)`` arrays.
        upper: The same for the upper bound (pass ``lower`` again for an exact measure).
        eps: Loss tolerance ``ε > 0``.
        alphas: Scales ``α > 0``.
        mean_eigenvalue: ``m = tr(G)/D ≥ 0`` of the trace form.

    Returns:
        ``list[ScaledLimit]``.
    """
    out = []
    for a in _check_alphas(alphas):
        r = scaled_curve(removed, a)
        out.append(ScaledLimit(a, crossing(r, *lower, eps), crossing(r, *upper, eps),
                               jensen_crossing(r, mean_eigenvalue, eps)))  # fmt: skip
    return out


def weight_scaling(
    model: nn.Module,
    data: DataBundle,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    *,
    method: str = "auto",
    eps: float | str | None = None,
    samples: int = 512,
    batch_size: int = 256,
    num_probes: int = 8,
    max_iters: int = 256,
    tolerance: float = 0.005,
    seed: int = 0,
    spec: PrunableSpec | None = None,
) -> WeightScaling:
    """``p̂(α)`` of the GGN limit with the weights scaled by each ``α`` (module docstring).

    Args:
        model: A trained network (not modified: a float64 copy is measured); dense for
            ``"lanczos"``; already pruned for ``"exact"`` means: the GGN block of the
            remaining weights, sparsities reported for the whole set.
        data: Its dataset (training split: the GGN and the default ``ε``).
        alphas: Weight scales ``α > 0``.
        method: ``"exact"``, ``"lanczos"`` or ``"auto"`` (exact when ``D ≤``
            :data:`EXACT_MAX_DIM` or the model is pruned).
        eps: Loss tolerance, or a rule name (as :func:`~prunelab.limits.predict_limit`).
        samples: Training examples in the GGN (the first ones).
        batch_size: Examples per product batch (memory only).
        num_probes: Lanczos: Rademacher probes.
        max_iters: Lanczos: step budget per probe.
        tolerance: Lanczos: stop when every ``α``'s bracket is at most this wide.
        seed: Lanczos: seed of the probes.
        spec: Prunable set.

    Returns:
        :class:`WeightScaling`.

    Raises:
        PrunelabError: Bad ``alphas`` / method / counts, or a pruned model for Lanczos.
    """
    alphas = _check_alphas(alphas)
    if method not in METHODS:
        raise PrunelabError(f"unknown method {method!r}; valid choices: {', '.join(METHODS)}")
    for name, value in (("samples", samples), ("num_probes", num_probes), ("max_iters", max_iters)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PrunelabError(f"{name} must be an integer >= 1, got {value!r}")
    if not 0 < tolerance < 1:
        raise PrunelabError(f"tolerance must be in (0, 1), got {tolerance!r}")
    work = copy.deepcopy(model).double().eval()
    loss_fn = loss_function(data)
    params, flat, live = _prunable_weights(work, spec)
    pruned = not bool(live.all())
    if pruned and method == "lanczos":
        raise PrunelabError(
            "weight_scaling with method 'lanczos' needs a dense model (some prunable weights "
            "are 0); method 'exact' predicts for the remaining weights"
        )
    eps_value, _ = resolve_eps(work, data, loss_fn, eps)
    batches = [
        (x.double(), y.double() if y.is_floating_point() else y)
        for x, y in data.batches("train", batch_size, shuffle=False, limit=samples)
    ]
    op = GGN(work, loss_fn, batches, params=list(params))
    keep = live.numpy()
    removed = removed_norm_curve(flat.numpy()[keep])
    dim = int(keep.sum())  # a pruned model: predicted for its remaining weights
    bound = ggn_rank_bound(op.num_examples, data.output_dim, data.task != "regression")
    if method == "auto":
        method = "exact" if pruned or op.dim <= EXACT_MAX_DIM else "lanczos"
    if method == "exact":
        # the block of the remaining weights only: D_live unit products, not D
        G = restrict_to_mask(op, live).to_dense().numpy()
        lam = np.clip(np.linalg.eigvalsh(G), 0.0, None)  # PSD round-off
        measure = (lam[None], np.full((1, lam.size), 1.0 / lam.size))
        mean = float(lam.mean())
        points = scaled_limits(removed, measure, measure, eps_value, alphas, mean)
        steps, probes = dim, 0
    else:
        points, steps, mean = _lanczos_points(op, removed, eps_value, alphas, num_probes,
                                              max_iters, tolerance, seed)  # fmt: skip
        probes = num_probes
    p0 = 1.0 - dim / op.dim  # already pruned: report sparsities of the whole set
    points = [ScaledLimit(q.alpha, p0 + (1 - p0) * q.p_lower, p0 + (1 - p0) * q.p_upper,
                          p0 + (1 - p0) * q.p_trace) for q in points]  # fmt: skip
    return WeightScaling(
        points=points, method=method, converged=all(p.width <= tolerance for p in points),
        tolerance=float(tolerance), eps=eps_value, mean_eigenvalue=mean,
        dim=dim, num_examples=op.num_examples, num_iters=steps, num_probes=probes,
        rank_bound=bound, rank_deficient=dim > bound,
        rho_floor=max(0.0, 1.0 - bound / dim), initial_sparsity=p0,
    )  # fmt: skip


def _lanczos_points(op, removed, eps, alphas, num_probes, max_iters, tolerance, seed):
    """Certified brackets at every ``α`` from one block of Lanczos chains.

    Returns:
        ``(points, steps taken, m)`` with ``m`` the probes' mean ``vᵀGv / D``.
    """
    steps = min(max_iters, op.dim)
    found: dict = {}

    def evaluate(alphas_np, betas_np, k):
        lower, upper = _measures(alphas_np, betas_np, _chain_lengths(alphas_np, betas_np, k), k)
        lo, hi = _padded(lower), _padded(upper)
        # Gauss integrates degree ≤ 2k−1 exactly: its first moment is each probe's vᵀGv/D
        mean = float((lo[0] * lo[1]).sum(axis=1).mean())
        found.update(k=k, mean=mean, points=scaled_limits(removed, lo, hi, eps, alphas, mean))

    def stop(j: int, a: torch.Tensor, b: torch.Tensor) -> bool:
        k = j + 1
        if k % CHECK_EVERY and k != steps:
            return False
        evaluate(a.numpy(), b.numpy(), k)
        return all(p.width <= tolerance for p in found["points"])

    starts = probe_rows(seed, 0, num_probes, op.dim, op.dtype, op.device)
    a, b, lengths, _, _ = run_chains(op, starts, steps, stop=stop)
    if not found or found["k"] != int(lengths.max()):
        evaluate(a.numpy(), b.numpy(), int(lengths.max()))
    return found["points"], found["k"], found["mean"]
