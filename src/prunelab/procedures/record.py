"""What every pruning procedure returns besides the mask: a :class:`PruneRecord`.

It states what was done (criterion, hparams, schedule) and what it did: loss and
accuracy before pruning, **right after pruning and after fine-tuning** (paper 001's
point is that the two can disagree), the achieved sparsity, per-layer densities and
layer collapse, per-step losses, and timings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from torch import nn

from prunelab._evaluate import evaluate
from prunelab.data.base import DataBundle
from prunelab.masks import Mask


@dataclass
class PruneRecord:
    """The outcome of one pruning procedure.

    Attributes:
        procedure: ``"one-shot"``, ``"iterative"``, ``"at-init"``, ``"imp"`` or ``"lomp"``.
        criterion: Criterion name (``"magnitude"`` for IMP / LOMP).
        hparams: The criterion's hyper-parameters (``dataclasses.asdict``).
        target_sparsity: Requested fraction removed.
        scope: ``"global"`` or ``"layer"``.
        steps: Number of score-and-mask steps (rounds for IMP / SynFlow).
        densities: Density reached after each step (the exponential schedule).
        sparsity: Achieved fraction removed over the prunable set.
        nnz: Weights kept.
        total: Prunable weights ``D``.
        compression_ratio: ``D / nnz``.
        per_layer: :meth:`Mask.per_layer` rows.
        collapsed: Layers left with no weight.
        dense: Metrics before pruning (``None`` without a dataset).
        after_prune: Metrics right after pruning, before any fine-tuning.
        after_finetune: Metrics after fine-tuning (``None`` when not fine-tuned).
        step_log: Per-step rows (``step``, ``density``, ``nnz``, and ``loss`` on the scoring
            batches right after the step when data were given; ``loss_change`` when asked).
        history: Fine-tuning history rows of :func:`prunelab.train.train_model`.
        bn_recalibrated: Whether BatchNorm statistics were recomputed before scoring.
        warnings: Things the user should know (e.g. ``at-init`` on a trained model).
        seconds: Wall time per phase (``scoring``, ``finetune``, ...).
        extra: Procedure-specific details (``score_examples``: examples the scores
            used; IMP rounds; LOMP's ``l1``; ...).

    Metric dicts hold ``loss`` / ``accuracy`` (test split; accuracy in percent, ``None``
    for regression) and, when the training split was evaluated, ``train_loss`` /
    ``train_accuracy``.
    """

    procedure: str
    criterion: str
    hparams: dict
    target_sparsity: float
    scope: str
    steps: int
    densities: list[float]
    sparsity: float = 0.0
    nnz: int = 0
    total: int = 0
    compression_ratio: float = 1.0
    per_layer: list[dict] = field(default_factory=list)
    collapsed: list[str] = field(default_factory=list)
    dense: dict | None = None
    after_prune: dict | None = None
    after_finetune: dict | None = None
    step_log: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    bn_recalibrated: bool = False
    warnings: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def set_mask(self, mask: Mask) -> None:
        """Fill the achieved-sparsity fields from the final mask."""
        self.sparsity = mask.sparsity
        self.nnz = mask.nnz
        self.total = mask.total
        self.compression_ratio = mask.compression_ratio
        self.per_layer = [dict(r, shape=list(r["shape"])) for r in mask.per_layer()]
        self.collapsed = list(mask.collapsed)

    def to_dict(self) -> dict:
        """JSON-ready dict (an infinite compression ratio becomes ``None``)."""
        out = asdict(self)
        if not math.isfinite(out["compression_ratio"]):
            out["compression_ratio"] = None
        out["density"] = 1.0 - self.sparsity
        return out


def stage_metrics(
    model: nn.Module, data: DataBundle | None, eval_train: bool = True
) -> dict | None:
    """Test (and optionally training) loss and accuracy of ``model`` in ``eval()`` mode.

    Returns:
        ``{"loss", "accuracy"[, "train_loss", "train_accuracy"]}`` or ``None`` without data.
    """
    if data is None:
        return None
    out = dict(evaluate(model, data, "test"))
    if eval_train:
        train = evaluate(model, data, "train")
        out["train_loss"], out["train_accuracy"] = train["loss"], train["accuracy"]
    return out
