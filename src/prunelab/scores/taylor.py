"""Taylor-expansion criteria of paper 001: ``taylor1`` (LM), ``obd`` and ``taylor2`` (QM).

Zeroing weight ``i`` (``Δθ = −θ_i e_i``) changes the loss by
``ΔL_i ≈ −g_i θ_i + ½ c_i θ_i²`` with ``g`` the mean gradient and ``c`` a curvature
diagonal (see :mod:`prunelab.scores._curvature_diag`). The scores, higher = keep:

* ``taylor1``: ``|g_i θ_i|``;
* ``obd``: ``½ c_i θ_i²`` (negative ``c_i`` clamped at 0 by default; scores that are
  exactly 0 are ordered by ``|θ_i|``, see :func:`break_zero_ties`);
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


#: how ``obd`` orders weights whose score is exactly 0
TIE_BREAKS = ("magnitude", "position")


def break_zero_ties(scores: dict[str, Tensor], params: dict) -> tuple[dict[str, Tensor], int]:
    """Order the weights whose score is exactly 0 by ``|θ|``, below every positive score.

    With a clamped Hutchinson diagonal many weights score exactly ``0`` (on fc5 / digits
    with 8 probes, 59 % of them), and the mask among them would be decided by parameter
    order (:meth:`~prunelab.masks.Mask.from_scores` keeps the earlier position). Here each
    such weight scores ``½ s_min · |θ_i| / max_0 |θ|`` instead, with ``s_min`` the smallest
    positive score over all layers and ``max_0`` over the zero-scored weights: every
    positive score and its order are unchanged, the zero-scored weights rank below them,
    larger ``|θ|`` first (the ``λ → 0⁺`` limit of paper 001's locality term ``½λθ²``).
    A weight with ``θ = 0`` keeps 0. Masks stay exact and deterministic (remaining exact
    ties, e.g. equal ``|θ|``, still go by position).

    Args:
        scores: ``name -> score`` (higher = keep), all ``>= 0`` where it matters.
        params: The parameters the scores belong to.

    Returns:
        ``(new scores, number of weights that scored exactly 0 with θ ≠ 0)``.

    Example:
        >>> sc = {"w": torch.tensor([0.0, 2.0, 0.0, 1.0])}
        >>> theta = {"w": torch.tensor([0.5, 1.0, -3.0, 1.0])}
        >>> new, n = break_zero_ties(sc, theta)
        >>> new["w"].tolist(), n
        ([0.0833333358168602, 2.0, 0.5, 1.0], 2)
    """
    zero = {n: (v == 0) & (params[n].detach() != 0) for n, v in scores.items()}
    count = sum(int(z.sum()) for z in zero.values())
    if count == 0:
        return scores, 0
    positive = [v[v > 0] for v in scores.values()]
    positive = torch.cat([p.reshape(-1).double() for p in positive])
    s_min = float(positive.min()) if positive.numel() else 1.0
    big = max(float(params[n].detach()[z].abs().max()) for n, z in zero.items() if z.any())
    out = {}
    for n, v in scores.items():
        tied = params[n].detach().abs().to(v.dtype) * (0.5 * s_min / big)
        out[n] = torch.where(zero[n], tied, v)
    return out, count


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
        tie_break: How weights whose final score is exactly 0 are ordered:
            ``magnitude`` (default: larger ``|θ|`` kept first, all below every positive
            score; see :func:`break_zero_ties`) | ``position`` (raw ``½cθ²``; the mask
            among them follows parameter order, the behaviour before this option). With
            Hutchinson curvature and ``clamp`` a large share of weights score exactly 0
            (59 % on fc5 / digits with 8 probes), so below that sparsity ``position``
            prunes by parameter order.
    """

    curvature: str = "fisher"
    num_probes: int = 10
    seed: int = 0
    negative_curvature: str = "clamp"
    temperature: float = 1.0
    locality: float = 0.0
    tie_break: str = "magnitude"

    def __post_init__(self) -> None:
        _check_curvature(self)
        check_choice(self.tie_break, "tie_break", TIE_BREAKS)


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
    scores = add_locality(scores, params, hp.locality)
    if getattr(hp, "tie_break", "position") == "magnitude":
        scores, tied = break_zero_ties(scores, params)
        if tied:
            total = sum(v.numel() for v in scores.values())
            log.info(
                "obd: %d of %d weights (%.1f%%) score exactly 0 (curvature <= 0 after %r); "
                "ordered among themselves by |θ| (tie_break='magnitude')",
                tied,
                total,
                100 * tied / total,
                hp.negative_curvature,
            )
    return scores


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
