"""A certified spectral limit: Gauss and Gauss–Radau bounds on the GGN's ``ρ(R)``.

Paper 004's removable fraction ``ρ(R) = (1/D) tr f(G)`` with ``f(λ) = 1/(1 + R²λ/(2ε))``
is estimated by Hutchinson probes ``v`` and, per probe, ``vᵀ f(G) v`` by Lanczos
quadrature. Plain SLQ gives one number that moves with the number of Lanczos steps
``m`` (the audit of the limits issue measured p̂ swinging by 0.2–0.3 on ``lenet300``).
For the **GGN**, which is positive semi-definite, ``f``'s derivatives alternate in sign
on ``[0, ∞)``, so per probe the ``m``-point **Gauss** rule is a lower bound and the
**Gauss–Radau** rule with a node at 0 an upper bound (Golub & Meurant 2010, Thm. 6.4):
the crossing ``ρ(R(p)) = p`` then has a bracket ``[p_lower, p_upper]`` that holds at
every ``m`` for these probes (float64 throughout), and Lanczos runs until it is narrower
than ``tolerance`` or ``max_iters`` is reached. The probe standard error (the other,
stochastic, error) is reported beside it, from the delta method at the midpoint.

Rank deficiency: the GGN of ``N`` examples with ``C`` softmax outputs has rank at most
``N·(C−1)`` (``N·T·(V−1)`` for a language model's ``T`` next-token softmaxes over ``V``
tokens; ``N·C`` for squared error), so when ``D`` exceeds that, ``ρ ≥ 1 − rank/D``
whatever ``ε`` is and the prediction says little about the network: it is flagged.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from prunelab.curvature import GGN
from prunelab.curvature.estimate import probe_rows
from prunelab.curvature.lanczos import run_chains
from prunelab.curvature.quadrature import gauss_radau_rule, gauss_rule
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits._crossing import crossing, removed_norm_curve, rho
from prunelab.limits._inputs import _prunable_weights, resolve_eps
from prunelab.prunable import PrunableSpec
from prunelab.train import loss_function

#: Lanczos steps between two bracket checks
CHECK_EVERY = 8


@dataclass(frozen=True)
class CertifiedLimit:
    """The GGN spectral limit with a quadrature bracket and a probe standard error.

    Attributes:
        p_lower: Crossing of the Gauss (lower) bound of ``ρ`` for these probes.
        p_upper: Crossing of the Gauss–Radau (upper) bound.
        p_mid: Their midpoint.
        stderr: Probe standard error of the crossing (delta method at ``p_mid``).
        converged: ``p_upper − p_lower <= tolerance`` was reached.
        num_iters: Lanczos steps taken per probe.
        num_probes: Hutchinson probes.
        eps: Loss tolerance used.
        dim: ``D`` (prunable weights still non-zero).
        num_examples: ``N`` examples in the GGN.
        rank_bound: ``N·(C−1)`` (or ``N·C``): the GGN's largest possible rank.
        rank_deficient: ``D > rank_bound``.
        rho_floor: ``1 − rank_bound/D`` when rank deficient (``ρ`` and ``p̂`` are at
            least this whatever ``ε``), else 0.
    """

    p_lower: float
    p_upper: float
    p_mid: float
    stderr: float
    converged: bool
    num_iters: int
    num_probes: int
    eps: float
    dim: int
    num_examples: int
    rank_bound: int
    rank_deficient: bool
    rho_floor: float

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)


def ggn_rank_bound(num_examples: int, num_outputs: int, classification: bool = True) -> int:
    """Largest rank of a GGN of ``N`` examples: ``N·(C−1)`` for softmax, ``N·C`` otherwise.

    Example:
        >>> ggn_rank_bound(512, 10)
        4608
    """
    per_example = num_outputs - 1 if classification else num_outputs
    return int(num_examples) * max(int(per_example), 1)


def _measures(alphas, betas, lengths, k: int) -> tuple[list, list]:
    """Per-probe Gauss (lower) and Gauss–Radau at 0 (upper) rules after ``k`` steps.

    A chain that broke down before ``k`` spans an invariant subspace: its Gauss rule is
    exact, and serves as both bounds. Nodes are clipped at 0 (round-off of a PSD
    operator), each rule as ``(nodes (1, n), weights (1, n))``.
    """
    lower, upper = [], []
    for r in range(alphas.shape[0]):
        n = min(k, int(lengths[r]))
        lo = gauss_rule(alphas[r], betas[r], n)
        hi = gauss_radau_rule(alphas[r], betas[r], n, 0.0) if n == k else lo
        lower.append(tuple(np.clip(v, 0.0, None)[None] for v in lo))
        upper.append(tuple(np.clip(v, 0.0, None)[None] for v in hi))
    return lower, upper


def _padded(rules: list) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-probe rules into ``(probes, width)`` arrays (zero-weight padding)."""
    width = max(n.shape[1] for n, _ in rules)
    nodes, weights = np.zeros((len(rules), width)), np.zeros((len(rules), width))
    for i, (n, w) in enumerate(rules):
        nodes[i, : n.shape[1]], weights[i, : w.shape[1]] = n[0], w[0]
    return nodes, weights


def _chain_lengths(alphas: np.ndarray, betas: np.ndarray, k: int) -> np.ndarray:
    """Steps each chain took by step ``k`` (a chain that broke down stops early)."""
    taken = (alphas[:, :k] != 0) | (betas[:, :k] != 0)
    return np.array([int(np.nonzero(row)[0].max()) + 1 if row.any() else 0 for row in taken])


def _stderr(removed, lower: list, upper: list, eps: float, p: float) -> float:
    """Delta-method s.e. of the crossing: s.e. over probes of ``ρ(R(p))`` / the slope.

    Each probe's ``ρ`` is the midpoint of its two bounds; the slope is that of the mean
    ``ρ(R(p)) − p`` at ``p`` (central difference).
    """
    if len(lower) < 2:
        return math.nan

    def per_probe(q: float) -> np.ndarray:
        r = removed(q)
        return np.array([0.5 * (float(rho(r, *lo, eps)) + float(rho(r, *hi, eps)))
                         for lo, hi in zip(lower, upper, strict=True)])  # fmt: skip

    h = 1e-4
    values = per_probe(p)
    slope = (per_probe(min(p + h, 1.0)).mean() - per_probe(max(p - h, 0.0)).mean()) / (2 * h)
    return float(values.std(ddof=1) / math.sqrt(len(values)) / max(abs(slope - 1.0), 1e-12))


def certified_limit(
    model: nn.Module,
    data: DataBundle,
    *,
    eps: float | str | None = None,
    samples: int = 512,
    batch_size: int = 256,
    num_probes: int = 8,
    max_iters: int = 256,
    tolerance: float = 0.005,
    seed: int = 0,
    spec: PrunableSpec | None = None,
) -> CertifiedLimit:
    """The GGN spectral limit of ``model`` with a Gauss / Gauss–Radau bracket, in float64.

    Args:
        model: A trained network (not modified: a float64 copy is measured).
        data: Its dataset (training split: curvature and the default ``ε``).
        eps: Loss tolerance, or a rule name (as :func:`~prunelab.limits.predict_limit`).
        samples: Training examples in the GGN (the first ones).
        batch_size: Examples per product batch (memory only).
        num_probes: Rademacher probes (chains run as one block).
        max_iters: Lanczos steps budget per probe.
        tolerance: Stop when ``p_upper − p_lower`` is at most this (0.005 = 0.5 point).
        seed: Seed of the probes.
        spec: Prunable set.

    Returns:
        :class:`CertifiedLimit`.

    Raises:
        PrunelabError: Bad settings, or nothing left to prune.
    """
    for name, value, lo in (("samples", samples, 1), ("num_probes", num_probes, 1),
                            ("max_iters", max_iters, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise PrunelabError(f"{name} must be an integer >= {lo}, got {value!r}")
    if not (0 < tolerance < 1):
        raise PrunelabError(f"tolerance must be in (0, 1), got {tolerance!r}")
    work = copy.deepcopy(model).double().eval()
    loss_fn = loss_function(data)
    params, flat, live = _prunable_weights(work, spec)
    if not bool(live.all()):
        raise PrunelabError("certified_limit needs a dense model (some prunable weights are 0)")
    eps_value, _ = resolve_eps(work, data, loss_fn, eps)
    batches = [
        (x.double(), y.double() if y.is_floating_point() else y)
        for x, y in data.batches("train", batch_size, shuffle=False, limit=samples)
    ]
    op = GGN(work, loss_fn, batches, params=list(params))
    removed = removed_norm_curve(flat.double().numpy())
    n = sum(int(y.shape[0]) for _, y in batches)
    # a language model has T softmax outputs per example: N·T·(V−1)
    positions = int(data.input_shape[0]) if data.task == "language-model" else 1
    bound = ggn_rank_bound(n * positions, data.output_dim, data.task != "regression")
    steps = min(max_iters, op.dim)
    found: dict = {}

    def stop(j: int, alphas: torch.Tensor, betas: torch.Tensor) -> bool:
        k = j + 1
        if k % CHECK_EVERY and k != steps:
            return False
        a, b = alphas.numpy(), betas.numpy()
        lower, upper = _measures(a, b, _chain_lengths(a, b, k), k)
        p_lo = crossing(removed, *_padded(lower), eps_value)
        p_hi = crossing(removed, *_padded(upper), eps_value)
        found.update(k=k, lower=lower, upper=upper, p=(p_lo, p_hi))
        return p_hi - p_lo <= tolerance

    starts = probe_rows(seed, 0, num_probes, op.dim, op.dtype, op.device)
    alphas, betas, lengths, _, _ = run_chains(op, starts, steps, stop=stop)
    if not found or found["k"] != int(lengths.max()):
        k = int(lengths.max())
        lower, upper = _measures(alphas.numpy(), betas.numpy(), lengths.numpy(), k)
        found.update(k=k, lower=lower, upper=upper, p=(
            crossing(removed, *_padded(lower), eps_value),
            crossing(removed, *_padded(upper), eps_value)))  # fmt: skip
    p_lo, p_hi = found["p"]
    mid = 0.5 * (p_lo + p_hi)
    return CertifiedLimit(
        p_lower=p_lo, p_upper=p_hi, p_mid=mid,
        stderr=_stderr(removed, found["lower"], found["upper"], eps_value, mid),
        converged=p_hi - p_lo <= tolerance, num_iters=found["k"], num_probes=num_probes,
        eps=eps_value, dim=op.dim, num_examples=n, rank_bound=bound,
        rank_deficient=op.dim > bound, rho_floor=max(0.0, 1.0 - bound / op.dim),
    )  # fmt: skip
