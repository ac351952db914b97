"""How a model is pruned: the one settings object of every procedure.

:class:`PruneSettings` is declared once and read three ways: ``prunelab prune`` flags,
a sweep's ``[scoring]`` table (defaults of every procedure) and each ``[[procedures]]``
table (via :mod:`prunelab.schema`). :func:`prunelab.procedures.dispatch.run_procedure`
is the one place that turns it into a call of a procedure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

from prunelab._topk import parse_nm
from prunelab.errors import PrunelabError
from prunelab.procedures._common import SCORE_BATCH_SIZE, SCORE_SAMPLES
from prunelab.procedures.at_init import SYNFLOW_ROUNDS
from prunelab.procedures.lomp import DEFAULT_L1
from prunelab.schema import setting

KINDS = ("one-shot", "iterative", "at-init", "imp", "lomp")
#: procedures that start from the initialisation instead of a trained model
FROM_INIT = ("at-init", "imp")
#: kind -> the kind-specific settings it accepts (the others must keep their defaults)
KIND_KEYS = {
    "one-shot": ("loss_change",),
    "iterative": ("steps", "loss_change"),
    "at-init": ("bn_recalibrate", "rounds", "loss_change"),
    "imp": ("rounds", "rewind_epoch"),
    "lomp": ("l1", "loss_change"),
}
_SPECIFIC = ("steps", "bn_recalibrate", "rounds", "rewind_epoch", "l1", "loss_change")


@dataclass(frozen=True)
class PruneSettings:
    """A pruning procedure and its scoring data (methods.md §3).

    Attributes:
        kind: ``one-shot``, ``iterative`` (paper 001), ``at-init`` (paper 002), ``imp``
            or ``lomp`` (paper 004); ``None`` means one-shot, or iterative when
            ``steps > 1``.
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
        rounds: At-init score-and-mask rounds (SynFlow: 100), or IMP's rounds.
        rewind_epoch: IMP rewinds to the weights after this many epochs.
        l1: LOMP's ``ℓ1`` strength (default: the dense model's, else 004's 5e-5).
    """

    kind: Literal["one-shot", "iterative", "at-init", "imp", "lomp"] | None = setting(
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
        return "-".join(parts)

    def to_dict(self) -> dict:
        """Plain dict (``meta.json``, sweep identities).

        ``nm`` appears only when set, so unstructured runs keep the identities they had
        before ``nm`` existed (a sweep resumes over them).
        """
        out = asdict(self)
        if out["nm"] is None:
            del out["nm"]
        return out
