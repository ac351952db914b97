"""Rare Gems / GEM-MINER (Sreenivasan et al., NeurIPS 2022): learn a mask at initialisation.

The weights ``w`` stay frozen at their initialisation. Every prunable weight gets a score
``s ∈ [0, 1]``; the scores are trained by SGD on the relaxed objective

    L(w ⊙ s) + λ · Σ s²

(the data loss of the network whose weights are ``w ⊙ s``, plus a squared penalty that
pulls scores towards 0) and clipped back into ``[0, 1]`` after every step (projected SGD
onto the hypercube). The mask keeps the top ``round((1 − p)·D)`` scores, exactly as every
other procedure here (:meth:`prunelab.masks.Mask.from_scores`); the masked network is
then trained from the same initialisation (the usual fine-tuning path).

What follows the authors' stored code (``ksreenivasan/pruning_is_enough``: its README,
``utils/conv_type.py``, ``utils/net_utils.py`` and the ``configs/hypercube`` files),
since the paper's method section could not be retrieved in this session:

* scores start uniform on ``[0, 1]`` (``score_init: unif``) and weights are frozen
  (``freeze_weights: True``); the penalty is ``L2`` on the scores, summed, with ``lmbda``
  1e-4 in the sample config (3e-5 … 1e-4 elsewhere): :data:`DEFAULT_LAMBDA`;
* the score phase is SGD, learning rate 0.1, momentum 0.9, cosine, no weight decay:
  :data:`DEFAULT_SCORE_LR` (the rest comes from the training run's config);
* their GEM-MINER runs (``algo: hc_iter``, ``hc_quantized: True``) round the scores at
  0.5 in the forward pass with a straight-through gradient, and every ``iter_period``
  epochs permanently prune the lowest active scores (``prune_type: BottomK``) so the
  target sparsity is approached in steps.

Choices made here, where the sources leave room: ``forward="relaxed"`` (default, the
w ⊙ s relaxation) or ``"rounded"`` (the code's quantised forward, straight-through);
``rounds`` freezing steps on the exponential density schedule at evenly spaced epochs,
the last at the end of the score phase (``rounds=1``: train, then take the top-k once);
the final mask is always the exact top-k, not "scores > 0.5", so the sparsity is the one
asked for. Scores clipped to the same value (many end at exactly 0 or 1) are ranked by
``|w|``, then by position, so ties are broken by something meaningful and
deterministically.
"""

from __future__ import annotations

import copy
import math
import time

import torch
from torch import Tensor, nn
from torch.func import functional_call

from prunelab._evaluate import loss_function, placement, restore_modes, save_modes, to_model
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.masks import Mask
from prunelab.procedures._common import check_steps, finish
from prunelab.procedures.iterative import density_schedule
from prunelab.procedures.record import PruneRecord, stage_metrics
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.train import TrainConfig

#: score penalty λ of λ·Σs² (the authors' sample GEM-MINER config: ``lmbda: 0.0001``)
DEFAULT_LAMBDA = 1e-4
#: learning rate of the score phase (the authors' sample config: ``lr: 0.1``, SGD, cosine)
DEFAULT_SCORE_LR = 0.1
#: forward passes: the w ⊙ s relaxation, or scores rounded at 0.5 with a straight-through grad
FORWARDS = ("relaxed", "rounded")


def gem_objective(
    model: nn.Module,
    weights: dict[str, Tensor],
    scores: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    loss_fn,
    lam: float,
    keep: dict[str, Tensor] | None = None,
    forward: str = "relaxed",
) -> tuple[Tensor, Tensor]:
    """Data loss of the network with weights ``w ⊙ s`` and the penalty ``λ·Σ s²``.

    Args:
        model: The network; its own prunable tensors are not used (``weights`` are).
        weights: ``name -> w`` (frozen initial weights, parameter shapes).
        scores: ``name -> s`` (same shapes, values in ``[0, 1]``; the leaves trained).
        x: Input batch ``(N, ...)``.
        y: Targets ``(N,)``.
        loss_fn: Mean-reduced task loss.
        lam: Penalty coefficient ``λ >= 0`` (penalty summed over every score).
        keep: ``name -> 0/1`` of weights still allowed (frozen-pruned ones are 0).
        forward: ``"relaxed"`` uses ``s``; ``"rounded"`` uses ``1[s > 0.5]`` forward with
            the identity as its backward (straight-through).

    Returns:
        ``(data loss, penalty)``, scalars differentiable in ``scores``.
    """
    effective = {}
    for n, s in scores.items():
        if forward == "rounded":  # value 1[s > 0.5], gradient as if it were s
            s = s + ((s > 0.5).to(s.dtype) - s).detach()
        gate = s if keep is None else s * keep[n]
        effective[n] = weights[n] * gate
    data_loss = loss_fn(functional_call(model, effective, (x,)), y)
    penalty = lam * sum(s.pow(2).sum() for s in scores.values())
    return data_loss, penalty


def rank_scores(scores: dict[str, Tensor], weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """Global ranks (float64, 0 = worst) ordering by score, then ``|w|``, then position.

    Clipping leaves many scores exactly equal (0 or 1); ranking ties by position alone
    would favour the first layers, so the weight magnitude breaks them first, and the
    earlier position last (as :meth:`Mask.from_scores` does). The ranks are distinct
    integers, so the top-k of the ranks is the top-k of that lexicographic order, within
    the whole set or within each layer.

    Example:
        >>> s = {"a": torch.tensor([1.0, 0.2, 1.0])}
        >>> rank_scores(s, {"a": torch.tensor([0.1, 9.0, 0.5])})["a"].tolist()
        [1.0, 0.0, 2.0]
    """
    names = list(scores)
    s = torch.cat([scores[n].detach().reshape(-1).double().cpu() for n in names])
    w = torch.cat([weights[n].detach().reshape(-1).abs().double().cpu() for n in names])
    # stable sorts from the least significant key up: later positions first (they rank
    # lower on a full tie), then |w|, then the score
    order = torch.arange(s.numel() - 1, -1, -1)
    order = order[torch.sort(w[order], stable=True).indices]
    order = order[torch.sort(s[order], stable=True).indices]
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(s.numel(), dtype=torch.float64)
    out, at = {}, 0
    for n in names:
        k = scores[n].numel()
        out[n] = ranks[at : at + k].reshape(scores[n].shape)
        at += k
    return out


def _check(lam: float, rounds: int, forward: str, config: TrainConfig) -> None:
    if isinstance(lam, bool) or not isinstance(lam, int | float) or not math.isfinite(lam):
        raise PrunelabError(f"lam must be a finite number >= 0, got {lam!r}")
    if lam < 0:
        raise PrunelabError(f"lam must be a finite number >= 0, got {lam!r}")
    if forward not in FORWARDS:
        raise PrunelabError(f"forward must be one of {', '.join(FORWARDS)}, got {forward!r}")
    config.validate()
    if config.epochs < 1:
        raise PrunelabError(f"score_config.epochs must be >= 1, got {config.epochs}")
    check_steps(rounds, "rounds")
    if rounds > config.epochs:
        raise PrunelabError(f"rounds must be <= the score epochs ({config.epochs}), got {rounds}")
    for name in ("l1", "l2", "weight_decay"):
        if getattr(config, name):
            raise PrunelabError(
                f"score_config.{name} must be 0 (the scores' penalty is lam), "
                f"got {getattr(config, name)!r}"
            )


def train_scores(
    model: nn.Module,
    data: DataBundle,
    sparsity: float,
    config: TrainConfig,
    lam: float = DEFAULT_LAMBDA,
    rounds: int = 1,
    forward: str = "relaxed",
    *,
    scope: str = "global",
    spec: PrunableSpec | None = None,
    min_per_layer: int = 1,
) -> tuple[dict[str, Tensor], Mask, list[dict], list[dict]]:
    """The score phase: projected SGD on ``L(w ⊙ s) + λ·Σ s²``, freezing, final top-k.

    Arguments as in :func:`rare_gems` (``config`` = its ``score_config``). The model's
    state is restored bit for bit at the end (weights, biases, buffers, requires_grad,
    train/eval flags); the mask is not applied.

    Returns:
        ``(scores, mask, history, step_log)``: final scores (``name -> tensor``, pruned
        ones 0), the exact top-k mask, one row per score epoch, one row per freezing step.
    """
    sparsity = check_sparsity(sparsity)
    _check(lam, rounds, forward, config)
    params = prunable_parameters(model, spec)
    if not params:
        raise PrunelabError("model has no prunable parameters (no Linear/Conv weights)")
    device, dtype = placement(model)
    snapshot = copy.deepcopy(model.state_dict())
    weights = {n: p.detach().clone() for n, p in params.items()}
    init = torch.Generator().manual_seed(config.seed)  # drawn on the CPU: same on any device
    scores = {n: torch.rand(p.shape, generator=init, dtype=torch.float64).to(device, dtype)
              for n, p in params.items()}  # fmt: skip
    for s in scores.values():
        s.requires_grad_(True)
    keep = {n: torch.ones_like(s) for n, s in scores.items()}
    if config.optimizer == "adam":
        opt = torch.optim.Adam(list(scores.values()), lr=config.lr)
    else:
        opt = torch.optim.SGD(list(scores.values()), lr=config.lr, momentum=config.momentum)
    densities = density_schedule(1.0 - sparsity, rounds)
    # freezing step t ends epoch ceil(t·E/rounds): distinct epochs, the last one = E
    freeze_at = {math.ceil(t * config.epochs / rounds): t for t in range(1, rounds + 1)}
    loss_fn = loss_function(data)
    shuffles = torch.Generator().manual_seed(config.seed)
    mask, history, steps = Mask.dense(model, spec), [], []
    modes = save_modes(model)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:  # weights, biases, everything: only the scores learn
            p.requires_grad_(False)
        model.train()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config.seed)  # dropout, if any, is reproducible
            for epoch in range(1, config.epochs + 1):
                lr = config.lr_at(epoch - 1)
                for group in opt.param_groups:
                    group["lr"] = lr
                seed = int(torch.randint(0, 2**62, (1,), generator=shuffles))
                sums, n = [0.0, 0.0], 0
                for x, y in data.batches("train", config.batch_size, shuffle=True, seed=seed):
                    x, y = to_model(x, y, device, dtype)
                    data_loss, penalty = gem_objective(
                        model, weights, scores, x, y, loss_fn, lam, keep, forward
                    )
                    if not math.isfinite(float(data_loss.detach())):
                        raise PrunelabError(f"rare-gems: non-finite loss in score epoch {epoch}")
                    opt.zero_grad(set_to_none=True)
                    (data_loss + penalty).backward()
                    opt.step()
                    with torch.no_grad():  # project back onto the cube; frozen ones stay 0
                        for name, s in scores.items():
                            s.clamp_(0.0, 1.0).mul_(keep[name])
                    sums[0] += float(data_loss.detach()) * int(y.shape[0])
                    sums[1] += float(penalty.detach()) * int(y.shape[0])
                    n += int(y.shape[0])
                if epoch in freeze_at:
                    t = freeze_at[epoch]
                    p_t = sparsity if t == rounds else 1.0 - densities[t - 1]
                    mask = Mask.from_scores(rank_scores(scores, weights), p_t, scope,
                                            previous=mask, min_per_layer=min_per_layer,
                                            spec=spec)  # fmt: skip
                    with torch.no_grad():
                        for name, s in scores.items():
                            keep[name] = mask.masks[name].to(device, dtype)
                            s.mul_(keep[name])
                    steps.append({"step": t, "epoch": epoch, "density": mask.density,
                                  "nnz": mask.nnz})  # fmt: skip
                flat = torch.cat([s.detach().reshape(-1) for s in scores.values()])
                history.append({
                    "epoch": epoch, "lr": lr, "loss": sums[0] / max(n, 1),
                    "penalty": sums[1] / max(n, 1), "mean_score": float(flat.mean()),
                    "above_half": float((flat > 0.5).double().mean()), "density": mask.density,
                })  # fmt: skip
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        restore_modes(modes)
        model.load_state_dict(snapshot)  # the weights (and buffers) of the initialisation
    return {n: s.detach() for n, s in scores.items()}, mask, history, steps


def rare_gems(
    model: nn.Module,
    data: DataBundle,
    sparsity: float,
    *,
    lam: float = DEFAULT_LAMBDA,
    score_config: TrainConfig | None = None,
    rounds: int = 1,
    forward: str = "relaxed",
    finetune: TrainConfig | None = None,
    scope: str = "global",
    spec: PrunableSpec | None = None,
    min_per_layer: int = 1,
    eval_train: bool = True,
    already_trained: bool = False,
) -> tuple[Mask, PruneRecord]:
    """Find a GEM-MINER mask for ``model`` at initialisation, then train it masked.

    Args:
        model: The network at initialisation; pruned (and trained, with ``finetune``) in
            place. The score phase leaves its state exactly as it was.
        data: The dataset (the whole training split trains the scores).
        sparsity: Fraction removed, in ``[0, 1)``; exactly ``round((1 − p)·D)`` kept.
        lam: ``λ`` of the penalty ``λ·Σ s²`` (summed over every score), ``>= 0``.
        score_config: The score phase: epochs, batch size, optimiser, learning rate,
            momentum, schedule, and ``seed`` (score init and shuffles); its ``l1``,
            ``l2`` and ``weight_decay`` must be 0. Default: :class:`TrainConfig` with
            ``lr = DEFAULT_SCORE_LR``.
        rounds: Freezing steps on the exponential density schedule, at the ends of
            evenly spaced score epochs (``1``: one top-k at the end).
        forward: ``"relaxed"`` (``w ⊙ s``) or ``"rounded"`` (``w ⊙ 1[s > 0.5]``,
            straight-through gradient, as the authors' GEM-MINER runs).
        finetune: Masked training of the weights afterwards (``None``: mask only).
        scope: Ranking of the top-k: ``"global"`` (the paper's), ``"layer"`` or ``"row"``.
        spec: Prunable set.
        min_per_layer: Weights every layer keeps (layer-collapse guard).
        eval_train: Also evaluate the training split in the metrics.
        already_trained: The caller knows the weights are trained (recorded warning).

    Returns:
        ``(mask, PruneRecord)``; ``after_prune`` is the masked initialisation (the "rare
        gem" before any weight training); ``extra["score_history"]`` has one row per
        score epoch (``loss``, ``penalty``, ``mean_score``, ``above_half``, ``density``).

    Raises:
        PrunelabError: A bad value (named, with what is allowed), or a model without
            prunable parameters.
    """
    config = score_config or TrainConfig(lr=DEFAULT_SCORE_LR)
    spec = spec or PrunableSpec()
    hparams = {"lam": float(lam), "rounds": rounds, "forward": forward,
               "score": config.to_dict()}  # fmt: skip
    record = PruneRecord("rare-gems", "gem-miner", hparams, float(sparsity), scope, rounds, [])
    if already_trained:
        record.warnings.append("rare-gems was applied to a model that is already trained")
    started = time.perf_counter()
    _, mask, history, steps = train_scores(
        model, data, sparsity, config, lam, rounds, forward,
        scope=scope, spec=spec, min_per_layer=min_per_layer,
    )  # fmt: skip
    record.seconds["scoring"] = time.perf_counter() - started
    record.dense = stage_metrics(model, data, eval_train)
    record.densities = [row["density"] for row in steps]
    record.step_log, record.extra["score_history"] = steps, history
    mask.apply(model)
    record.after_prune = stage_metrics(model, data, eval_train)
    finish(model, data, mask, record, finetune, eval_train)
    return mask, record
