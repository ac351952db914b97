"""Which number a pruning limit is measured on, per task: the one table of metric choices.

A limit is "the largest sparsity whose pruned model is still good enough". What "good
enough" means depends on the task (:attr:`~prunelab.data.base.DataBundle.task`):

=================  ==================  =========  ==========================================
task               compared            direction  tolerance (its setting)
=================  ==================  =========  ==========================================
classification     test accuracy (%)   higher     ``tolerance``: points of accuracy lost
language-model     validation loss     lower      ``loss_tolerance``: nats of loss gained
embedding          loss = mean(1−cos)  lower      ``min_cosine``: ε = 1 − cos_min (loss units)
=================  ==================  =========  ==========================================

A loss-based rule passes when ``loss ≤ dense loss + ε``; the accuracy rule when
``accuracy ≥ dense − tolerance``. For an embedding model the dense loss is 0 (the model
against its own embeddings), so the rule is "mean cosine ≥ cos_min". ``strict`` is
paper 004's "strictly better than dense" (its tolerance is ignored). The loss-based
predictors (quadratic, Gaussian width, certified) take the same ``ε`` for the loss tasks,
so each prediction and its measured limit share one tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prunelab.errors import PrunelabError


@dataclass(frozen=True)
class TaskMetric:
    """How one task's limits are measured.

    Attributes:
        task: The task name (``DataBundle.task``).
        key: The key of :func:`prunelab.train.evaluate`'s result that is compared.
        higher_is_better: ``True`` for accuracy, ``False`` for a loss.
        setting: The settings field that holds the user's tolerance.
        unit: Unit of ``ε`` (the tolerance in the compared metric's units).
    """

    task: str
    key: str
    higher_is_better: bool
    setting: str
    unit: str


#: task -> its metric; the only place the choice is made
METRICS: dict[str, TaskMetric] = {
    "classification": TaskMetric("classification", "accuracy", True, "tolerance", "points"),
    "language-model": TaskMetric("language-model", "loss", False, "loss_tolerance", "nats"),
    "embedding": TaskMetric("embedding", "loss", False, "min_cosine", "1 − cos"),
}

#: a classifier's loss version of its limits (the rule of :func:`loss_rule`)
CLASSIFIER_LOSS = TaskMetric("classification", "loss", False, "loss_tolerance", "nats")


def _number(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if isinstance(value, bool) or not math.isfinite(out):
        raise PrunelabError(f"{name}: must be a finite number, got {value!r}")
    return out


def check_tolerances(
    tolerance: float = 0.5, loss_tolerance: float = 0.05, min_cosine: float = 0.99
) -> tuple[float, float, float]:
    """Validate the three tolerances (every one, whatever the task: a typo is a typo).

    Args:
        tolerance: Accuracy points, in ``[0, 100]``.
        loss_tolerance: Nats, ``>= 0``.
        min_cosine: A mean cosine similarity, in ``[-1, 1]``.

    Returns:
        The three as floats.

    Raises:
        PrunelabError: One line naming the bad value and the allowed range.

    Example:
        >>> check_tolerances(0.5, 0.1, 0.99)
        (0.5, 0.1, 0.99)
    """
    tol = _number(tolerance, "tolerance")
    if not 0.0 <= tol <= 100.0:
        raise PrunelabError(f"tolerance must be in [0, 100] percentage points, got {tolerance!r}")
    loss_tol = _number(loss_tolerance, "loss_tolerance")
    if loss_tol < 0.0:
        raise PrunelabError(f"loss_tolerance: must be >= 0 nats, got {loss_tolerance!r}")
    cos_min = _number(min_cosine, "min_cosine")
    if not -1.0 <= cos_min <= 1.0:
        raise PrunelabError(f"min_cosine: must be in [-1, 1] (a mean cosine), got {min_cosine!r}")
    return tol, loss_tol, cos_min


def task_metric(task: str, name: str = "") -> TaskMetric:
    """The :class:`TaskMetric` of ``task``; refuses a task without a limit (regression).

    Example:
        >>> task_metric("language-model").key
        'loss'
    """
    if task not in METRICS:
        raise PrunelabError(
            f"dataset {name or '?'!r} is a {task} task: limits are defined for {', '.join(METRICS)}"
        )
    return METRICS[task]


@dataclass(frozen=True)
class LimitRule:
    """A pass rule for one task and tolerance.

    Attributes:
        metric: The task's :class:`TaskMetric`.
        eps: The tolerance in the metric's units (points, or loss units).
        strict: Paper 004's "strictly better than dense".
        stated: The tolerance as the user gave it, in words (``"min cosine 0.99"``).
    """

    metric: TaskMetric
    eps: float
    strict: bool
    stated: str

    def threshold(self, dense: float) -> float:
        """The value a pruned model must reach (``≥`` for accuracy, ``≤`` for a loss)."""
        if self.strict:
            return dense
        return dense - self.eps if self.metric.higher_is_better else dense + self.eps

    def passes(self, value: float, threshold: float) -> bool:
        """Whether ``value`` passes ``threshold`` (NaN never passes)."""
        if self.metric.higher_is_better:
            return value > threshold if self.strict else value >= threshold
        return value < threshold if self.strict else value <= threshold

    def describe(self, dense: float) -> str:
        """The rule in words, with the numbers."""
        key, t = self.metric.key, self.threshold(dense)
        if self.strict:
            if self.metric.higher_is_better:
                return f"{key} > dense ({dense:.4g}%), strict"
            return f"{key} < dense ({dense:.6g}), strict"
        if self.metric.higher_is_better:
            return f"{key} >= dense - {self.eps:g} points ({t:.4g}%)"
        return f"{key} <= dense + {self.eps:.6g} ({t:.6g}; {self.stated})"


def limit_rule(
    task: str,
    *,
    tolerance: float = 0.5,
    loss_tolerance: float = 0.05,
    min_cosine: float = 0.99,
    strict: bool = False,
    name: str = "",
) -> LimitRule:
    """The pass rule of ``task`` from the user's tolerances (all three validated).

    Example:
        >>> r = limit_rule("embedding", min_cosine=0.99)
        >>> round(r.eps, 12), r.stated
        (0.01, 'min cosine 0.99 -> eps = 1 - 0.99 = 0.01 (loss = 1 - cos)')
        >>> r.passes(0.009, r.threshold(0.0)), r.passes(0.011, r.threshold(0.0))
        (True, False)
    """
    tol, loss_tol, cos_min = check_tolerances(tolerance, loss_tolerance, min_cosine)
    metric = task_metric(task, name)
    if metric.setting == "tolerance":
        return LimitRule(metric, tol, bool(strict), f"tolerance {tol:g} points")
    if metric.setting == "loss_tolerance":
        return LimitRule(metric, loss_tol, bool(strict), f"loss tolerance {loss_tol:g} nats")
    eps = 1.0 - cos_min
    stated = f"min cosine {cos_min:g} -> eps = 1 - {cos_min:g} = {eps:.6g} (loss = 1 - cos)"
    return LimitRule(metric, eps, bool(strict), stated)


def loss_rule(task: str, loss_tolerance: float = 0.05, min_cosine: float = 0.99) -> LimitRule:
    """The rule on the mean test loss, ``loss <= dense + ε``, for any task.

    A language or embedding model's own rule; for a classifier the loss version beside
    its accuracy rule, with ``ε`` = ``loss_tolerance`` nats (:func:`loss_eps`).

    Example:
        >>> r = loss_rule("classification", 0.05)
        >>> r.metric.key, r.eps, r.passes(0.34, r.threshold(0.3)), r.passes(0.36, r.threshold(0.3))
        ('loss', 0.05, True, False)
    """
    metric = METRICS.get(task)
    if metric is not None and metric.key == "loss":
        return limit_rule(task, loss_tolerance=loss_tolerance, min_cosine=min_cosine)
    eps = loss_eps(task, loss_tolerance, min_cosine)
    return LimitRule(CLASSIFIER_LOSS, eps, False, f"loss tolerance {eps:g} nats")


def loss_eps(task: str, loss_tolerance: float, min_cosine: float) -> float:
    """The ``ε`` (loss units) of the loss-based predictors and loss truths on ``task``.

    ``1 − min_cosine`` for an embedding model, else the loss tolerance in nats (for a
    classifier that is the ε of its *loss* limit, beside the accuracy one).

    Example:
        >>> round(loss_eps("embedding", 0.05, 0.98), 12), loss_eps("language-model", 0.1, 0.98)
        (0.02, 0.1)
    """
    _, loss_tol, cos_min = check_tolerances(0.0, loss_tolerance, min_cosine)
    return 1.0 - cos_min if METRICS.get(task) is METRICS["embedding"] else loss_tol
