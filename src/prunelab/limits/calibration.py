"""The calibration baseline: the one-shot loss limit measured on training examples.

Every curvature predictor reads the first ``samples`` training examples. The plainest
use of those same examples is to **measure** the loss along the magnitude path on them,
``ΔL_cal(p) = L_cal(θ ⊙ m(p)) − L_cal(θ)``, one forward pass of ``samples`` examples per
grid point, and report the largest ``p`` with ``ΔL_cal(p) ≤ ε``. It predicts the one-shot
*test* loss limit with two errors: the sampling error of ``samples`` examples (its own
bootstrap interval, over the calibration examples) and the gap between training and test
examples (for a model that fits its training set, pruning can hurt the two differently).

It is the baseline a curvature predictor has to beat at equal data: it costs about as
much as the quadratic model (``samples`` forward passes per grid point against one
Hessian-vector product for all of them) and makes no Taylor approximation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits.truth import OneShotLimit, one_shot_limit
from prunelab.prunable import PrunableSpec


def calibration_limit(
    model: nn.Module,
    data: DataBundle,
    eps: float,
    grid: Sequence[float] | None = None,
    *,
    samples: int = 1024,
    bootstrap: int = 1000,
    seed: int = 0,
    spec: PrunableSpec | None = None,
) -> OneShotLimit:
    """The one-shot loss limit at ``ε`` measured on the first ``samples`` training examples.

    Args:
        model: A trained network (not modified).
        data: Its dataset; the first ``samples`` training examples (unshuffled, the
            curvature predictors' sample) are the calibration set.
        eps: Loss tolerance (nats; ``1 − cos`` for an embedding model), ``>= 0``.
        grid: Sparsities (default: the one-shot limit's 0.25 % grid).
        samples: Calibration examples, ``>= 1``.
        bootstrap: Resamples of the calibration examples (its interval).
        seed: Seed of the resampling.
        spec: Prunable set.

    Returns:
        A :class:`~prunelab.limits.truth.OneShotLimit` on the calibration examples: the
        prediction is ``loss_limit`` (its interval is over calibration examples).

    Raises:
        PrunelabError: ``samples < 1`` or a bad ``eps`` (one line).
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise PrunelabError(f"samples must be an integer >= 1, got {samples!r}")
    x, y = data.train
    calib = replace(data, test=(x[:samples], y[:samples]))
    # a loss task's own rule is on the loss already; min_cosine = 1 − ε keeps an embedding's
    return one_shot_limit(
        model, calib, loss_tolerance=eps, grid=grid, bootstrap=bootstrap, seed=seed, spec=spec,
        min_cosine=1.0 - eps if data.task == "embedding" else 0.99,
    )  # fmt: skip
