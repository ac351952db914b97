"""The benchmark peer: a minimal re-implementation of PyHessian's algorithms.

PyHessian (Yao et al., pip ``pyhessian``) is not installable on this machine (no network,
not in the local package index), so this file re-implements, in our own code, the parts
of its ``hessian`` class that the benchmark compares against, following its published
algorithm step by step:

- ``hv(v)`` = PyHessian's ``dataloader_hv_product``: for every batch, ``zero_grad``,
  forward, ``loss.backward(create_graph=True)``, read ``p.grad + 0.`` for every parameter
  that requires grad, ``zero_grad``, then ``autograd.grad(grads, params,
  grad_outputs=v)``; accumulate ``Hv · batch_size`` and divide by the example count.
  Parameters and vectors are Python lists of per-parameter tensors.
- ``density(iters, n_v)``: ``n_v`` Lanczos chains **one after another**, each step one
  full-data ``hv``; full re-orthogonalisation against every stored vector (one
  Gram-Schmidt pass); a random restart vector if ``β = 0``; the tridiagonal solved by
  ``torch.linalg.eigh`` (PyHessian's ``torch.eig`` was removed from PyTorch).
- ``eigenvalues(max_iter, tol)``: power iteration on ``hv`` with PyHessian's relative
  stopping rule.
- ``trace(max_iter, tol)``: Hutchinson with Rademacher probes and PyHessian's relative
  stopping rule on the running mean.
"""

from __future__ import annotations

import torch


def _dot(xs, ys):
    return sum(torch.sum(x * y) for x, y in zip(xs, ys, strict=True))


def _normalise(vs):
    norm = torch.sqrt(_dot(vs, vs))
    return [v / (norm + 1e-6) for v in vs]  # PyHessian adds 1e-6 to the norm


def _orthonormalise(w, basis):
    for v in basis:
        c = _dot(w, v)
        w = [wi - c * vi for wi, vi in zip(w, v, strict=True)]
    return _normalise(w)


class PyHessianPeer:
    """PyHessian-style Hessian computations over all parameters that require grad.

    Args:
        model: The model (eval mode).
        criterion: ``(output, y) -> scalar`` mean-reduced loss.
        batches: List of ``(x, y)`` batches (the "full dataset" mode).
    """

    def __init__(self, model, criterion, batches):
        self.model = model
        self.criterion = criterion
        self.batches = list(batches)
        self.params = [p for p in model.parameters() if p.requires_grad]

    def hv(self, v):
        """Full-data Hessian-vector product (batch-size weighted mean) and ``vᵀHv``."""
        acc = [torch.zeros_like(p) for p in self.params]
        total = 0
        for x, y in self.batches:
            self.model.zero_grad()
            n = x.shape[0]
            loss = self.criterion(self.model(x), y)
            loss.backward(create_graph=True)
            grads = [p.grad + 0.0 for p in self.params]
            self.model.zero_grad()
            hv = torch.autograd.grad(
                grads, self.params, grad_outputs=v, only_inputs=True, retain_graph=False
            )
            acc = [a + h * float(n) + 0.0 for a, h in zip(acc, hv, strict=True)]
            total += n
        acc = [a / float(total) for a in acc]
        return float(_dot(acc, v)), acc

    def _rademacher(self, gen):
        out = []
        for p in self.params:
            r = torch.randint(0, 2, p.shape, generator=gen).to(p)
            out.append(r * 2 - 1)
        return out

    def density(self, iters: int, n_v: int, seed: int = 0):
        """SLQ as PyHessian runs it: chains one at a time. Returns (ritz values, weights)."""
        gen = torch.Generator().manual_seed(seed)
        eigen_runs, weight_runs = [], []
        for _ in range(n_v):
            v = _normalise(self._rademacher(gen))
            basis = [v]
            alphas, betas = [], []
            w = None
            for i in range(iters):
                if i > 0:
                    beta = float(torch.sqrt(_dot(w, w)))
                    betas.append(beta)
                    if beta != 0.0:
                        v = _orthonormalise(w, basis)
                    else:
                        v = _orthonormalise([torch.randn_like(p) for p in self.params], basis)
                    basis.append(v)
                _, w_prime = self.hv(v)
                alpha = float(_dot(w_prime, v))
                alphas.append(alpha)
                w = [wp - alpha * vi for wp, vi in zip(w_prime, v, strict=True)]
                if i > 0:
                    w = [wi - beta * vp for wi, vp in zip(w, basis[-2], strict=True)]
            T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
            off = torch.tensor(betas, dtype=torch.float64)
            T = T + torch.diag(off, 1) + torch.diag(off, -1)
            theta, U = torch.linalg.eigh(T)
            eigen_runs.append(theta.tolist())
            weight_runs.append((U[0] ** 2).tolist())
        return eigen_runs, weight_runs

    def eigenvalues(self, max_iter: int = 100, tol: float = 1e-3, seed: int = 0):
        """Top eigenvalue by power iteration. Returns (eigenvalue, iterations)."""
        gen = torch.Generator().manual_seed(seed)
        v = _normalise([torch.randn(p.shape, generator=gen).to(p) for p in self.params])
        eig = None
        for it in range(1, max_iter + 1):
            new, hv = self.hv(v)
            v = _normalise(hv)
            if eig is not None and abs(eig - new) / (abs(eig) + 1e-6) < tol:
                return new, it
            eig = new
        return eig, max_iter

    def trace(self, max_iter: int = 100, tol: float = 1e-3, seed: int = 0):
        """Hutchinson trace with PyHessian's stopping rule. Returns (trace, probes used)."""
        gen = torch.Generator().manual_seed(seed)
        values, mean = [], 0.0
        for it in range(1, max_iter + 1):
            v = self._rademacher(gen)
            values.append(self.hv(v)[0])
            new = sum(values) / len(values)
            if it > 1 and abs(new - mean) / (abs(mean) + 1e-6) < tol:
                return new, it
            mean = new
        return mean, max_iter
