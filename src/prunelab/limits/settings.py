"""Settings of a limit prediction and of the measured limit.

Declared once: ``prunelab limit`` flags, a sweep's ``[predictions.gaussian_width]`` and
``[predictions.actual]`` tables, and the defaults of :func:`prunelab.limits.predict_limit`
and :func:`prunelab.limits.find_actual_limit`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from prunelab.schema import setting


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

    Attributes:
        tolerance: Accuracy drop allowed, in points.
        strict: Paper 004's rule: the first failing grid point ends the search.
        grid: Sparsities scanned before bisection (``None``: a 1 % grid).
        bisect_steps: Bisection steps between the last pass and the first failure.
    """

    tolerance: float = setting(0.5, "accuracy drop allowed (points)", minimum=0)
    strict: bool = setting(False, "stop at the first failing grid point (paper 004)")
    grid: tuple[float, ...] | None = setting(None, "sparsities scanned before bisection")
    bisect_steps: int = setting(8, "bisection steps after the grid", minimum=0)

    def to_dict(self) -> dict:
        """Plain dict (sweep identities, ``meta.json``)."""
        return asdict(self)


@dataclass(frozen=True)
class TruthSettings:
    """The ground truths with intervals (:mod:`prunelab.limits.truth`) and the quadratic model.

    Attributes:
        tolerance: Accuracy drop allowed, in points (one-shot and fine-tuned limits).
        loss_tolerance: Loss increase allowed (nats): the loss-based one-shot limit and
            the ``ε`` of the quadratic predictor and references.
        grid_step: Grid step of the one-shot limit and the quadratic curves.
        bootstrap: Resamples of the test examples.
        seeds: Fine-tuning seeds of the fine-tuned limit (its interval).
        finetune_epochs: The fine-tuning budget after magnitude pruning.
        finetune_lr: Its learning rate (constant schedule).
        bisect_steps: Bisection steps of the fine-tuned limit.
    """

    tolerance: float = setting(0.5, "accuracy drop allowed (points)", minimum=0)
    loss_tolerance: float = setting(0.05, "loss increase allowed (nats)", minimum=0)
    grid_step: float = setting(0.0025, "grid step of the one-shot limit", minimum=0)
    bootstrap: int = setting(1000, "bootstrap resamples of the test examples", minimum=0)
    seeds: tuple[int, ...] = setting((0, 1, 2), "fine-tuning seeds of the fine-tuned limit")
    finetune_epochs: int = setting(2, "fine-tuning epochs of the fine-tuned limit", minimum=1)
    finetune_lr: float = setting(0.01, "its learning rate (constant)", minimum=0)
    bisect_steps: int = setting(7, "bisection steps of the fine-tuned limit", minimum=1)

    def grid(self) -> list[float]:
        """The sparsity grid ``0, step, 2·step, ... < 1``."""
        return [round(i * self.grid_step, 6) for i in range(int(round(1 / self.grid_step)))]

    def to_dict(self) -> dict:
        """Plain dict (sweep identities, ``meta.json``)."""
        return asdict(self)
