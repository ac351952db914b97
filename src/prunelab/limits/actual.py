"""The measured pruning limit: the ground truth that predictions are compared with (§4.1).

``p_actual`` is the largest sparsity at which **one-shot global magnitude pruning with no
fine-tuning** keeps the task's metric within tolerance of the dense model's
(:mod:`prunelab.limits.task_metric`): test accuracy at least ``dense − tolerance``
percentage points for a classifier; validation loss at most ``dense + loss_tolerance``
nats for a language model; for an embedding model loss = 1 − cos at most
``dense + (1 − min_cosine)``. With ``strict=True``: strictly better than dense, as 004's
code does (notes A.7).

Search: evaluate a coarse grid, take the **largest** passing grid point (004 scans from
the top; test accuracy is not monotone in ``p``, so "first failure" and "last pass" can
differ — both are reported) and bisect between it and the next grid point, which fails.
Every evaluated sparsity above ``p_actual`` therefore fails, and ``p_actual`` passes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from prunelab._progress import progress_bar
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits.settings import ActualSettings
from prunelab.limits.task_metric import limit_rule
from prunelab.mask_path import MaskPath
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import score

log = logging.getLogger(__name__)

#: Default coarse grid: 1% steps up to 99%, plus 99.5% and 99.9% for ℓ1-trained nets.
DEFAULT_GRID: tuple[float, ...] = tuple(i / 100 for i in range(100)) + (0.995, 0.999)


@dataclass(frozen=True)
class ActualLimit:
    """Result of :func:`find_actual_limit`.

    Attributes:
        p_actual: Largest evaluated sparsity (fraction removed) that passes the rule.
        dense_accuracy: Test accuracy of the unpruned model (percent; ``None`` when the
            task has none, e.g. embedding).
        curve: ``(p, accuracy % or None, loss)`` for every evaluated sparsity, sorted by ``p``.
        tolerance: ``ε``, the allowed change of the compared metric in its units (points
            of accuracy, nats, or 1 − cos; ignored when strict).
        rule: The pass rule in words (with the tolerance as given and ``ε``).
        dense_loss: Test loss of the unpruned model.
        threshold: Value of the metric a pruned model must reach (accuracy ``≥`` it, a
            loss ``≤`` it; strictly when strict).
        strict: Whether the rule is 004's "strictly above dense".
        first_failure: Smallest evaluated failing sparsity (``None`` if none failed);
            below ``p_actual`` when accuracy is not monotone in ``p``.
        reached_grid_end: The last grid point passed, so the limit may be higher.
        initial_sparsity: Fraction of prunable weights already zero in the input model.
        task: The data's task; ``metric`` the compared key (``accuracy`` or ``loss``) and
            ``unit`` that of ``tolerance``.
        dense_metrics: Everything the evaluation returned for the dense model (e.g.
            ``perplexity`` for a language model, ``cosine`` for an embedding model).
    """

    p_actual: float
    dense_accuracy: float | None
    curve: list[tuple[float, float, float]]
    tolerance: float
    rule: str
    dense_loss: float
    threshold: float
    strict: bool
    first_failure: float | None
    reached_grid_end: bool
    initial_sparsity: float
    task: str = "classification"
    metric: str = "accuracy"
    unit: str = "points"
    dense_metrics: dict | None = None

    def to_dict(self) -> dict:
        """JSON-able dict."""
        d = asdict(self)
        d["curve"] = [list(t) for t in self.curve]
        return d


def delta_pp(p_hat: float, p_actual: float) -> float:
    """Prediction error ``Δ = p̂ − p_actual`` in percentage points.

    Example:
        >>> round(delta_pp(0.91, 0.90), 10)
        1.0
    """
    return 100.0 * (float(p_hat) - float(p_actual))


def _kept(p: float, total: int) -> int:
    """Number of weights a global mask keeps at sparsity ``p`` (as ``Mask.from_scores``)."""
    return round((1.0 - p) * total)


def find_actual_limit(
    model: nn.Module,
    data: DataBundle,
    tolerance: float = ActualSettings.tolerance,
    strict: bool = ActualSettings.strict,
    grid: Sequence[float] | None = None,
    bisect_steps: int = ActualSettings.bisect_steps,
    *,
    loss_tolerance: float = ActualSettings.loss_tolerance,
    min_cosine: float = ActualSettings.min_cosine,
    spec: PrunableSpec | None = None,
    batch_size: int = 1024,
    evaluate_fn: Callable[..., dict] | None = None,
    progress: bool = False,
) -> ActualLimit:
    """Measure the largest one-shot magnitude-pruning sparsity that keeps the task's metric.

    The caller's model is never modified: a deep copy is pruned (``Mask.from_scores`` on
    ``|θ|`` of the dense weights, global scope, one weight kept per layer at least) and
    restored to the dense weights before each new sparsity.

    Args:
        model: Trained network (classifier, language model or embedding model).
        data: Dataset with a non-empty test split; ``data.task`` picks the metric.
        tolerance: Classification: allowed accuracy drop in points, in ``[0, 100]``.
        strict: Use 004's rule "strictly better than dense" instead.
        grid: Coarse sparsities in ``[0, 1)`` (default :data:`DEFAULT_GRID`); points that
            would keep fewer weights than there are prunable layers are dropped.
        bisect_steps: Bisection steps after the grid (stops early once two sparsities
            give the same mask).
        loss_tolerance: Language model: allowed validation-loss increase (nats, ``>= 0``).
        min_cosine: Embedding: smallest mean cosine, in ``[-1, 1]`` (``ε = 1 − min_cosine``).
        spec: Prunable-set rule.
        batch_size: Evaluation batch size (memory only).
        evaluate_fn: ``(model, data, split, batch_size) -> {"loss", "accuracy", ...}``; default
            :func:`prunelab.train.evaluate`.
        progress: Show a bar of the evaluated sparsities (grid, then bisection) on
            stderr; how the search is watched, not what it finds.

    Returns:
        An :class:`ActualLimit`.

    Raises:
        PrunelabError: A tolerance out of range, bad grid or steps, a task without a limit
            metric (regression), or no test data.
    """
    rule_of = limit_rule(
        data.task, tolerance=tolerance, loss_tolerance=loss_tolerance, min_cosine=min_cosine,
        strict=strict, name=data.name,
    )  # fmt: skip
    if isinstance(bisect_steps, bool) or not isinstance(bisect_steps, int) or bisect_steps < 0:
        raise PrunelabError(f"bisect_steps must be an integer >= 0, got {bisect_steps!r}")
    if data.test[0].shape[0] == 0:
        raise PrunelabError(f"dataset {data.name!r} has no test data to measure the limit on")
    pts = sorted({float(p) for p in (DEFAULT_GRID if grid is None else grid)})
    if not pts or pts[0] < 0.0 or pts[-1] >= 1.0:
        raise PrunelabError(f"grid sparsities must be non-empty and in [0, 1), got {pts[:3]}...")
    if evaluate_fn is None:
        from prunelab.train import evaluate as evaluate_fn

    work = copy.deepcopy(model)  # the caller's weights are never touched
    params = prunable_parameters(work, spec)
    dense = {n: p.detach().clone() for n, p in params.items()}
    path = MaskPath(score(work, "magnitude", spec=spec), spec=spec)
    total = sum(t.numel() for t in dense.values())
    initial = float(sum(int((t == 0).sum()) for t in dense.values())) / total
    pts = [p for p in pts if _kept(p, total) >= len(dense)]
    if not pts:
        raise PrunelabError("every grid sparsity keeps fewer weights than there are layers")

    key = rule_of.metric.key
    base = evaluate_fn(work, data, split="test", batch_size=batch_size)
    acc0, loss0 = _accuracy(base), float(base["loss"])
    threshold = rule_of.threshold(float(base[key]))
    rule = rule_of.describe(float(base[key]))

    def passes(value: float) -> bool:
        return rule_of.passes(value, threshold)

    seen: dict[float, tuple[float | None, float]] = {}
    compared: dict[float, float] = {}  # the metric the rule reads, per sparsity
    bar = progress_bar(len(pts) + bisect_steps, "sparsities", progress, unit="point")

    def measure(p: float) -> bool:
        with torch.no_grad():
            for n, t in params.items():
                t.copy_(dense[n])
        path.at(p).apply(work)
        res = evaluate_fn(work, data, split="test", batch_size=batch_size)
        seen[p] = (_accuracy(res), float(res["loss"]))
        compared[p] = float(res[key])
        bar.update()
        log.debug("sparsity %.6f: %s %.6g", p, key, compared[p])
        return passes(compared[p])

    ok = [p for p in pts if measure(p)]
    at_end = bool(ok) and ok[-1] == pts[-1]
    if not ok:
        p_actual = 0.0
        log.warning("no grid sparsity passes %s; p_actual set to 0", rule)
    else:
        lo = ok[-1]
        if not at_end:
            hi = pts[pts.index(lo) + 1]
            for _ in range(bisect_steps):
                mid = 0.5 * (lo + hi)
                if _kept(mid, total) in (_kept(lo, total), _kept(hi, total)):
                    break  # same mask as an evaluated end: nothing new to learn
                if measure(mid):
                    lo = mid
                else:
                    hi = mid
        p_actual = lo
    bar.close()
    fails = [p for p in sorted(seen) if not passes(compared[p])]
    curve = [(p, seen[p][0], seen[p][1]) for p in sorted(seen)]
    return ActualLimit(
        p_actual=p_actual,
        dense_accuracy=acc0,
        curve=curve,
        tolerance=rule_of.eps,
        rule=rule,
        dense_loss=loss0,
        threshold=threshold,
        strict=bool(strict),
        first_failure=fails[0] if fails else None,
        reached_grid_end=at_end,
        initial_sparsity=initial,
        task=data.task,
        metric=key,
        unit=rule_of.metric.unit,
        dense_metrics={k: v for k, v in base.items() if isinstance(v, int | float) or v is None},
    )


def _accuracy(result: dict) -> float | None:
    """The evaluation's accuracy as a float, ``None`` where the task has none."""
    value = result.get("accuracy")
    return None if value is None else float(value)
