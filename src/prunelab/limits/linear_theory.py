"""Pruning a linear least-squares fit: closed-form excess risk and a simulator (paper 000).

Model: ``y = xᵀβ* + ε``, ``x ~ N(0, Σ)``, ``ε ~ N(0, σ²)``. The population risk of any
``β`` is ``R(β) = E(y − xᵀβ)² = (β − β*)ᵀ Σ (β − β*) + σ²``. Removing the coordinates
in a set ``S`` from an estimate ``β̂`` (``β̂ → β̂ − P_S β̂``) raises it by exactly

    ΔR_S = β̂_Sᵀ Σ_SS β̂_S + 2 β̂_Sᵀ [Σ(β* − β̂)]_S

(expand ``R`` around ``β̂`` with the step ``−P_S β̂``). Note the **plus** sign: methods.md
§4.3 and the importance notes write ``− 2 β̂_Sᵀ[Σ(β* − β̂)]_S``, which is the same
expression with ``(β̂ − β*)``; a one-dimensional check (``Σ = 1, β* = 1, β̂ = 2``:
removing ``β̂`` leaves the risk at ``1``, so ``ΔR = 0 = 4 + 2·2·(1 − 2)``) fixes the sign,
and the tests compare the formula with ``R(β̂ − P_Sβ̂) − R(β̂)`` and with Monte Carlo.

Near the population optimum the cross term vanishes and importance is the covariance-
scaled magnitude ``Σ_ii β̂_i²`` (diagonal ``Σ``). The simulator fits least squares or
ridge on ``synthetic-linear`` data and prunes by

* ``magnitude``: ``|β̂_i|``;
* ``cov_scaled``: ``Σ_ii β̂_i²`` with the population ``Σ`` (oracle covariance);
* ``hessian``: ``½ H_ii β̂_i²`` with ``H = 2 X̂ᵀX̂ / n``, the exact Hessian of the
  empirical squared loss (OBD; what a practitioner can compute).

For each prune it reports the closed-form excess risk and a Monte-Carlo estimate on
fresh test samples (paired differences, with a standard error), mean ± s.e. over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from prunelab.data import load
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.masks import Mask

METHODS = ("magnitude", "cov_scaled", "hessian")


def population_risk(
    beta: Tensor, beta_star: Tensor, covariance: Tensor, noise_std: float = 0.0
) -> float:
    """``(β − β*)ᵀ Σ (β − β*) + σ²``, the expected test MSE of ``β``.

    Example:
        >>> population_risk(torch.tensor([0.0]), torch.tensor([1.0]), torch.eye(1), 0.5)
        1.25
    """
    e = (beta - beta_star).double()
    return float(e @ covariance.double() @ e) + float(noise_std) ** 2


def pruning_excess_risk(
    beta_hat: Tensor, beta_star: Tensor, covariance: Tensor, removed: Tensor
) -> float:
    """Closed-form ``R(β̂ − P_S β̂) − R(β̂) = β̂_SᵀΣ_SSβ̂_S + 2 β̂_Sᵀ[Σ(β* − β̂)]_S``.

    Args:
        beta_hat: Fitted coefficients ``(D,)``.
        beta_star: True coefficients ``(D,)``.
        covariance: Population input covariance ``Σ`` ``(D, D)``.
        removed: Bool ``(D,)``, True for the coordinates in ``S``.

    Returns:
        The increase of the population risk (can be negative when ``β̂_S`` was noise).

    Example:
        >>> pruning_excess_risk(torch.tensor([2.0]), torch.tensor([1.0]), torch.eye(1),
        ...                     torch.tensor([True]))
        0.0
    """
    b, bs, cov = beta_hat.double(), beta_star.double(), covariance.double()
    s = removed.to(torch.bool)
    b_s = b[s]
    quad = b_s @ cov[s][:, s] @ b_s
    cross = b_s @ (cov @ (bs - b))[s]
    return float(quad + 2.0 * cross)


def fit_linear(x: Tensor, y: Tensor, ridge: float = 0.0) -> Tensor:
    """Least squares (minimum-norm when ``D > n``) or ridge, ``min (1/n)‖y − Xβ‖² + ridge·‖β‖²``.

    Returns:
        ``β̂`` of shape ``(D,)`` in float64.
    """
    x, y = x.double(), y.double().reshape(-1)
    if ridge < 0 or not math.isfinite(ridge):
        raise PrunelabError(f"ridge must be a finite number >= 0, got {ridge!r}")
    if ridge == 0:
        return torch.linalg.lstsq(x, y[:, None], driver="gelsd").solution[:, 0]
    n, d = x.shape
    return torch.linalg.solve(x.T @ x / n + ridge * torch.eye(d, dtype=x.dtype), x.T @ y / n)


def linear_scores(method: str, beta_hat: Tensor, covariance: Tensor, x_train: Tensor) -> Tensor:
    """Importance of each coefficient under ``method`` (higher = keep), shape ``(D,)``."""
    if method == "magnitude":
        return beta_hat.abs()
    if method == "cov_scaled":
        return covariance.double().diagonal() * beta_hat**2
    if method == "hessian":
        x = x_train.double()
        return 0.5 * (2.0 * (x * x).mean(0)) * beta_hat**2
    raise PrunelabError(f"unknown method {method!r}; valid choices: {', '.join(METHODS)}")


def prune_coefficients(scores: Tensor, sparsity: float) -> Tensor:
    """Bool ``(D,)``: True for the ``D − round((1−p)·D)`` coefficients removed (lowest scores)."""
    mask = Mask.from_scores({"beta": scores}, sparsity, min_per_layer=0)
    return ~mask.masks["beta"]


def monte_carlo_excess(
    beta: Tensor,
    beta_hat: Tensor,
    beta_star: Tensor,
    covariance: Tensor,
    noise_std: float,
    n: int,
    seed: int,
) -> tuple[float, float]:
    """Simulated ``R(β) − R(β̂)`` on ``n`` fresh samples: mean and standard error.

    The two squared errors are evaluated on the *same* samples (paired differences), so
    the estimate is far less noisy than two independent test-risk estimates.
    """
    gen = np.random.default_rng([int(seed), 0x5EED])
    chol = np.linalg.cholesky(covariance.double().numpy())
    x = torch.from_numpy(gen.standard_normal((n, chol.shape[0])) @ chol.T)
    y = x @ beta_star.double() + noise_std * torch.from_numpy(gen.standard_normal(n))
    diff = (y - x @ beta.double()) ** 2 - (y - x @ beta_hat.double()) ** 2
    return float(diff.mean()), float(diff.std(unbiased=True) / math.sqrt(n))


@dataclass
class LinearPruningStudy:
    """Result of :func:`simulate_linear_pruning`.

    Attributes:
        settings: The simulation settings.
        per_seed: One row per (seed, method, sparsity): ``risk`` (closed-form population
            risk of the pruned fit), ``excess_closed``, ``excess_sim``, ``excess_sim_se``,
            ``z`` (= (closed − simulated) / s.e.), ``kept``, plus ``dense_risk``.
        summary: One row per (method, sparsity): mean and standard error over seeds of
            ``risk``, ``excess_closed`` and ``excess_sim``, and ``max_abs_z``.
    """

    settings: dict
    per_seed: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"settings": self.settings, "per_seed": self.per_seed, "summary": self.summary}


def _mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    se = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else float("nan")
    return float(a.mean()), se


def simulate_linear_pruning(
    sparsities: Sequence[float],
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    *,
    methods: Sequence[str] = METHODS,
    scales: str | list[float] = "heterogeneous",
    dim: int = 50,
    n_train: int = 200,
    noise_std: float = 1.0,
    teacher: str = "dense",
    ridge: float = 0.0,
    n_mc: int = 20_000,
) -> LinearPruningStudy:
    """Compare magnitude, covariance-scaled and Hessian pruning of a linear fit.

    Args:
        sparsities: Fractions of coefficients removed, each in ``[0, 1)``.
        seeds: Data seeds (teacher, training set, Monte-Carlo samples).
        methods: Subset of :data:`METHODS`.
        scales: Feature scales of ``synthetic-linear`` (``heterogeneous``, ``equal``, list).
        dim: Number of features ``D``.
        n_train: Training examples ``n``.
        noise_std: Label noise ``σ``.
        teacher: ``dense`` or ``sparse`` ``β*``.
        ridge: Ridge coefficient (0 = least squares).
        n_mc: Fresh samples per Monte-Carlo estimate.

    Returns:
        The :class:`LinearPruningStudy`.
    """
    sparsities = [check_sparsity(p) for p in sparsities]
    for m in methods:
        if m not in METHODS:
            raise PrunelabError(f"unknown method {m!r}; valid choices: {', '.join(METHODS)}")
    if not seeds:
        raise PrunelabError("seeds is empty; give at least one seed")
    settings = dict(
        scales=scales if isinstance(scales, str) else list(scales),
        dim=dim,
        n_train=n_train,
        noise_std=noise_std,
        teacher=teacher,
        ridge=ridge,
        n_mc=n_mc,
        seeds=list(seeds),
    )
    study = LinearPruningStudy(settings)
    for seed in seeds:
        data = load(
            "synthetic-linear",
            seed,
            scales=scales,
            dim=dim,
            n_train=n_train,
            n_test=1,
            noise_std=noise_std,
            teacher=teacher,
        )
        info = data.info
        x, y = data.train
        beta_hat = fit_linear(x, y, ridge)
        dense = population_risk(beta_hat, info["beta_star"], info["covariance"], noise_std)
        for method in methods:
            scores = linear_scores(method, beta_hat, info["covariance"], x)
            for p in sparsities:
                removed = prune_coefficients(scores, p)
                pruned = torch.where(removed, torch.zeros_like(beta_hat), beta_hat)
                closed = pruning_excess_risk(
                    beta_hat, info["beta_star"], info["covariance"], removed
                )
                sim, se = monte_carlo_excess(
                    pruned, beta_hat, info["beta_star"], info["covariance"], noise_std, n_mc, seed
                )
                study.per_seed.append(
                    dict(
                        seed=seed,
                        method=method,
                        sparsity=p,
                        kept=int((~removed).sum()),
                        dense_risk=dense,
                        risk=dense + closed,
                        excess_closed=closed,
                        excess_sim=sim,
                        excess_sim_se=se,
                        z=(closed - sim) / se if se > 0 else 0.0,
                    )
                )
    for method in methods:
        for p in sparsities:
            rows = [r for r in study.per_seed if r["method"] == method and r["sparsity"] == p]
            row = {"method": method, "sparsity": p}
            for key in ("risk", "excess_closed", "excess_sim"):
                row[f"{key}_mean"], row[f"{key}_se"] = _mean_se([r[key] for r in rows])
            row["max_abs_z"] = max(abs(r["z"]) for r in rows)
            study.summary.append(row)
    return study
