"""The one place that turns :class:`PruneSettings` into a call of a procedure.

``prunelab prune``, the sweep workers and the demo all prune through
:func:`run_procedure`, so a kind means the same thing everywhere:

* ``one-shot`` / ``iterative`` / ``lomp`` → :func:`~prunelab.procedures.iterative.iterative`
  on a trained model (LOMP: the model was trained with ``ℓ1``; the prune is magnitude);
* ``at-init`` → :func:`~prunelab.procedures.at_init.at_init` (prune, then train);
* ``imp`` → :func:`~prunelab.procedures.imp.imp` (train, prune, rewind, retrain);
* ``rare-gems`` → :func:`~prunelab.procedures.rare_gems.rare_gems` (learn scores on the
  frozen init, top-k, train); its score phase is the training run's config with the
  score learning rate, without penalties or warm-up (``criterion`` is not used).
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.procedures.at_init import at_init
from prunelab.procedures.imp import imp
from prunelab.procedures.iterative import iterative
from prunelab.procedures.rare_gems import rare_gems
from prunelab.procedures.record import PruneRecord
from prunelab.procedures.settings import PruneSettings
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
    settings: PruneSettings | None = None,
    *,
    hparams: dict | None = None,
    spec: PrunableSpec | None = None,
    previous: Mask | None = None,
    finetune: TrainConfig | None = None,
    parent_meta: dict | None = None,
    eval_train: bool = True,
    progress: bool = False,
    **overrides,
) -> tuple[Mask, PruneRecord]:
    """Prune ``model`` in place as ``settings`` say, fine-tune, and record everything.

    Args:
        model: The network: trained, or an initialisation for ``at-init`` / ``imp``.
        data: Its dataset.
        criterion: A name in :data:`prunelab.scores.CRITERIA` (``imp`` is magnitude).
        sparsity: Target fraction removed, in ``[0, 1)``.
        settings: The procedure (default: one-shot, global).
        hparams: Criterion hyper-parameters.
        spec: Prunable set (default: ``previous.spec``).
        previous: The checkpoint's mask; its pruned weights stay pruned.
        finetune: Training after pruning; for ``at-init`` the training run, for ``imp``
            the dense training that every round repeats.
        parent_meta: The checkpoint's ``meta.json``; at-init on a trained parent gives a
            recorded warning, and LOMP's ``ℓ1`` defaults to the parent's training one.
        eval_train: Also evaluate the training split.
        progress: Draw a bar of the scoring steps on stderr (not a setting).
        **overrides: :class:`PruneSettings` fields replacing those of ``settings``
            (``steps=3``, ``kind="at-init"``, ...).

    Returns:
        ``(mask, PruneRecord)``; store ``record.to_dict()`` in ``meta.json``.

    Raises:
        PrunelabError: Settings that do not fit together (naming the parameter), and
            everything the procedures refuse.
    """
    train_l1 = float(((parent_meta or {}).get("train") or {}).get("l1") or 0.0)
    s = replace(settings or PruneSettings(), **overrides).resolved(criterion, train_l1)
    if s.kind == "imp":
        if finetune is None:
            raise PrunelabError("kind 'imp' needs finetune= (the training every round repeats)")
        return imp(
            model, data, sparsity, s.rounds, finetune, s.rewind_epoch, scope=s.scope,
            spec=spec, min_per_layer=s.min_per_layer, eval_train=eval_train,
        )  # fmt: skip
    if s.kind == "rare-gems":
        base = finetune or TrainConfig()
        score_config = replace(
            base, epochs=s.gem_epochs or base.epochs, lr=s.gem_lr, l1=0.0, l2=0.0,
            weight_decay=0.0, warmup_epochs=0,
        )  # fmt: skip
        return rare_gems(
            model, data, sparsity, lam=s.gem_lambda, score_config=score_config,
            rounds=s.rounds, forward=s.gem_forward, finetune=finetune, scope=s.scope,
            spec=spec or (previous.spec if previous is not None else None),
            min_per_layer=s.min_per_layer, eval_train=eval_train,
            already_trained=looks_trained(parent_meta),
        )  # fmt: skip
    options = dict(
        scope=s.scope,
        spec=spec,
        previous=previous,
        min_per_layer=s.min_per_layer,
        score_samples=s.samples,
        score_batch_size=s.batch_size,
        loss_change=None if s.loss_change == "none" else s.loss_change,
        eval_train=eval_train,
        progress=progress,
        **({"nm": s.nm} if s.nm is not None else {}),
        **(hparams or {}),
    )
    if s.kind == "at-init":
        return at_init(
            model, data, criterion, sparsity, s.bn_recalibrate, train_config=finetune,
            rounds=s.rounds, already_trained=looks_trained(parent_meta), **options,
        )  # fmt: skip
    mask, record = iterative(
        model, criterion, sparsity, s.steps or 1, data=data, finetune=finetune,
        procedure=s.kind, **options,
    )  # fmt: skip
    if s.kind == "lomp":
        record.extra["l1"] = s.l1
    return mask, record
