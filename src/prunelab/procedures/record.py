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


def block_of(name: str) -> str:
    """The block a prunable tensor belongs to: its name up to the first numeric component.

    Transformers and residual nets number their repeated blocks (``blocks.3.attn.q.weight``,
    ``encoder.layer.3.attention.self.query.weight``), so the prefix through that number
    groups a block's attention and MLP weights; a name without a number is its own block.

    Example:
        >>> block_of("blocks.3.attn.q.weight"), block_of("encoder.layer.0.output.dense.weight")
        ('blocks.3', 'encoder.layer.0')
        >>> block_of("fc1.weight")
        'fc1.weight'
    """
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return name


def per_block(per_layer: list[dict]) -> list[dict]:
    """Sum :meth:`Mask.per_layer` rows by :func:`block_of`, in first-seen order.

    Returns:
        Rows ``{"block", "layers", "kept", "total", "density"}``.

    Example:
        >>> rows = [{"name": "blocks.0.q.weight", "kept": 1, "total": 4},
        ...         {"name": "blocks.0.k.weight", "kept": 3, "total": 4}]
        >>> per_block(rows)
        [{'block': 'blocks.0', 'layers': 2, 'kept': 4, 'total': 8, 'density': 0.5}]
    """
    blocks: dict[str, dict] = {}
    for row in per_layer:
        name = block_of(row["name"])
        b = blocks.setdefault(name, {"block": name, "layers": 0, "kept": 0, "total": 0})
        b["layers"] += 1
        b["kept"] += int(row["kept"])
        b["total"] += int(row["total"])
    for b in blocks.values():
        b["density"] = b["kept"] / b["total"] if b["total"] else 0.0
    return list(blocks.values())


def stage_rows(record: dict) -> list[dict]:
    """``dense`` / ``after_prune`` / ``after_finetune`` rows of a record, task-aware columns.

    The task's own quality measure comes first: perplexity for a language model (whose
    ``accuracy`` is next-token accuracy), mean cosine for an embedding task, accuracy for
    a classifier; regression shows the loss alone.

    Example:
        >>> stage_rows({"dense": {"loss": 2.0, "accuracy": 40.0, "perplexity": 7.39}})
        [{'stage': 'dense', 'perplexity': 7.39, 'loss': 2.0, 'accuracy': 40.0}]
    """
    stages = [k for k in ("dense", "after_prune", "after_finetune") if record.get(k)]
    if not stages:
        return []
    first = record[stages[0]]
    if "perplexity" in first:
        columns = ("perplexity", "loss", "accuracy")
    elif "cosine" in first:
        columns = ("cosine", "loss")
    else:
        columns = ("accuracy", "loss") if first.get("accuracy") is not None else ("loss",)
    return [{"stage": k, **{c: record[k].get(c) for c in columns}} for k in stages]
