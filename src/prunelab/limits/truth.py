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
budget recovers ``dense − tolerance``, by bisection, once per fine-tuning seed; the
interval is over seeds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prunelab._evaluate import placement, restore_modes, save_modes, to_model
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.masks import Mask
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
        last_pass: Largest grid ``p`` with accuracy ``>= dense − tolerance``.
        first_failure: Smallest failing grid ``p`` (``None``: none failed).
        loss_limit: Largest grid ``p`` with mean test loss ``<= dense + loss_tolerance``.
        dense_accuracy: Percent. ``dense_loss``: mean test loss.
        tolerance: Points; ``loss_tolerance``: nats.
        num_test: Test examples used (the whole split).
        grid: The sparsities evaluated; ``accuracy`` / ``loss`` their values.
        bootstrap: Resamples drawn; ``seed`` their seed.
    """

    last_pass: Interval
    first_failure: Interval | None
    loss_limit: Interval
    dense_accuracy: float
    dense_loss: float
    tolerance: float
    loss_tolerance: float
    num_test: int
    grid: list[float]
    accuracy: list[float]
    loss: list[float]
    bootstrap: int
    seed: int

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)


def _per_example(model: nn.Module, data: DataBundle, batch_size: int = 1024):
    """``(correct (N,) bool, loss (N,) float64)`` on the whole test split."""
    if data.task != "classification":
        raise PrunelabError(f"dataset {data.name!r} is a regression task: no accuracy")
    device, dtype = placement(model)
    modes = save_modes(model)
    model.eval()
    correct, losses = [], []
    try:
        with torch.no_grad():
            for x, y in data.batches("test", batch_size):
                x, y = to_model(x, y, device, dtype)
                out = model(x)
                correct.append((out.argmax(dim=1) == y).cpu())
                losses.append(F.cross_entropy(out, y, reduction="none").cpu())
    finally:
        restore_modes(modes)
    if not correct:
        raise PrunelabError(f"dataset {data.name!r} has no test data to measure accuracy on")
    return torch.cat(correct).numpy(), torch.cat(losses).double().cpu().numpy()


def _limits(weights, correct, dense_correct, losses, dense_losses, grid, tol, loss_tol):
    """Last pass, first failure and loss limit for example weights ``(B, N)``."""
    total = weights.sum(1, keepdims=True)
    acc = 100.0 * (correct @ weights.T).T / total  # (B, P)
    acc0 = 100.0 * (weights @ dense_correct) / total[:, 0]
    passes = acc >= (acc0 - tol)[:, None]
    loss = (losses @ weights.T).T / total
    loss_ok = loss <= ((weights @ dense_losses) / total[:, 0] + loss_tol)[:, None]
    g = np.asarray(grid)

    def largest(mask):
        return np.where(mask.any(1), g[np.where(mask, np.arange(len(g)), -1).max(1)], 0.0)

    first = np.where((~passes).any(1), g[np.argmax(~passes, axis=1)], np.nan)
    return largest(passes), first, largest(loss_ok)


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
) -> OneShotLimit:
    """Measure the one-shot magnitude limit on the whole test split, with intervals.

    Args:
        model: Trained classifier (not modified: a copy is pruned).
        data: Dataset; every test example is used.
        tolerance: Accuracy drop allowed, in points.
        loss_tolerance: Mean test-loss increase allowed (nats) for the loss version.
        grid: Sparsities (default: 0 to 0.9975 in steps of :data:`GRID_STEP`).
        bootstrap: Resamples of the test examples (``0``: no intervals).
        seed: Seed of the resampling.
        spec: Prunable set.

    Returns:
        :class:`OneShotLimit`.
    """
    if not (math.isfinite(tolerance) and 0 <= tolerance <= 100):
        raise PrunelabError(f"tolerance must be in [0, 100] points, got {tolerance!r}")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise PrunelabError(f"bootstrap must be an integer >= 0, got {bootstrap!r}")
    pts = [round(i * GRID_STEP, 6) for i in range(int(round(1 / GRID_STEP)))]
    pts = sorted({check_sparsity(p) for p in (pts if grid is None else grid)})
    work = copy.deepcopy(model)
    params = prunable_parameters(work, spec)
    dense = {n: p.detach().clone() for n, p in params.items()}
    scores = score(work, "magnitude", spec=spec)
    dense_correct, dense_losses = _per_example(work, data)
    correct, losses = [], []
    for p in pts:
        with torch.no_grad():
            for n, t in params.items():
                t.copy_(dense[n])
        Mask.from_scores(scores, p, spec=spec).apply(work)
        c, lo = _per_example(work, data)
        correct.append(c)
        losses.append(lo)
    C, L = np.array(correct, dtype=float), np.array(losses)
    d_c, d_l = dense_correct.astype(float), dense_losses
    n = len(d_c)
    args = (C, d_c, L, d_l, pts, float(tolerance), float(loss_tolerance))
    last, first, by_loss = _limits(np.ones((1, n)), *args)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=bootstrap).astype(float)
    b_last, b_first, b_loss = _limits(w, *args) if bootstrap else (np.array([]),) * 3
    return OneShotLimit(
        last_pass=_interval(last[0], b_last),
        first_failure=None if math.isnan(first[0]) else _interval(first[0], b_first),
        loss_limit=_interval(by_loss[0], b_loss),
        dense_accuracy=100.0 * float(d_c.mean()), dense_loss=float(d_l.mean()),
        tolerance=float(tolerance), loss_tolerance=float(loss_tolerance), num_test=n,
        grid=list(pts), accuracy=list(100.0 * C.mean(1)), loss=list(L.mean(1)),
        bootstrap=bootstrap, seed=seed,
    )  # fmt: skip


@dataclass(frozen=True)
class FineTunedLimit:
    """The largest sparsity that magnitude pruning + a fine-tuning budget recovers.

    Attributes:
        limit: Mean over fine-tuning seeds, with ``low``/``high`` their min/max and ``sd``.
        per_seed: The limit found with each seed.
        dense_accuracy: Percent; the target is ``dense − tolerance``.
        tolerance: Points.
        finetune: The fine-tuning budget (a :class:`TrainConfig` dict, seed varied).
        evaluations: ``(seed, p, accuracy)`` of every fine-tuned model.
    """

    limit: Interval
    per_seed: list[float]
    dense_accuracy: float
    tolerance: float
    finetune: dict
    evaluations: list[tuple[int, float, float]]

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)


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
) -> FineTunedLimit:
    """Bisect the largest ``p`` whose magnitude-pruned, fine-tuned model keeps accuracy.

    Assumes recovery is monotone in ``p`` between ``low`` (must pass) and ``high``; each
    fine-tuning seed gives one bisection, and the spread over seeds is the interval.

    Args:
        model: Trained classifier (not modified).
        data: Dataset.
        finetune: The fine-tuning budget (epochs, optimiser, ...); its seed is replaced.
        tolerance: Accuracy drop allowed after fine-tuning, in points.
        seeds: Fine-tuning seeds.
        low: A sparsity known to pass (checked).
        high: Upper end of the search.
        steps: Bisection steps (resolution ``(high − low) / 2^steps``).
        spec: Prunable set.

    Returns:
        :class:`FineTunedLimit`.
    """
    finetune.validate()
    if not seeds:
        raise PrunelabError("seeds must name at least one fine-tuning seed")
    low, high = check_sparsity(low, "low"), check_sparsity(high, "high")
    if not low < high:
        raise PrunelabError(f"low must be below high, got {low} and {high}")
    target = float(evaluate(model, data)["accuracy"]) - float(tolerance)
    scores = score(model, "magnitude", spec=spec)
    evaluations: list[tuple[int, float, float]] = []

    def recovers(p: float, seed: int) -> bool:
        work = copy.deepcopy(model)
        mask = Mask.from_scores(scores, p, spec=spec)
        mask.apply(work)
        train_model(work, data, replace(finetune, seed=seed, progress=False), mask=mask)
        acc = float(evaluate(work, data)["accuracy"])
        evaluations.append((seed, p, acc))
        return acc >= target

    per_seed = []
    for seed in seeds:
        lo, hi = low, high
        if not recovers(lo, seed):
            per_seed.append(0.0)
            continue
        if recovers(hi, seed):
            per_seed.append(hi)
            continue
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if recovers(mid, seed) else (lo, mid)
        per_seed.append(lo)
    values = np.array(per_seed)
    sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return FineTunedLimit(
        limit=Interval(float(values.mean()), float(values.min()), float(values.max()), sd),
        per_seed=per_seed, dense_accuracy=target + float(tolerance), tolerance=float(tolerance),
        finetune=finetune.to_dict(), evaluations=evaluations,
    )  # fmt: skip
