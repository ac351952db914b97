"""Ground truths with intervals: the one-shot limit (bootstrap) and the fine-tuned limit.

**One-shot limit** (what 004's no-fine-tuning search measures): global magnitude pruning
to each ``p`` of a fine grid (0.25 % by default), the per-example correctness and loss on
the **whole** test split recorded once, so that

* ``last_pass`` (largest passing ``p``) and ``first_failure`` (smallest failing ``p``)
  are both reported — accuracy is not monotone in ``p``;
* a **bootstrap over test examples** (resampling the columns of the recorded
  correctness matrix, no new forward pass) gives their sampling distribution: with a
  449-image test split 0.5 point is 2 images, and the limit's spread is several points;
* the same on the loss: the largest ``p`` whose mean test loss stays within ``ε_loss``.

**Fine-tuned limit** (the target of 004's geometry: *some* sparse point in the sublevel
set): the largest ``p`` at which magnitude pruning followed by a stated fine-tuning
budget recovers ``reference − tolerance``, by bisection, once per fine-tuning seed; the
interval is over seeds. The reference is by default **paired**: the same budget, with
the same seed, applied at ``p = 0``. Fine-tuning alone moves the metric (a constant
learning rate without the training run's ℓ1 term lost ~1 point on an ℓ1-trained
Fashion-MNIST MLP with nothing pruned), and against the untouched dense model that
shift, not the pruning, would set the limit. ``reference="dense"`` compares with the
dense model as it is. Its loss version (``test loss <= reference + ε_loss`` after the
same fine-tuning) is found beside it, from the same fine-tuned models where they coincide.

Both follow the task (:mod:`~prunelab.limits.task_metric`): for a language or embedding
model the rule is on the loss (``≤ dense + ε``; ``ε`` in nats, or ``1 − min_cosine``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.limits._per_example import per_example
from prunelab.limits.task_metric import limit_rule, loss_rule
from prunelab.mask_path import MaskPath
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import score
from prunelab.train import TrainConfig, evaluate, train_model

#: Default grid step of the one-shot limit (0.25 point)
GRID_STEP = 0.0025


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap (or over-seeds) spread.

    Attributes:
        value: The estimate on the data as measured.
        low: 2.5 % quantile (``level`` = 95 %) of the resampled estimates.
        high: 97.5 % quantile.
        sd: Standard deviation of the resampled estimates.
    """

    value: float
    low: float
    high: float
    sd: float


@dataclass(frozen=True)
class OneShotLimit:
    """The measured one-shot (no fine-tuning) magnitude-pruning limit, with intervals.

    Attributes:
        last_pass: Largest grid ``p`` that passes the task's rule
            (:mod:`~prunelab.limits.task_metric`): accuracy ``>= dense − tolerance`` for a
            classifier, loss ``<= dense + tolerance`` for a language or embedding model.
        first_failure: Smallest failing grid ``p`` (``None``: none failed).
        loss_limit: Largest grid ``p`` with mean test loss ``<= dense + loss_tolerance``.
        dense_accuracy: Percent (``None`` without accuracy). ``dense_loss``: mean test loss.
        tolerance: ``ε`` of the task's rule in its units (points, nats, 1 − cos);
            ``loss_tolerance``: that of ``loss_limit`` (for a loss task the same ``ε``).
        num_test: Test examples used (the whole split).
        grid: The sparsities evaluated; ``accuracy`` (``None`` without) / ``loss`` their values.
        bootstrap: Resamples drawn; ``seed`` their seed.
        metric: ``accuracy`` or ``loss``, the metric ``last_pass`` compares.
        rule: The rule in words, with the tolerance as given.
    """

    last_pass: Interval
    first_failure: Interval | None
    loss_limit: Interval
    dense_accuracy: float | None
    dense_loss: float
    tolerance: float
    loss_tolerance: float
    num_test: int
    grid: list[float]
    accuracy: list[float] | None
    loss: list[float]
    bootstrap: int
    seed: int
    metric: str = "accuracy"
    rule: str = ""

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)


def _limits(weights, correct, dense_correct, losses, dense_losses, grid, tol, loss_tol):
    """Last pass, first failure and loss limit for example weights ``(B, N)``.

    ``correct`` ``(P, N)`` is per-example accuracy in ``[0, 1]`` (rule: accuracy ``>=``
    dense − ``tol`` points); ``None`` makes the loss the compared metric (rule: loss
    ``<=`` dense + ``tol``), as for a language or embedding model.
    """
    total = weights.sum(1, keepdims=True)
    if correct is None:
        passes = _loss_ok(weights, losses, dense_losses, tol)
    else:
        acc = 100.0 * (correct @ weights.T).T / total  # (B, P)
        acc0 = 100.0 * (weights @ dense_correct) / total[:, 0]
        passes = acc >= (acc0 - tol)[:, None]
    loss_ok = _loss_ok(weights, losses, dense_losses, loss_tol)
    g = np.asarray(grid)

    def largest(mask):
        return np.where(mask.any(1), g[np.where(mask, np.arange(len(g)), -1).max(1)], 0.0)

    first = np.where((~passes).any(1), g[np.argmax(~passes, axis=1)], np.nan)
    return largest(passes), first, largest(loss_ok)


def _loss_ok(weights, losses, dense_losses, eps):
    """``(B, P)``: weighted mean loss at each grid point ``<=`` the dense one + ``eps``."""
    total = weights.sum(1, keepdims=True)
    loss = (losses @ weights.T).T / total
    return loss <= ((weights @ dense_losses) / total[:, 0] + eps)[:, None]


def _interval(value: float, samples: np.ndarray) -> Interval:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return Interval(value, math.nan, math.nan, math.nan)
    lo, hi = np.quantile(samples, [0.025, 0.975])
    return Interval(float(value), float(lo), float(hi), float(samples.std(ddof=1)))


def one_shot_limit(
    model: nn.Module,
    data: DataBundle,
    tolerance: float = 0.5,
    loss_tolerance: float = 0.05,
    grid: Sequence[float] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    spec: PrunableSpec | None = None,
    min_cosine: float = 0.99,
) -> OneShotLimit:
    """Measure the one-shot magnitude limit on the whole test split, with intervals.

    Args:
        model: Trained network (not modified: a copy is pruned).
        data: Dataset; every test example is used; ``data.task`` picks the rule.
        tolerance: Classification: accuracy drop allowed, in points.
        loss_tolerance: Mean test-loss increase allowed (nats) for the loss version; the
            rule itself for a language model.
        grid: Sparsities (default: 0 to 0.9975 in steps of :data:`GRID_STEP`).
        bootstrap: Resamples of the test examples (``0``: no intervals).
        seed: Seed of the resampling.
        spec: Prunable set.
        min_cosine: Embedding: smallest mean cosine (``ε = 1 − min_cosine``).

    Returns:
        :class:`OneShotLimit`.
    """
    rule = limit_rule(
        data.task, tolerance=tolerance, loss_tolerance=loss_tolerance, min_cosine=min_cosine,
        name=data.name,
    )  # fmt: skip
    loss_eps = float(loss_tolerance) if rule.metric.key == "accuracy" else rule.eps
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise PrunelabError(f"bootstrap must be an integer >= 0, got {bootstrap!r}")
    pts = [round(i * GRID_STEP, 6) for i in range(int(round(1 / GRID_STEP)))]
    pts = sorted({check_sparsity(p) for p in (pts if grid is None else grid)})
    work = copy.deepcopy(model)
    params = prunable_parameters(work, spec)
    dense = {n: p.detach().clone() for n, p in params.items()}
    path = MaskPath(score(work, "magnitude", spec=spec), spec=spec)
    dense_correct, dense_losses = per_example(work, data)
    correct, losses = [], []
    for p in pts:
        with torch.no_grad():
            for n, t in params.items():
                t.copy_(dense[n])
        path.at(p).apply(work)
        c, lo = per_example(work, data)
        correct.append(c)
        losses.append(lo)
    C = None if dense_correct is None else np.array(correct, dtype=float)
    L, d_c, d_l = np.array(losses), dense_correct, dense_losses
    n = len(d_l)
    # a loss task's rule reads the loss even where there is an accuracy (next token)
    compared = C if rule.metric.key == "accuracy" else None
    args = (compared, d_c, L, d_l, pts, rule.eps, loss_eps)
    last, first, by_loss = _limits(np.ones((1, n)), *args)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=bootstrap).astype(float)
    b_last, b_first, b_loss = _limits(w, *args) if bootstrap else (np.array([]),) * 3
    return OneShotLimit(
        last_pass=_interval(last[0], b_last),
        first_failure=None if math.isnan(first[0]) else _interval(first[0], b_first),
        loss_limit=_interval(by_loss[0], b_loss),
        dense_accuracy=None if C is None else 100.0 * float(d_c.mean()),
        dense_loss=float(d_l.mean()), tolerance=rule.eps, loss_tolerance=loss_eps, num_test=n,
        grid=list(pts), accuracy=None if C is None else list(100.0 * C.mean(1)),
        loss=list(L.mean(1)), bootstrap=bootstrap, seed=seed, metric=rule.metric.key,
        rule=rule.stated,
    )  # fmt: skip


@dataclass(frozen=True)
class FineTunedLimit:
    """The largest sparsity that magnitude pruning + a fine-tuning budget recovers.

    Attributes:
        limit: Mean over fine-tuning seeds, with ``low``/``high`` their min/max and ``sd``.
        per_seed: The limit found with each seed.
        dense_accuracy: The dense model's compared metric (``metric``: accuracy in
            percent, or the loss); the target is ``dense − tolerance`` (accuracy) or
            ``dense + tolerance`` (a loss).
        tolerance: ``ε`` in the metric's units (points, nats, 1 − cos).
        finetune: The fine-tuning budget (a :class:`TrainConfig` dict, seed varied).
        evaluations: ``(seed, p, metric value, test loss)`` of every fine-tuned model.
        metric: ``accuracy`` or ``loss``.
        loss_limit: The same search on the mean test loss, ``loss <= dense + ε_loss``
            (for a loss task the task's own rule, so equal to ``limit``).
        loss_per_seed: Its limit per seed.
        dense_loss: The dense model's mean test loss.
        loss_tolerance: ``ε_loss`` (nats, or ``1 − cos``).
        reference: ``paired`` (the thresholds are set from the model fine-tuned at
            ``p = 0`` with the same seed) or ``dense`` (from the dense model).
        reference_per_seed: The compared metric the threshold is set from, per seed.
        reference_loss_per_seed: The loss the loss threshold is set from, per seed.
    """

    limit: Interval
    per_seed: list[float]
    dense_accuracy: float
    tolerance: float
    finetune: dict
    evaluations: list[tuple[int, float, float, float]]
    metric: str = "accuracy"
    loss_limit: Interval | None = None
    loss_per_seed: list[float] | None = None
    dense_loss: float | None = None
    loss_tolerance: float | None = None
    reference: str = "dense"
    reference_per_seed: list[float] | None = None
    reference_loss_per_seed: list[float] | None = None

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)


#: How the fine-tuned limit's threshold is set (:func:`fine_tuned_limit`)
REFERENCES = ("paired", "dense")


def _over_seeds(per_seed: list[float]) -> Interval:
    """Mean over seeds with their min / max and standard deviation."""
    values = np.array(per_seed)
    sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return Interval(float(values.mean()), float(values.min()), float(values.max()), sd)


def fine_tuned_limit(
    model: nn.Module,
    data: DataBundle,
    finetune: TrainConfig,
    tolerance: float = 0.5,
    seeds: Sequence[int] = (0, 1, 2),
    low: float = 0.0,
    high: float = 0.999,
    steps: int = 7,
    spec: PrunableSpec | None = None,
    *,
    loss_tolerance: float = 0.05,
    min_cosine: float = 0.99,
    reference: Literal["paired", "dense"] = "paired",
) -> FineTunedLimit:
    """Bisect the largest ``p`` whose magnitude-pruned, fine-tuned model keeps accuracy.

    Assumes recovery is monotone in ``p`` between ``low`` (must pass) and ``high``; each
    fine-tuning seed gives one bisection, and the spread over seeds is the interval. The
    loss version bisects again on the test loss of the same fine-tuned models (a
    ``(seed, p)`` already fine-tuned is not fine-tuned twice). With the paired
    reference the model fine-tuned at ``p = 0`` (an evaluation the bisection makes
    anyway when ``low = 0``) sets each seed's thresholds.

    Args:
        model: Trained network (not modified).
        data: Dataset; ``data.task`` picks the rule (:mod:`~prunelab.limits.task_metric`).
        finetune: The fine-tuning budget (epochs, optimiser, ...); its seed is replaced.
        tolerance: Classification: accuracy drop allowed after fine-tuning, in points.
        seeds: Fine-tuning seeds.
        low: A sparsity known to pass (checked).
        high: Upper end of the search.
        steps: Bisection steps (resolution ``(high − low) / 2^steps``).
        spec: Prunable set.
        loss_tolerance: Loss increase allowed after fine-tuning (nats): the rule of a
            language model, the loss version's for a classifier.
        min_cosine: Embedding: smallest mean cosine after fine-tuning.
        reference: ``paired`` (the same budget and seed at ``p = 0``) or ``dense``.

    Returns:
        :class:`FineTunedLimit`.
    """
    rule = limit_rule(
        data.task, tolerance=tolerance, loss_tolerance=loss_tolerance, min_cosine=min_cosine,
        name=data.name,
    )  # fmt: skip
    if reference not in REFERENCES:
        raise PrunelabError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    by_loss = loss_rule(data.task, loss_tolerance, min_cosine)
    key = rule.metric.key
    finetune.validate()
    if not seeds:
        raise PrunelabError("seeds must name at least one fine-tuning seed")
    low, high = check_sparsity(low, "low"), check_sparsity(high, "high")
    if not low < high:
        raise PrunelabError(f"low must be below high, got {low} and {high}")
    dense = evaluate(model, data)
    path = MaskPath(score(model, "magnitude", spec=spec), spec=spec)
    tuned: dict[tuple[int, float], dict] = {}

    def measured(p: float, seed: int) -> dict:
        if (seed, p) not in tuned:
            work = copy.deepcopy(model)
            mask = path.at(p)
            mask.apply(work)
            train_model(work, data, replace(finetune, seed=seed, progress=False), mask=mask)
            tuned[seed, p] = evaluate(work, data)
        return tuned[seed, p]

    def base(seed: int) -> dict:
        return measured(0.0, seed) if reference == "paired" else dense

    def bisect(r, seed: int) -> float:
        target = r.threshold(float(base(seed)[r.metric.key]))

        def recovers(p: float) -> bool:
            return r.passes(float(measured(p, seed)[r.metric.key]), target)

        lo, hi = low, high
        if not recovers(lo):
            return 0.0
        if recovers(hi):
            return hi
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if recovers(mid) else (lo, mid)
        return lo

    per_seed = [bisect(rule, seed) for seed in seeds]
    loss_per_seed = per_seed if by_loss == rule else [bisect(by_loss, seed) for seed in seeds]
    evaluations = [
        (seed, p, float(v[key]), float(v["loss"])) for (seed, p), v in tuned.items()
    ]  # fmt: skip
    return FineTunedLimit(
        limit=_over_seeds(per_seed), per_seed=per_seed, dense_accuracy=float(dense[key]),
        tolerance=rule.eps, finetune=finetune.to_dict(), evaluations=evaluations, metric=key,
        loss_limit=_over_seeds(loss_per_seed), loss_per_seed=loss_per_seed,
        dense_loss=float(dense["loss"]), loss_tolerance=by_loss.eps, reference=reference,
        reference_per_seed=[float(base(s)[key]) for s in seeds],
        reference_loss_per_seed=[float(base(s)["loss"]) for s in seeds],
    )  # fmt: skip
