"""Fisher diagonals from per-example gradients (``torch.func.vmap`` over examples).

- :func:`empirical_fisher_diag`: ``F_ii = mean_n g_{n,i}²`` with ``g_n`` the gradient of
  example ``n``'s loss at its *observed* label. Never the square of a batch-mean
  gradient, which is a different (and much smaller) quantity (methods.md §1).
- :func:`fisher_diag`: the true Fisher of softmax cross-entropy, equal to the GGN
  diagonal, ``mean_n Σ_c p_nc (∂ log p_nc / ∂θ_i)²``: exactly (one backward pass per
  class, vmapped) or from labels sampled from the model's own predictive distribution.

Both feed the Fisher / OBD / Taylor-2 importance scores.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad_and_value, jacrev, vmap

from prunelab.curvature._checks import check_int
from prunelab.curvature._dist import all_reduce_sum, any_rank
from prunelab.curvature._problem import ParamsArg, Problem, check_mean_reduced
from prunelab.curvature.estimate import Estimate, RunningMean
from prunelab.errors import PrunelabError

#: Per-example gradients are formed in chunks of at most this many scalars (2^25 ≈ 33M).
MAX_CHUNK_ELEMENTS = 2**25

_METHODS = ("exact", "sampled")


def _chunks(n: int, rows_per_example: int, dim: int, chunk_size: int | None):
    size = chunk_size or max(1, MAX_CHUNK_ELEMENTS // (rows_per_example * dim))
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _finish(problem: Problem, acc: Tensor, bad: str | None) -> Tensor:
    """All-reduce the size-weighted sums, agree on failures, divide by ``N``."""
    if problem.world.active:
        all_reduce_sum(acc, problem.world)
        if any_rank(bad is not None, problem.world, problem.device):
            raise PrunelabError(bad or "non-finite per-example gradient on another rank")
    elif bad is not None:
        raise PrunelabError(bad)
    return acc / problem.num_examples


def empirical_fisher_diag(
    model: nn.Module,
    loss_fn,
    batches: Iterable,
    params: ParamsArg = None,
    *,
    chunk_size: int | None = None,
    shard: bool | None = None,
    distributed: bool | None = None,
) -> Tensor:
    """Empirical Fisher diagonal ``mean_n (∂ℓ_n/∂θ_i)²`` from per-example gradients.

    Args:
        model: The model (deterministic, see :class:`~prunelab.curvature.Hessian`).
        loss_fn: Mean-reduced ``(output, y) -> scalar`` loss; ``ℓ_n`` is it applied to
            example ``n`` alone.
        batches: Iterable of ``(x, y)`` batches.
        params: ``None`` (prunable set), a ``PrunableSpec`` or parameter names.
        chunk_size: Examples per vmapped chunk (default: keep ``chunk × D`` ≤ 2^25).
        shard: As for the operators, with ``torch.distributed``.
        distributed: As for the operators.

    Returns:
        ``(D,)`` tensor, flattened in the order of ``prunable_parameters`` / ``params``.

    Raises:
        PrunelabError: On a non-finite loss or gradient (the batch is named).
    """
    p = Problem(model, loss_fn, batches, params, shard=shard, distributed=distributed)
    check_mean_reduced(p)

    def example_loss(th, xi, yi):
        return p.loss_fn(p.output(th, xi[None]), yi[None])

    per_example = vmap(grad_and_value(example_loss), in_dims=(None, 0, 0))
    acc = torch.zeros(p.dim, dtype=p.dtype, device=p.device)
    bad = None
    with torch.no_grad():
        for b in p.batches:
            for s, e in _chunks(b.n, 1, p.dim, chunk_size):
                grads, losses = per_example(p.theta, b.x[s:e], b.y[s:e])
                g = p.cat(grads)
                if not (bool(torch.isfinite(losses).all()) and bool(torch.isfinite(g).all())):
                    bad = bad or f"non-finite per-example loss or gradient on {p.batch_label(b)}"
                    if not p.world.active:
                        raise PrunelabError(bad)
                acc += (g * g).sum(0)
    return _finish(p, acc, bad)


def _check_cross_entropy(p: Problem) -> int:
    """Refuse anything but softmax cross-entropy on integer labels; return the positions.

    Two layouts: a classifier's ``(N, C)`` logits with ``(N,)`` labels (one position), or
    a language model's ``(N, T, C)`` logits with ``(N, T)`` next-token labels, the loss
    being the mean over all ``N·T`` tokens (``T`` positions).
    """
    if not p.batches:
        return 1
    b = p.batches[0]
    with torch.no_grad():
        out = p.output(p.theta, b.x)
        ok = not b.y.is_floating_point() and out.ndim in (2, 3) and b.y.shape == out.shape[:-1]
        if ok:
            ref = F.cross_entropy(out.reshape(-1, out.shape[-1]), b.y.reshape(-1))
            got = p.loss_fn(out, b.y)
            ok = bool(torch.isclose(got, ref, rtol=1e-5, atol=1e-6))
    if not ok:
        raise PrunelabError(
            "fisher_diag needs softmax cross-entropy on (N, C) or (N, T, C) logits and integer "
            "labels; for other losses use GGN with hutchinson_diag or empirical_fisher_diag"
        )
    return 1 if out.ndim == 2 else out.shape[1]


def fisher_diag(
    model: nn.Module,
    loss_fn,
    batches: Iterable,
    params: ParamsArg = None,
    *,
    method: str = "exact",
    num_samples: int = 2,
    seed: int = 0,
    chunk_size: int | None = None,
    shard: bool | None = None,
    distributed: bool | None = None,
) -> Estimate:
    """True Fisher (= GGN) diagonal of softmax cross-entropy, ``mean_n Σ_c p_nc (∂ log p_nc)²``.

    For a language model (``(N, T, C)`` logits, loss the mean over all tokens) it is
    ``mean_n (1/T) Σ_t Σ_c p_ntc (∂ log p_ntc)²``; the sampled estimate draws every
    position's token from ``p_nt`` independently and squares the gradient of the summed
    log-probabilities, whose cross terms between positions have mean zero.

    Args:
        model: A classifier returning ``(N, C)`` logits, or a language model returning
            ``(N, T, C)``.
        loss_fn: Must be (numerically) ``F.cross_entropy`` with mean reduction (checked).
        batches: Iterable of ``(x, y)`` batches; ``y`` is only used for the check.
        params: ``None`` (prunable set), a ``PrunableSpec`` or parameter names.
        method: ``"exact"`` (all ``C`` classes, per-example Jacobians) or ``"sampled"``
            (labels drawn from ``p_n``; cost independent of ``C``).
        num_samples: Label draws per example for ``"sampled"`` (>= 2 for a stderr).
        seed: Seed of the label draws (per batch, so sharding does not change them).
        chunk_size: Examples per vmapped chunk (default keeps memory near 2^25 scalars).
        shard: As for the operators, with ``torch.distributed``.
        distributed: As for the operators.

    Returns:
        :class:`Estimate` with ``(D,)`` value and stderr; for ``"exact"`` the stderr is 0
        and ``num_samples`` is 0.
    """
    if method not in _METHODS:
        raise PrunelabError(f"unknown method {method!r}; valid choices: {', '.join(_METHODS)}")
    if method == "sampled":
        check_int(num_samples, "num_samples", 2)
    p = Problem(model, loss_fn, batches, params, shard=shard, distributed=distributed)
    positions = _check_cross_entropy(p)

    def log_probs(th, xi):
        lp = torch.log_softmax(p.output(th, xi[None])[0], dim=-1).reshape(-1)
        return lp, lp  # (C,) or the T·C log-probabilities of a sequence

    bad = None
    with torch.no_grad():
        if method == "exact":
            jac = vmap(jacrev(log_probs, has_aux=True), in_dims=(None, 0))
            acc = torch.zeros(p.dim, dtype=p.dtype, device=p.device)
            for b in p.batches:
                rows = p.output(p.theta, b.x[:1]).numel()  # C, or T·C for a sequence
                for s, e in _chunks(b.n, rows, p.dim, chunk_size):
                    jacs, lp = jac(p.theta, b.x[s:e])  # blocks (n, rows, *shape), (n, rows)
                    sq = torch.cat([j.reshape(*j.shape[:2], -1) ** 2 for j in jacs], dim=2)
                    if not bool(torch.isfinite(sq).all()):
                        bad = bad or f"non-finite log-probability gradient on {p.batch_label(b)}"
                    acc += torch.einsum("nc,ncd->d", lp.exp(), sq)
            value = _finish(p, acc, bad) / positions
            return Estimate(value, torch.zeros_like(value), 0)

        def picked(th, xi, c):
            # c: () or (T,) sampled labels; the sequence's log-probabilities are summed
            lp = torch.log_softmax(p.output(th, xi[None])[0], dim=-1)
            return lp.reshape(-1, lp.shape[-1]).gather(1, c.reshape(-1, 1)).sum()

        per_example = vmap(grad_and_value(picked), in_dims=(None, 0, 0))
        acc = torch.zeros(num_samples, p.dim, dtype=p.dtype, device=p.device)
        for b in p.batches:
            probs = torch.softmax(p.output(p.theta, b.x), dim=-1).double().cpu()
            state = np.random.SeedSequence([int(seed) % 2**64, b.index]).generate_state(2)
            gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
            flat = probs.reshape(-1, probs.shape[-1])  # (N·T, C): one draw per position
            labels = torch.multinomial(flat, num_samples, replacement=True, generator=gen)
            labels = labels.reshape(*probs.shape[:-1], num_samples).movedim(-1, 1)
            labels = labels.reshape(b.n, num_samples, -1).squeeze(-1).to(p.device)
            for k in range(num_samples):
                for s, e in _chunks(b.n, 1, p.dim, chunk_size):
                    grads, lp = per_example(p.theta, b.x[s:e], labels[s:e, k])
                    g = p.cat(grads)
                    if not bool(torch.isfinite(g).all()):
                        bad = bad or f"non-finite log-probability gradient on {p.batch_label(b)}"
                    acc[k] += (g * g).sum(0)
        stats = RunningMean()
        stats.add(_finish(p, acc, bad) / positions)
        return stats.estimate()
