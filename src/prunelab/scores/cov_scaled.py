"""``cov_scaled``: covariance-scaled magnitude ``Σ_jj θ_kj²`` for a linear model (paper 000).

For least squares ``L(θ) = mean_n ‖y_n − θ x_n‖²`` the Hessian block of row ``k`` of
``θ`` is ``2 Σ̂`` with ``Σ̂ = XᵀX / N`` the (uncentred) second moment of the inputs, so
OBD with the exact Hessian is ``½ · 2 Σ̂_jj · θ_kj² = Σ̂_jj θ_kj²`` (up to PyTorch's
``1/K`` when the MSE also averages over ``K`` outputs, which does not change the
ranking). It is magnitude pruning after standardising each input feature, and it equals
magnitude pruning when all features have the same scale.

``Σ̂`` is estimated from the batches given (the training inputs). ``centered=True``
uses the covariance instead of the second moment; the two agree for zero-mean inputs,
and only the second moment equals the Hessian when a feature has a non-zero mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunelab.errors import PrunelabError
from prunelab.scores._common import device_batches
from prunelab.scores.base import CRITERIA, Criterion


@dataclass(frozen=True)
class CovScaledHparams:
    """Hyper-parameters of ``cov_scaled``.

    Attributes:
        centered: Subtract the feature means (covariance) instead of using the raw second
            moment (= the Hessian of the squared loss, the default).
    """

    centered: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.centered, bool):
            raise PrunelabError(f"centered must be true or false, got {self.centered!r}")


def feature_second_moment(batches: list, centered: bool = False) -> torch.Tensor:
    """Diagonal of ``XᵀX / N`` (or of the covariance) over the flattened inputs, shape ``(F,)``.

    Example:
        >>> x = torch.tensor([[1.0, 2.0], [3.0, -2.0]])
        >>> feature_second_moment([(x, None)]).tolist()
        [5.0, 4.0]
    """
    total = sq = None
    n = 0
    for x, _ in batches:
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        s1, s2 = flat.sum(0), (flat * flat).sum(0)
        total = s1 if total is None else total + s1
        sq = s2 if sq is None else sq + s2
        n += flat.shape[0]
    if n == 0:
        raise PrunelabError("cov_scaled got no input examples")
    moment = sq / n
    if centered:
        moment = moment - (total / n) ** 2
    return moment


def _cov_scaled(model: nn.Module, params, batches, loss_fn, hp: CovScaledHparams):
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(params) != 1 or len(layers) != 1 or next(iter(params.values())) is not layers[0].weight:
        raise PrunelabError(
            "cov_scaled is defined for a model with exactly one nn.Linear layer whose weight "
            f"is the only prunable parameter; got prunable parameters {sorted(params)}"
        )
    name, weight = next(iter(params.items()))
    moment = feature_second_moment(device_batches(model, batches), hp.centered)
    if moment.numel() != weight.shape[1]:
        raise PrunelabError(
            f"cov_scaled: inputs have {moment.numel()} features but the Linear layer takes "
            f"{weight.shape[1]}; the Linear layer must see the raw inputs"
        )
    w = weight.detach()
    return {name: moment.to(w.dtype)[None, :] * w**2}


CRITERIA.add(
    "cov_scaled",
    Criterion(
        "cov_scaled", _cov_scaled, CovScaledHparams, True, "Σ_jj θ² for a linear model (000)"
    ),
)
