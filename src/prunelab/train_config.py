"""Training hyper-parameters and the per-epoch learning-rate schedule.

Used by :mod:`prunelab.train` (which re-exports :class:`TrainConfig`). The rate is set
once per epoch (not per step), so a schedule is a pure function of the epoch index and a
few numbers, easy to check by hand.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal

from prunelab.errors import PrunelabError
from prunelab.schema import setting

SCHEDULES = ("constant", "step", "cosine")
OPTIMIZERS = ("sgd", "adam")


def lr_at_epoch(
    lr: float,
    epoch: int,
    epochs: int,
    schedule: str = "cosine",
    step_size: int = 30,
    gamma: float = 0.1,
    warmup_epochs: int = 0,
) -> float:
    """Learning rate used during epoch ``epoch`` (0-based) of an ``epochs``-long run.

    Warm-up: epochs ``0 .. W-1`` (``W = warmup_epochs``) ramp linearly,
    ``lr·(e+1)/W``, so the last warm-up epoch reaches ``lr``. After it, with
    ``t = e - W`` and ``T = epochs - W``:

    * ``constant``: ``lr``;
    * ``step``: ``lr·gamma^floor(t / step_size)``;
    * ``cosine``: ``lr·(1 + cos(π t / T)) / 2``, which heads to 0 at the end of the run
      but never trains an epoch at rate 0 (the last epoch uses ``t = T - 1``).

    Args:
        lr: Base learning rate.
        epoch: 0-based epoch index.
        epochs: Total epochs of the run (warm-up included).
        schedule: ``"constant"``, ``"step"`` or ``"cosine"``.
        step_size: Epochs between decays of ``step``.
        gamma: Decay factor of ``step``.
        warmup_epochs: Length of the linear warm-up.

    Returns:
        The learning rate.

    Raises:
        ValueError: For an unknown schedule (configs are validated earlier, by
            :meth:`prunelab.train.TrainConfig.validate`, with a friendlier message).

    Example:
        >>> lr_at_epoch(0.1, 0, 10, "step", step_size=3, gamma=0.5, warmup_epochs=2)
        0.05
        >>> lr_at_epoch(0.1, 5, 10, "step", step_size=3, gamma=0.5, warmup_epochs=2)
        0.05
        >>> lr_at_epoch(1.0, 2, 4, "cosine")
        0.5
    """
    if epoch < warmup_epochs:
        return lr * (epoch + 1) / warmup_epochs
    t = epoch - warmup_epochs
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr * gamma ** (t // step_size)
    if schedule == "cosine":
        remaining = max(1, epochs - warmup_epochs)
        return lr * 0.5 * (1.0 + math.cos(math.pi * t / remaining))
    raise ValueError(f"unknown schedule {schedule!r}; valid choices: {', '.join(SCHEDULES)}")


@dataclass
class TrainConfig:
    """Hyper-parameters of a training or fine-tuning run (small, CPU-friendly defaults).

    Each field is declared once, here: the same declaration makes the ``prunelab train``
    flags (:func:`prunelab.schema.cli.add_arguments`) and the keys of a sweep's
    ``[train]`` / ``[[training]]`` / ``[finetune]`` tables
    (:func:`prunelab.schema.toml.overrides`).

    Attributes:
        epochs: Passes over the training split (0: only evaluate).
        batch_size: Examples per mini-batch.
        optimizer: ``"sgd"`` (with momentum) or ``"adam"``.
        lr: Base learning rate.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: Optimiser weight decay, applied to every parameter.
        schedule: ``"constant"``, ``"step"`` or ``"cosine"`` (per epoch, see
            :func:`prunelab.train_config.lr_at_epoch`).
        step_size: Epochs between decays of the ``step`` schedule.
        gamma: Decay factor of the ``step`` schedule.
        warmup_epochs: Epochs of linear warm-up before the schedule.
        l1: Coefficient of ``l1·Σ|θ|`` over the prunable set only (LOMP trains with it).
        l2: Coefficient of ``l2·Σθ²`` over the prunable set only.
        seed: Seeds the shuffling and the global RNG inside the run (dropout); commands
            and sweeps set it from their own seed, so it is neither a flag nor a key.
        progress: Show a tqdm progress bar on stderr (how a run is watched, not what it
            computes: not a flag, not a key).
    """

    # 30: fc5 / lenet300 on digits converge in ~20 epochs of SGD + cosine
    epochs: int = setting(30, "training epochs", minimum=0)
    batch_size: int = setting(64, "examples per step", minimum=1)
    optimizer: Literal["sgd", "adam"] = setting("sgd", "optimiser")
    lr: float = setting(0.05, "peak learning rate", minimum=0)
    momentum: float = setting(0.9, "SGD momentum", minimum=0)
    weight_decay: float = setting(0.0, "optimiser weight decay (all parameters)", minimum=0)
    schedule: Literal["constant", "step", "cosine"] = setting("cosine", "per-epoch schedule")
    step_size: int = setting(30, "epochs between decays of the step schedule", minimum=1)
    gamma: float = setting(0.1, "decay factor of the step schedule", minimum=0)
    warmup_epochs: int = setting(0, "epochs of linear warm-up", minimum=0)
    l1: float = setting(0.0, "l1 penalty on the prunable set (LOMP)", minimum=0)
    l2: float = setting(0.0, "l2 penalty on the prunable set", minimum=0)
    seed: int = setting(0, cli=False, toml=False)
    progress: bool = setting(False, cli=False, toml=False)

    def validate(self) -> TrainConfig:
        """Check every value; return ``self``. Raises PrunelabError naming the bad one."""

        def number(name: str, lo: float, strict: bool) -> None:
            v = getattr(self, name)
            bad = isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
            if bad or (v <= lo if strict else v < lo):
                rel = ">" if strict else ">="
                raise PrunelabError(f"{name} must be a finite number {rel} {lo}, got {v!r}")

        for name, lo in (("epochs", 0), ("batch_size", 1), ("step_size", 1), ("warmup_epochs", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise PrunelabError(f"{name} must be an integer >= {lo}, got {v!r}")
        if self.optimizer not in OPTIMIZERS:
            raise PrunelabError(
                f"unknown optimizer {self.optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise PrunelabError(
                f"unknown schedule {self.schedule!r}; valid choices: {', '.join(SCHEDULES)}"
            )
        for name in ("lr", "gamma"):
            number(name, 0.0, strict=True)
        for name in ("momentum", "weight_decay", "l1", "l2"):
            number(name, 0.0, strict=False)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise PrunelabError(f"seed must be an integer, got {self.seed!r}")
        return self

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch`` under this config (see :func:`lr_at_epoch`)."""
        return lr_at_epoch(
            self.lr,
            epoch,
            self.epochs,
            self.schedule,
            self.step_size,
            self.gamma,
            self.warmup_epochs,
        )

    def to_dict(self) -> dict:
        """Plain-dict form for ``meta.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error. Validates the result."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PrunelabError(
                f"unknown training option(s) {unknown}; valid: {', '.join(sorted(known))}"
            )
        return cls(**d).validate()
