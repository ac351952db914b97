"""Settings of a limit prediction and of the measured limit.

Declared once: ``prunelab limit`` flags, a sweep's ``[predictions.gaussian_width]`` and
``[predictions.actual]`` tables, and the defaults of :func:`prunelab.limits.predict_limit`
and :func:`prunelab.limits.find_actual_limit`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from prunelab.errors import PrunelabError
from prunelab.schema import setting

#: Fields added after sweeps were stored: left out of :meth:`to_dict` while at their
#: defaults, so every stored run keeps its identity (hash) and a sweep resumes.
LATE_FIELDS = {"ActualSettings": ("loss_tolerance", "min_cosine"), "TruthSettings": ("min_cosine",)}


def _identity(settings) -> dict:
    """``asdict(settings)`` without the :data:`LATE_FIELDS` that are at their defaults."""
    out = asdict(settings)
    for key in LATE_FIELDS.get(type(settings).__name__, ()):
        if out[key] == getattr(type(settings), key):
            del out[key]
    return out


@dataclass(frozen=True)
class LimitSettings:
    """The spectral (Gaussian-width, paper 004) prediction's numerical settings.

    Attributes:
        num_iters: Lanczos steps per SLQ run.
        num_runs: Rademacher runs per SLQ seed.
        num_seeds: SLQ seeds; the spread of ``p̂`` over them is reported.
        samples: Training examples for the Hessian (the first ones, unshuffled).
        batch_size: Examples per Hessian-vector-product batch (memory only).
        eps: Loss tolerance ``ε``; ``None``: 004's rule (sd of mini-batch training losses).
        zero_mass: Near-zero spectrum: ``auto`` / ``jacobian`` / ``ritz`` / ``none`` or a
            fraction in ``[0, 1)``.
        probes: Probes of the certified (GGN) limit, :func:`~prunelab.limits.certified_limit`.
        max_iters: Its Lanczos budget per probe.
        bracket: Its target width of the Gauss / Gauss–Radau bracket (0.005 = 0.5 point).
    """

    num_iters: int = setting(64, "Lanczos steps per run", flag="iters", minimum=1)
    num_runs: int = setting(4, "SLQ runs per seed", flag="runs", minimum=1)
    num_seeds: int = setting(3, "SLQ seeds (spread of p̂)", flag="seeds", minimum=1)
    samples: int = setting(1024, "training examples in the Hessian", minimum=1)
    batch_size: int = setting(256, "examples per product batch (memory only)", minimum=1)
    eps: float | None = setting(
        None, "loss tolerance ε (default: sd of mini-batch training losses)", minimum=0
    )
    zero_mass: float | Literal["auto", "jacobian", "ritz", "none"] = setting(
        "auto", "near-zero spectrum: auto | jacobian | ritz | none | a fraction"
    )
    probes: int = setting(8, "certified limit: Rademacher probes", minimum=1)
    max_iters: int = setting(256, "certified limit: Lanczos budget per probe", minimum=1)
    bracket: float = setting(0.005, "certified limit: stop at this bracket width", minimum=0)

    def to_dict(self) -> dict:
        """Plain dict (sweep identities, ``meta.json``)."""
        return asdict(self)


@dataclass(frozen=True)
class ActualSettings:
    """The measured (one-shot magnitude, no fine-tuning) limit's search.

    The task picks which tolerance applies (:mod:`prunelab.limits.task_metric`); every
    one is validated.

    Attributes:
        tolerance: Accuracy drop allowed, in points (classification).
        loss_tolerance: Validation-loss increase allowed, in nats (language model; also
            the ``ε`` of the quadratic predictor on every task).
        min_cosine: Smallest mean cosine to the dense embeddings (embedding task);
            ``ε = 1 − min_cosine`` in loss units.
        strict: Paper 004's rule: the first failing grid point ends the search.
        grid: Sparsities scanned before bisection (``None``: a 1 % grid).
        bisect_steps: Bisection steps between the last pass and the first failure.
    """

    tolerance: float = setting(0.5, "accuracy drop allowed (points; classification)", minimum=0)
    loss_tolerance: float = setting(
        0.05, "loss increase allowed (nats; language model, quadratic ε)", minimum=0
    )
    min_cosine: float = setting(
        0.99, "smallest mean embedding cosine (embedding; ε = 1 − cos)", minimum=-1
    )
    strict: bool = setting(False, "stop at the first failing grid point (paper 004)")
    grid: tuple[float, ...] | None = setting(None, "sparsities scanned before bisection")
    bisect_steps: int = setting(8, "bisection steps after the grid", minimum=0)

    def to_dict(self) -> dict:
        """Plain dict (sweep identities, ``meta.json``); late fields at defaults left out."""
        return _identity(self)


@dataclass(frozen=True)
class TruthSettings:
    """The ground truths with intervals (:mod:`prunelab.limits.truth`) and the quadratic model.

    Attributes:
        tolerance: Accuracy drop allowed, in points (one-shot and fine-tuned limits).
        loss_tolerance: Loss increase allowed (nats): the loss-based one-shot limit and
            the ``ε`` of the quadratic predictor and references.
        min_cosine: Embedding task: smallest mean cosine, ``ε = 1 − min_cosine``.
        grid_step: Grid step of the one-shot limit and the quadratic curves.
        bootstrap: Resamples of the test examples.
        seeds: Fine-tuning seeds of the fine-tuned limit (its interval).
        finetune_epochs: The fine-tuning budget after magnitude pruning.
        finetune_lr: Its learning rate (constant schedule).
        bisect_steps: Bisection steps of the fine-tuned limit.
        reference: What the fine-tuned limit's threshold is set from: ``paired`` (the same
            budget and seed applied at ``p = 0``) or ``dense`` (the dense model).
    """

    tolerance: float = setting(0.5, "accuracy drop allowed (points)", minimum=0)
    loss_tolerance: float = setting(0.05, "loss increase allowed (nats)", minimum=0)
    min_cosine: float = setting(0.99, "embedding: smallest mean cosine (ε = 1 − cos)", minimum=-1)
    grid_step: float = setting(0.0025, "grid step of the one-shot limit", minimum=0)
    bootstrap: int = setting(1000, "bootstrap resamples of the test examples", minimum=0)
    seeds: tuple[int, ...] = setting((0, 1, 2), "fine-tuning seeds of the fine-tuned limit")
    finetune_epochs: int = setting(2, "fine-tuning epochs of the fine-tuned limit", minimum=1)
    finetune_lr: float = setting(0.01, "its learning rate (constant)", minimum=0)
    bisect_steps: int = setting(7, "bisection steps of the fine-tuned limit", minimum=1)
    reference: Literal["paired", "dense"] = setting(
        "paired", "fine-tuned limit's reference: paired (same budget at p = 0) | dense"
    )

    def grid(self) -> list[float]:
        """The sparsity grid ``0, step, 2·step, ... < 1``."""
        return [round(i * self.grid_step, 6) for i in range(int(round(1 / self.grid_step)))]

    def to_dict(self) -> dict:
        """Plain dict (sweep identities, ``meta.json``); late fields at defaults left out."""
        return _identity(self)


@dataclass(frozen=True)
class AllocationSettings:
    """``prunelab limit --per-layer``: per-layer limits and a sparsity allocation.

    Attributes:
        per_layer: Print each layer's predicted limit and the allocations.
        sparsity: Overall sparsity of the allocations (fraction removed).
        predictor: The per-layer cost model (:mod:`prunelab.limits._layer_costs`).
        grid_step: Grid step of the per-layer cost curves.
    """

    per_layer: bool = setting(False, "per-layer predicted limits and sparsity allocation")
    sparsity: float = setting(0.9, "overall sparsity of the per-layer allocation", minimum=0)
    predictor: Literal["quadratic", "gaussian-width"] = setting(
        "quadratic", "per-layer cost model of the curvature allocation"
    )
    grid_step: float = setting(0.01, "grid step of the per-layer cost curves", minimum=0)

    def grid(self) -> list[float]:
        """``0, step, 2·step, ... < 1``."""
        if not 0 < self.grid_step < 1:
            raise PrunelabError(f"grid_step must be in (0, 1), got {self.grid_step!r}")
        return [round(i * self.grid_step, 6) for i in range(int(round(1 / self.grid_step)))]

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)
