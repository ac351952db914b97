"""One entry point with plain arguments for the CLI and the sweep runner.

:func:`run_procedure` maps the ``prunelab prune`` flags onto a procedure:

* ``--at-init`` → :func:`~prunelab.procedures.at_init.at_init` (``--bn-recalibrate``,
  ``--rounds``; SynFlow defaults to 100 rounds);
* ``--steps k`` with ``k > 1`` → :func:`~prunelab.procedures.iterative.iterative`;
* otherwise → :func:`~prunelab.procedures.oneshot.one_shot`.
"""

from __future__ import annotations

from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.procedures._common import SCORE_BATCH_SIZE, SCORE_SAMPLES, check_steps
from prunelab.procedures.at_init import at_init as _at_init
from prunelab.procedures.iterative import iterative
from prunelab.procedures.record import PruneRecord
from prunelab.prunable import PrunableSpec
from prunelab.train import TrainConfig


def looks_trained(meta: dict | None) -> bool:
    """Whether a checkpoint's ``meta.json`` says its weights were trained or pruned.

    Example:
        >>> looks_trained({"job": "train", "train": {"epochs": 3}})
        True
        >>> looks_trained({"job": "train", "train": {"epochs": 0}})
        False
    """
    if not meta:
        return False
    if meta.get("job") == "train":
        return int((meta.get("train") or {}).get("epochs", 0)) > 0
    return meta.get("job") is not None


def run_procedure(
    model: nn.Module,
    data: DataBundle,
    criterion: str,
    sparsity: float,
    *,
    steps: int = 1,
    at_init: bool = False,
    bn_recalibrate: bool = False,
    rounds: int | None = None,
    scope: str = "global",
    spec: PrunableSpec | None = None,
    previous: Mask | None = None,
    hparams: dict | None = None,
    score_samples: int = SCORE_SAMPLES,
    score_batch_size: int = SCORE_BATCH_SIZE,
    finetune: TrainConfig | None = None,
    loss_change: str | None = None,
    parent_meta: dict | None = None,
    eval_train: bool = True,
) -> tuple[Mask, PruneRecord]:
    """Prune ``model`` in place as the CLI flags describe, fine-tune, and record everything.

    Args:
        model: The network (from a checkpoint).
        data: Its dataset.
        criterion: A name in :data:`prunelab.scores.CRITERIA`.
        sparsity: Target fraction removed, in ``[0, 1)``.
        steps: ``--steps``: re-scored steps after training (1 = one-shot).
        at_init: ``--at-init``: treat the model as an initialisation (paper 002).
        bn_recalibrate: ``--bn-recalibrate`` (needs ``at_init``).
        rounds: ``--rounds`` for at-init (default: 100 for SynFlow, else ``steps``).
        scope: ``--scope``.
        spec: Prunable set (default: ``previous.spec``).
        previous: The checkpoint's mask; its pruned weights stay pruned.
        hparams: Criterion hyper-parameters (``--curvature`` → ``curvature``, ...).
        score_samples: ``--samples``: training examples for data criteria.
        score_batch_size: Examples per scoring batch.
        finetune: ``--finetune-epochs`` etc. (for at-init: the training run).
        loss_change: ``--loss-change hvp|diagonal``: record predicted vs measured ΔL.
        parent_meta: The checkpoint's ``meta.json``; with ``at_init`` a trained parent
            gives a warning (recorded, not an error).
        eval_train: Also evaluate the training split.

    Returns:
        ``(mask, PruneRecord)``; store ``record.to_dict()`` in ``meta.json``.

    Raises:
        PrunelabError: ``steps < 1``, ``--bn-recalibrate`` without ``--at-init``, and
            everything the procedures refuse.
    """
    check_steps(steps)
    if bn_recalibrate and not at_init:
        raise PrunelabError("--bn-recalibrate only applies with --at-init")
    if rounds is not None and not at_init:
        raise PrunelabError("--rounds only applies with --at-init; use --steps after training")
    options = dict(
        scope=scope,
        spec=spec,
        previous=previous,
        score_samples=score_samples,
        score_batch_size=score_batch_size,
        loss_change=loss_change,
        eval_train=eval_train,
        **(hparams or {}),
    )
    if at_init:
        if rounds is None and steps > 1:
            rounds = steps
        return _at_init(
            model,
            data,
            criterion,
            sparsity,
            bn_recalibrate,
            train_config=finetune,
            rounds=rounds,
            already_trained=looks_trained(parent_meta),
            **options,
        )
    procedure = "iterative" if steps > 1 else "one-shot"
    return iterative(
        model,
        criterion,
        sparsity,
        steps,
        data=data,
        finetune=finetune,
        procedure=procedure,
        **options,
    )
