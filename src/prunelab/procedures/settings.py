"""How a model is pruned: the one settings object of every procedure.

:class:`PruneSettings` is declared once and read three ways: ``prunelab prune`` flags,
a sweep's ``[scoring]`` table (defaults of every procedure) and each ``[[procedures]]``
table (via :mod:`prunelab.schema`). :func:`prunelab.procedures.dispatch.run_procedure`
is the one place that turns it into a call of a procedure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal

from prunelab._topk import parse_nm
from prunelab.errors import PrunelabError
from prunelab.procedures._common import SCORE_BATCH_SIZE, SCORE_SAMPLES
from prunelab.procedures.at_init import SYNFLOW_ROUNDS
from prunelab.procedures.lomp import DEFAULT_L1
from prunelab.procedures.rare_gems import DEFAULT_LAMBDA, DEFAULT_SCORE_LR
from prunelab.schema import setting

KINDS = ("one-shot", "iterative", "at-init", "imp", "lomp", "rare-gems")
#: procedures that start from the initialisation instead of a trained model
FROM_INIT = ("at-init", "imp", "rare-gems")
#: procedures whose masks come from their own rule, not a criterion's scores (a sweep
#: runs them once, under magnitude, instead of once per criterion)
CRITERION_FREE = ("imp", "lomp", "rare-gems")
#: kind -> the kind-specific settings it accepts (the others must keep their defaults)
KIND_KEYS = {
    "one-shot": ("loss_change",),
    "iterative": ("steps", "loss_change"),
    "at-init": ("bn_recalibrate", "rounds", "loss_change"),
    "imp": ("rounds", "rewind_epoch"),
    "lomp": ("l1", "loss_change"),
    "rare-gems": ("rounds", "gem_lambda", "gem_epochs", "gem_lr", "gem_forward"),
}
_SPECIFIC = ("steps", "bn_recalibrate", "rounds", "rewind_epoch", "l1", "loss_change",
             "gem_lambda", "gem_epochs", "gem_lr", "gem_forward")  # fmt: skip
#: Rare Gems keys left out of :meth:`PruneSettings.to_dict` when unset (older run ids stay)
_GEM_KEYS = ("gem_lambda", "gem_epochs", "gem_lr", "gem_forward")


@dataclass(frozen=True)
class PruneSettings:
    """A pruning procedure and its scoring data (methods.md §3).

    Attributes:
        kind: ``one-shot``, ``iterative`` (paper 001), ``at-init`` (paper 002), ``imp``,
            ``lomp`` (paper 004) or ``rare-gems`` (GEM-MINER); ``None`` means one-shot, or
            iterative when ``steps > 1``.
        scope: ``global``, per-``layer`` or per-output-``row`` ranking (Wanda's).
        nm: ``N:M`` semi-structured masks, e.g. ``2:4`` (N of every M consecutive weights
            along the input dimension; needs sparsity >= 1 - N/M); ``None``: unstructured.
        steps: Re-scored steps on the exponential density schedule.
        samples: Training examples used by data-dependent criteria.
        batch_size: Examples per scoring batch (memory only).
        min_per_layer: Weights every layer keeps (layer-collapse guard).
        loss_change: Record predicted vs measured ``ΔL`` per step (``hvp``: the exact
            quadratic model; ``diagonal``: the criterion's curvature diagonal).
        bn_recalibrate: At init, recompute BatchNorm statistics before scoring.
        rounds: At-init score-and-mask rounds (SynFlow: 100), IMP's rounds, or Rare
            Gems' freezing steps (default 1: one top-k after the score phase).
        rewind_epoch: IMP rewinds to the weights after this many epochs.
        l1: LOMP's ``ℓ1`` strength (default: the dense model's, else 004's 5e-5).
        gem_lambda: Rare Gems' score penalty ``λ·Σs²`` (default
            :data:`~prunelab.procedures.rare_gems.DEFAULT_LAMBDA`).
        gem_epochs: Rare Gems' score-phase epochs (default: the training run's).
        gem_lr: Rare Gems' score learning rate (default
            :data:`~prunelab.procedures.rare_gems.DEFAULT_SCORE_LR`).
        gem_forward: ``relaxed`` (``w ⊙ s``, default) or ``rounded`` (straight-through).
    """

    kind: Literal["one-shot", "iterative", "at-init", "imp", "lomp", "rare-gems"] | None = setting(
        None, "procedure (default: one-shot, iterative when --steps > 1)", flag="procedure"
    )
    scope: Literal["global", "layer", "row"] = setting("global", "ranking scope")
    nm: str | None = setting(None, "N:M mask, e.g. 2:4 (N kept of every M inputs)")
    steps: int | None = setting(None, "re-scored pruning steps (paper 001)", minimum=1)
    samples: int = setting(SCORE_SAMPLES, "training examples for data criteria", minimum=1)
    batch_size: int = setting(
        SCORE_BATCH_SIZE, "examples per scoring batch", flag="score-batch-size", minimum=1
    )
    min_per_layer: int = setting(1, "weights every layer keeps", minimum=0)
    loss_change: Literal["none", "hvp", "diagonal"] = setting(
        "none", "record predicted vs measured loss change"
    )
    bn_recalibrate: bool = setting(False, "recompute BatchNorm statistics first (at-init)")
    rounds: int | None = setting(None, "at-init rounds (SynFlow: 100) or IMP rounds", minimum=1)
    rewind_epoch: int | None = setting(None, "IMP: rewind to this epoch's weights", minimum=0)
    l1: float | None = setting(None, "LOMP: l1 strength of the dense training", minimum=0)
    gem_lambda: float | None = setting(
        None, f"Rare Gems: score penalty lambda (default {DEFAULT_LAMBDA:g})", minimum=0
    )
    gem_epochs: int | None = setting(
        None, "Rare Gems: score-phase epochs (default: the training run's)", minimum=1
    )
    gem_lr: float | None = setting(
        None, f"Rare Gems: score learning rate (default {DEFAULT_SCORE_LR:g})", minimum=0
    )
    gem_forward: Literal["relaxed", "rounded"] | None = setting(
        None, "Rare Gems: relaxed w*s (default) or rounded, straight-through"
    )

    @property
    def procedure(self) -> str:
        """The kind, with the default resolved (``one-shot`` / ``iterative``)."""
        if self.kind is not None:
            return self.kind
        return "iterative" if (self.steps or 1) > 1 else "one-shot"

    def validate(self) -> PruneSettings:
        """Check the combination; return ``self``. Errors name the parameter.

        Raises:
            PrunelabError: A kind-specific setting given to a kind that ignores it, a
                missing required one, or a value out of range.
        """
        for key, lo in (("steps", 1), ("rounds", 1), ("rewind_epoch", 0), ("samples", 1),
                        ("batch_size", 1), ("min_per_layer", 0)):  # fmt: skip
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or value < lo):
                raise PrunelabError(f"{key}: must be an integer >= {lo}, got {value!r}")
        if self.nm is not None:
            parse_nm(self.nm)
        if self.l1 is not None and not self.l1 > 0:
            raise PrunelabError(f"l1: must be > 0, got {self.l1}")
        for key, strict in (("gem_lambda", False), ("gem_lr", True)):
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value < 0 or (strict and value == 0)
            ):  # fmt: skip
                raise PrunelabError(f"{key}: must be a finite number {'>' if strict else '>='} 0, "
                                    f"got {value!r}")  # fmt: skip
        if self.gem_epochs is not None and (
            isinstance(self.gem_epochs, bool) or not isinstance(self.gem_epochs, int)
            or self.gem_epochs < 1
        ):  # fmt: skip
            raise PrunelabError(f"gem_epochs: must be an integer >= 1, got {self.gem_epochs!r}")
        if self.gem_forward not in (None, "relaxed", "rounded"):
            raise PrunelabError(
                f"gem_forward: must be 'relaxed' or 'rounded', got {self.gem_forward!r}"
            )
        kind = self.procedure
        defaults = PruneSettings()
        for key in _SPECIFIC:
            given = getattr(self, key) != getattr(defaults, key)
            if given and key not in KIND_KEYS[kind] and not (key == "steps" and self.steps == 1):
                only = " or ".join(repr(k) for k in KINDS if key in KIND_KEYS[k])
                valid = ", ".join(KIND_KEYS[kind])
                raise PrunelabError(
                    f"{key}: not valid for kind {kind!r} (only for {only}); valid: {valid}"
                )
        if kind == "imp" and self.nm is not None:
            raise PrunelabError("nm: not valid for kind 'imp' (its rounds prune by magnitude)")
        if kind == "rare-gems" and self.nm is not None:
            raise PrunelabError("nm: not valid for kind 'rare-gems' (its mask is a top-k)")
        if kind == "iterative" and self.steps is None:
            raise PrunelabError("steps: required for kind 'iterative'")
        if kind == "imp" and self.rounds is None:
            raise PrunelabError("rounds: required for kind 'imp'")
        return self

    def resolved(self, criterion: str, train_l1: float = 0.0) -> PruneSettings:
        """Every default that depends on the context filled in (part of a run's identity).

        Args:
            criterion: The criterion (SynFlow scores at init in 100 rounds).
            train_l1: ``ℓ1`` of the dense training (LOMP's default strength).
        """
        kind = self.validate().procedure
        out = replace(self, kind=kind)
        if kind == "at-init" and self.rounds is None:
            out = replace(out, rounds=SYNFLOW_ROUNDS if criterion == "synflow" else 1)
        if kind == "imp" and self.rewind_epoch is None:
            out = replace(out, rewind_epoch=1)
        if kind == "lomp" and self.l1 is None:
            out = replace(out, l1=train_l1 or DEFAULT_L1)
        if kind == "rare-gems":
            out = replace(
                out, rounds=self.rounds or 1, gem_forward=self.gem_forward or "relaxed",
                gem_lambda=DEFAULT_LAMBDA if self.gem_lambda is None else self.gem_lambda,
                gem_lr=self.gem_lr or DEFAULT_SCORE_LR,
            )  # fmt: skip
        return out

    @property
    def label(self) -> str:
        """A short name built from the kind and its settings, e.g. ``iterative-14steps``."""
        parts = [self.procedure]
        if self.steps is not None and self.procedure == "iterative":
            parts.append(f"{self.steps}steps")
        if self.bn_recalibrate:
            parts.append("bn")
        if self.rounds is not None:
            parts.append(f"{self.rounds}rounds")
        if self.rewind_epoch is not None:
            parts.append(f"rewind{self.rewind_epoch}")
        if self.nm is not None:
            parts.append(self.nm)
        if self.l1 is not None:
            parts.append(f"l1={self.l1:g}")
        if self.gem_lambda is not None:
            parts.append(f"lambda={self.gem_lambda:g}")
        if self.gem_epochs is not None:
            parts.append(f"{self.gem_epochs}score-epochs")
        if self.gem_lr is not None:
            parts.append(f"score-lr={self.gem_lr:g}")
        if self.gem_forward == "rounded":
            parts.append("rounded")
        return "-".join(parts)

    def to_dict(self) -> dict:
        """Plain dict (``meta.json``, sweep identities).

        ``nm`` and the Rare Gems keys appear only when set, so other runs keep the
        identities they had before those keys existed (a sweep resumes over them).
        """
        out = asdict(self)
        for key in ("nm", *_GEM_KEYS):
            if out[key] is None:
                del out[key]
        return out
