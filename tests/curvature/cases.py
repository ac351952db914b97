"""Shared curvature test cases (model × loss × data) with slow, obviously-right references.

Every case is float64 and tiny (D ≤ ~250), so dense references are cheap:

- ``dense_hessian``: ``torch.func.hessian`` of the flattened full-data loss.
- ``dense_ggn``: ``Σ_b (n_b/N) J_bᵀ H_out,b J_b`` from explicit Jacobians.
- ``dense_empirical_fisher``: mean of ``g_n g_nᵀ`` with ``g_n`` from a Python loop of
  ``torch.autograd.grad`` calls, one example at a time.

Batches have unequal sizes so that size weighting is exercised.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian, jacrev

from prunelab.prunable import prunable_parameters

BATCH_SIZES = (5, 3, 4)
CASE_NAMES = ("mlp-ce", "mlp-mse", "conv-ce", "conv-mse")


@dataclass
class Case:
    """A model, a mean-reduced loss and a list of batches, plus dense references."""

    name: str
    model: nn.Module
    loss_fn: object
    batches: list
    names: list  # parameter names the operators span (the prunable set)

    @property
    def theta(self) -> torch.Tensor:
        params = dict(self.model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    @property
    def dim(self) -> int:
        return int(self.theta.numel())

    @property
    def num_examples(self) -> int:
        return sum(x.shape[0] for x, _ in self.batches)

    def unflatten(self, flat: torch.Tensor) -> dict:
        params = dict(self.model.named_parameters())
        out, start = {}, 0
        for n in self.names:
            k = params[n].numel()
            out[n] = flat[start : start + k].reshape(params[n].shape)
            start += k
        return out

    def output(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, self.unflatten(flat), (x,))

    def full_loss(self, flat: torch.Tensor) -> torch.Tensor:
        total = sum(x.shape[0] * self.loss_fn(self.output(flat, x), y) for x, y in self.batches)
        return total / self.num_examples

    def dense_hessian(self) -> torch.Tensor:
        return _cached(self.name, "hessian")

    def dense_ggn(self) -> torch.Tensor:
        return _cached(self.name, "ggn")

    def dense_empirical_fisher(self) -> torch.Tensor:
        return _cached(self.name, "empirical_fisher")

    def _dense_hessian(self) -> torch.Tensor:
        return hessian(self.full_loss)(self.theta)

    def _dense_ggn(self) -> torch.Tensor:
        G = torch.zeros(self.dim, self.dim, dtype=torch.float64)
        for x, y in self.batches:
            theta = self.theta
            out = self.output(theta, x)
            J = jacrev(lambda t, x=x: self.output(t, x).reshape(-1))(theta)  # (n*C, D)
            shape = out.shape
            H_out = hessian(lambda o, y=y, s=shape: self.loss_fn(o.reshape(s), y))(out.reshape(-1))
            G += x.shape[0] * J.T @ H_out @ J
        return G / self.num_examples

    def per_example_grads(self) -> torch.Tensor:
        params = dict(self.model.named_parameters())
        chosen = [params[n] for n in self.names]
        rows = []
        for x, y in self.batches:
            for i in range(x.shape[0]):
                loss = self.loss_fn(self.model(x[i : i + 1]), y[i : i + 1])
                grads = torch.autograd.grad(loss, chosen)
                rows.append(torch.cat([g.reshape(-1) for g in grads]))
        return torch.stack(rows)

    def _dense_empirical_fisher(self) -> torch.Tensor:
        g = self.per_example_grads()
        return g.T @ g / g.shape[0]


@functools.cache
def _cached(name: str, kind: str) -> torch.Tensor:
    """Dense reference of a freshly built case (cases are deterministic, so cache by name)."""
    return getattr(make_case(name), f"_dense_{kind}")().detach()


def _mlp(out_dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, out_dim))


def _conv(out_dim: int) -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.BatchNorm2d(3),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, out_dim),
    )
    bn = net[1]
    # Non-trivial running statistics and affine parameters, so eval-mode BN matters.
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return net


def make_case(name: str, seed: int = 0) -> Case:
    """Build case ``name`` deterministically (float64, eval mode)."""
    arch, loss = name.split("-")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    out_dim = 4 if loss == "ce" else 2
    model = (_mlp if arch == "mlp" else _conv)(out_dim).double().eval()
    in_shape = (5,) if arch == "mlp" else (1, 6, 6)
    batches = []
    for n in BATCH_SIZES:
        x = torch.randn(n, *in_shape, generator=gen, dtype=torch.float64)
        if loss == "ce":
            y = torch.randint(0, out_dim, (n,), generator=gen)
        else:
            y = torch.randn(n, out_dim, generator=gen, dtype=torch.float64)
        batches.append((x, y))
    loss_fn = F.cross_entropy if loss == "ce" else F.mse_loss
    names = list(prunable_parameters(model))
    return Case(name, model, loss_fn, batches, names)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``‖a − b‖ / ‖b‖`` (Frobenius)."""
    return float((a - b).norm() / b.norm())
