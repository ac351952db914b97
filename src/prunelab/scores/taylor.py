"""Taylor-expansion criteria of paper 001: ``taylor1`` (LM), ``obd`` and ``taylor2`` (QM).

Zeroing weight ``i`` (``Δθ = −θ_i e_i``) changes the loss by
``ΔL_i ≈ −g_i θ_i + ½ c_i θ_i²`` with ``g`` the mean gradient and ``c`` a curvature
diagonal (see :mod:`prunelab.scores._curvature_diag`). The scores, higher = keep:

* ``taylor1``: ``|g_i θ_i|``;
* ``obd``: ``½ c_i θ_i²`` (negative ``c_i`` clamped at 0 by default);
* ``taylor2``: ``|−g_i θ_i + ½ c_i θ_i²|`` (sign of ``c_i`` kept inside ``|·|`` by
  default); ``first_order_sign="plus"`` gives paper 002's ``|+gθ + ½cθ²|``, for
  reproduction only.

Each accepts paper 001's locality ``λ``: ``score + ½ λ θ_i²`` (``λ → ∞`` ranks like
magnitude). Scores use the model in its current mode, which must be deterministic
(``eval()`` if it has BatchNorm or an active Dropout) for the gradient and the curvature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunelab.scores._common import (
    FIRST_ORDER_SIGNS,
    LossFn,
    add_locality,
    check_choice,
    check_int,
    check_nonneg,
    check_positive,
    mean_gradient,
    require_params,
)
from prunelab.scores._curvature_diag import (
    CURVATURES,
    NEGATIVE_CURVATURE,
    curvature_diagonal,
)
from prunelab.scores.base import CRITERIA, Criterion

log = logging.getLogger(__name__)


def _check_common(hp) -> None:
    """Checks shared by every Taylor-family hparams dataclass."""
    check_positive(hp.temperature, "temperature")
    check_nonneg(hp.locality, "locality")


def _check_curvature(hp, curvatures=CURVATURES) -> None:
    """Checks for the hparams of a criterion with a curvature diagonal."""
    _check_common(hp)
    check_choice(hp.curvature, "curvature", curvatures)
    check_choice(hp.negative_curvature, "negative_curvature", NEGATIVE_CURVATURE)
    check_int(hp.num_probes, "num_probes", 2)
    check_int(hp.seed, "seed", 0)


@dataclass(frozen=True)
class Taylor1Hparams:
    """Hyper-parameters of ``taylor1`` (``|gθ|``).

    Attributes:
        temperature: Outputs are divided by ``T`` before the loss; 1 = the plain loss.
        locality: ``λ >= 0`` of the ``½λθ²`` term (paper 001); 0 = the raw score.
    """

    temperature: float = 1.0
    locality: float = 0.0

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass(frozen=True)
class ObdHparams:
    """Hyper-parameters of ``obd`` (``½cθ²``).

    Attributes:
        curvature: ``exact`` | ``hutchinson`` | ``empirical-fisher`` | ``fisher``;
            default ``fisher`` (true Fisher = GGN, paper 001's choice: PSD, no noise).
        num_probes: Hutchinson probes; 10 as in paper 002 (>= 2 for a standard error).
        seed: Hutchinson probe seed (same seed → same scores).
        negative_curvature: ``clamp`` (default: a negative estimate cannot make a weight
            less important than 0) | ``keep`` (paper 002's signed HP) | ``abs``.
        temperature: Outputs are divided by ``T`` before the loss; 1 = the plain loss.
        locality: ``λ >= 0`` of the ``½λθ²`` term; 0 = the raw score.
    """

    curvature: str = "fisher"
    num_probes: int = 10
    seed: int = 0
    negative_curvature: str = "clamp"
    temperature: float = 1.0
    locality: float = 0.0

    def __post_init__(self) -> None:
        _check_curvature(self)


@dataclass(frozen=True)
class Taylor2Hparams:
    """Hyper-parameters of ``taylor2`` (``|−gθ + ½cθ²|``).

    Attributes:
        curvature: ``exact`` | ``hutchinson`` | ``empirical-fisher`` | ``fisher``;
            default ``fisher`` (paper 001's QM).
        num_probes: Hutchinson probes; 10 as in paper 002.
        seed: Hutchinson probe seed.
        negative_curvature: ``keep`` (default: inside ``|·|`` the sign of ``c`` matters
            for how the two terms combine) | ``clamp`` | ``abs``.
        first_order_sign: ``minus`` (default, the true Taylor change) | ``plus``
            (paper 002's FTS/HTS code, for reproduction only).
        temperature: Outputs are divided by ``T`` before the loss; 1 = the plain loss.
        locality: ``λ >= 0`` of the ``½λθ²`` term, added outside ``|·|`` as in 001.
    """

    curvature: str = "fisher"
    num_probes: int = 10
    seed: int = 0
    negative_curvature: str = "keep"
    first_order_sign: str = "minus"
    temperature: float = 1.0
    locality: float = 0.0

    def __post_init__(self) -> None:
        _check_curvature(self)
        check_choice(self.first_order_sign, "first_order_sign", FIRST_ORDER_SIGNS)


def first_order_scores(
    model: nn.Module, params: dict, batches: list, loss_fn: LossFn, temperature: float
) -> dict[str, Tensor]:
    """``|g_i θ_i|`` with ``g`` the mean gradient of the (tempered) loss."""
    g = mean_gradient(model, params, batches, loss_fn, temperature)
    return {n: (g[n] * p.detach()).abs() for n, p in params.items()}


def second_order_scores(
    model: nn.Module,
    params: dict,
    batches: list,
    loss_fn: LossFn,
    *,
    curvature: str,
    num_probes: int,
    seed: int,
    negative_curvature: str,
    temperature: float,
    first_order_sign: str | None,
) -> dict[str, Tensor]:
    """``½ c θ²`` (``first_order_sign=None``) or ``|∓g θ + ½ c θ²|``, without locality.

    Args:
        model: The network (deterministic for curvature).
        params: Prunable ``{name: Parameter}``.
        batches: ``(x, y)`` pairs.
        loss_fn: Mean-reduced loss.
        curvature: Which curvature diagonal (see ``_curvature_diag``).
        num_probes: Hutchinson probes.
        seed: Hutchinson seed.
        negative_curvature: ``clamp`` | ``keep`` | ``abs``.
        temperature: Logit temperature for both ``g`` and ``c``.
        first_order_sign: ``None`` (OBD), ``"minus"`` or ``"plus"``.

    Returns:
        ``{name: score}`` shaped like the parameters.
    """
    diag = curvature_diagonal(
        model,
        params,
        batches,
        loss_fn,
        curvature,
        num_probes=num_probes,
        seed=seed,
        temperature=temperature,
        negative_curvature=negative_curvature,
    )
    if diag.negative_fraction > 0:
        log.info(
            "%s curvature diagonal: %.2f%% negative entries (rule: %s)",
            curvature,
            100 * diag.negative_fraction,
            negative_curvature,
        )
    if diag.stderr is not None:
        # Scores have no slot for uncertainty; the estimator's noise level is logged.
        se = torch.cat([v.reshape(-1) for v in diag.stderr.values()])
        val = torch.cat([v.reshape(-1) for v in diag.values.values()])
        log.info(
            "hutchinson diagonal (%d probes, seed %d): median stderr %.3g, median |c| %.3g",
            num_probes,
            seed,
            float(se.median()),
            float(val.abs().median()),
        )
    quad = {n: 0.5 * diag.values[n] * p.detach() ** 2 for n, p in params.items()}
    if first_order_sign is None:
        return quad
    g = mean_gradient(model, params, batches, loss_fn, temperature)
    sign = -1.0 if first_order_sign == "minus" else 1.0
    return {n: (sign * g[n] * p.detach() + quad[n]).abs() for n, p in params.items()}


def _taylor1(model, params, batches, loss_fn, hp: Taylor1Hparams):
    require_params(params)
    scores = first_order_scores(model, params, batches, loss_fn, hp.temperature)
    return add_locality(scores, params, hp.locality)


def _curvature_score(model, params, batches, loss_fn, hp: ObdHparams | Taylor2Hparams):
    """``obd`` (no first-order term) and ``taylor2`` share everything but ``g θ``."""
    require_params(params)
    scores = second_order_scores(
        model,
        params,
        batches,
        loss_fn,
        curvature=hp.curvature,
        num_probes=hp.num_probes,
        seed=hp.seed,
        negative_curvature=hp.negative_curvature,
        temperature=hp.temperature,
        first_order_sign=getattr(hp, "first_order_sign", None),
    )
    return add_locality(scores, params, hp.locality)


CRITERIA.add("taylor1", Criterion("taylor1", _taylor1, Taylor1Hparams, True, "|g θ| (001 LM)"))
CRITERIA.add(
    "obd",
    Criterion("obd", _curvature_score, ObdHparams, True, "½ c θ², c = curvature diagonal (OBD)"),
)
CRITERIA.add(
    "taylor2",
    Criterion(
        "taylor2", _curvature_score, Taylor2Hparams, True, "|−g θ + ½ c θ²| (001 QM, 002 FTS/HTS)"
    ),
)
