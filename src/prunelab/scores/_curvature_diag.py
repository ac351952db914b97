"""The curvature diagonal ``c`` used by OBD / Taylor-2, in any of four flavours (private).

All four come from :mod:`prunelab.curvature`; this module only picks one, applies the
logit temperature, turns the flat vector into ``{name: tensor}`` and applies the
negative-curvature rule.

=====================  ================================================  ==========
``curvature``          ``c_i``                                           sign
=====================  ================================================  ==========
``exact``              ``H_ii`` by unit-vector HVPs (small models)        any
``hutchinson``         ``mean_s z_s ⊙ H z_s``, Rademacher probes          any (noisy)
``empirical-fisher``   ``mean_n g_{n,i}²`` (per-example gradients)        ``>= 0``
``fisher``             true Fisher = GGN of softmax cross-entropy         ``>= 0``
=====================  ================================================  ==========

The true Fisher is exact (one backward pass per class) for a classifier. For a language
model, whose every example has ``T·V`` log-probabilities (16k for 64 byte tokens), the
exact sum is out of reach, so labels are sampled from the model's own predictive
distribution at every position (``num_probes`` draws per example, seeded by ``seed``):
an unbiased estimate with a standard error, at a cost independent of the vocabulary.

``negative_curvature``: ``"clamp"`` replaces ``c_i < 0`` by 0, ``"keep"`` leaves the
sign, ``"abs"`` uses ``|c_i|``. Fisher diagonals are never negative, so the rule only
matters for the Hessian ones (methods.md §2: OBD clamps, Taylor-2 keeps by default).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from prunelab.curvature import (
    Hessian,
    empirical_fisher_diag,
    exact_diagonal,
    fisher_diag,
    hutchinson_diag,
)
from prunelab.scores._common import LossFn, check_choice, tempered, unflatten

CURVATURES = ("exact", "hutchinson", "empirical-fisher", "fisher")
NEGATIVE_CURVATURE = ("clamp", "keep", "abs")


@dataclass(frozen=True)
class Diagonal:
    """A curvature diagonal split by parameter.

    Attributes:
        values: ``{name: c}`` shaped like the parameters.
        stderr: ``{name: standard error}`` for Hutchinson, ``None`` when exact.
        negative_fraction: Fraction of entries that were ``< 0`` before the rule.
    """

    values: dict[str, Tensor]
    stderr: dict[str, Tensor] | None
    negative_fraction: float


def curvature_diagonal(
    model: nn.Module,
    params: dict[str, nn.Parameter],
    batches: list,
    loss_fn: LossFn,
    curvature: str,
    *,
    num_probes: int = 10,
    seed: int = 0,
    temperature: float = 1.0,
    negative_curvature: str = "keep",
) -> Diagonal:
    """Diagonal of the chosen curvature of the mean loss at the current weights.

    Args:
        model: The network; must be deterministic (``eval()`` if it has BatchNorm or
            Dropout), which :mod:`prunelab.curvature` checks.
        params: Prunable ``{name: Parameter}``; sets the order and the subset.
        batches: ``(x, y)`` pairs; every example is weighted equally.
        loss_fn: Mean-reduced loss (plain cross-entropy for ``"fisher"``).
        curvature: One of :data:`CURVATURES`.
        num_probes: Hutchinson probes; label draws of a language model's sampled
            ``"fisher"`` (ignored otherwise).
        seed: Seed of those probes or draws (ignored otherwise).
        temperature: Outputs are divided by ``T`` before the loss.
        negative_curvature: One of :data:`NEGATIVE_CURVATURE`.

    Returns:
        The :class:`Diagonal`.

    Raises:
        PrunelabError: Unknown choices, a model too large for ``"exact"``, a loss that is
            not cross-entropy for ``"fisher"``, or a non-deterministic model.
    """
    check_choice(curvature, "curvature", CURVATURES)
    check_choice(negative_curvature, "negative_curvature", NEGATIVE_CURVATURE)
    module, names = tempered(model, list(params), temperature)
    stderr = None
    if curvature == "exact":
        flat = exact_diagonal(Hessian(module, loss_fn, batches, params=names))
    elif curvature == "hutchinson":
        est = hutchinson_diag(Hessian(module, loss_fn, batches, params=names), num_probes, seed)
        flat = est.value
        stderr = unflatten(est.stderr, params)
    elif curvature == "empirical-fisher":
        flat = empirical_fisher_diag(module, loss_fn, batches, params=names)
    else:
        y = batches[0][1] if batches else None
        if y is not None and not y.is_floating_point() and y.ndim == 2:
            # (N, T) next-token labels: a language model, see the module docstring
            est = fisher_diag(
                module, loss_fn, batches, params=names, method="sampled",
                num_samples=max(2, num_probes), seed=seed,
            )  # fmt: skip
            stderr = unflatten(est.stderr, params)
        else:
            est = fisher_diag(module, loss_fn, batches, params=names)
        flat = est.value
    negative = float((flat < 0).double().mean()) if flat.numel() else 0.0
    flat = apply_negative_rule(flat, negative_curvature)
    return Diagonal(unflatten(flat.detach(), params), stderr, negative)


def apply_negative_rule(c: Tensor, rule: str) -> Tensor:
    """Apply ``"clamp"`` (``max(c, 0)``), ``"keep"`` or ``"abs"`` to a curvature diagonal.

    Example:
        >>> import torch
        >>> c = torch.tensor([-2.0, 0.5])
        >>> apply_negative_rule(c, "clamp").tolist(), apply_negative_rule(c, "abs").tolist()
        ([0.0, 0.5], [2.0, 0.5])
    """
    check_choice(rule, "negative_curvature", NEGATIVE_CURVATURE)
    if rule == "clamp":
        return c.clamp(min=0.0)
    if rule == "abs":
        return c.abs()
    return c
