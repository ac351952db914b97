"""The real peers: PyHessian 0.1, hessian-eigenthings 1.0.0a5, curvlinops-for-pytorch 3.0.1.

Each is called the way its documentation shows, on the same model, data and parameters
(all of them) as prunelab. Choices that are ours, not the packages':

- PyHessian 0.1's ``density()`` calls ``torch.eig``, removed from PyTorch;
  :func:`patch_torch_eig` puts a replacement (``torch.linalg.eigh`` on the symmetric
  tridiagonal, in ``torch.eig``'s old return format) **into this process only**; nothing
  is installed or edited. PyHessian is given ``data=`` (graph built once and kept) when
  the problem has one batch and ``dataloader=`` otherwise, as its README does.
- curvlinops is built with ``check_deterministic=False``: its default check costs extra
  passes over the data at every construction, which would only slow it down here.
  Its SLQ is ``fast_lanczos`` (Papyan 2020, no re-orthogonalisation) per run, without
  the ``eigsh`` boundary estimates ``lanczos_approximate_spectrum`` adds; its top
  eigenvalue is SciPy's ``eigsh(k=1, which="LA", tol=1e-3)`` on ``to_scipy()``.
- hessian-eigenthings has no adaptive-stop Lanczos; its top eigenvalue is timed both as
  ``lanczos(k=1, which="LA", max_iter=20)`` (reorthogonalised) and as
  ``power_iteration_one(tol=1e-3)``; it offers no Hessian diagonal.
"""

from __future__ import annotations

import numpy as np
import torch
from _contestants import EIG_TOL, Contestant, flat, unflat
from torch import nn


def patch_torch_eig() -> None:
    """Give this process a ``torch.eig`` (removed in PyTorch 2.x) for PyHessian's ``density()``.

    ``torch.eig(T, eigenvectors=True)`` returned ``(values (n, 2) [real, imag],
    vectors (n, n))``; PyHessian reads ``values[:, 0]`` and ``vectors[0, :] ** 2``.
    """

    def eig(T, eigenvectors=False):
        w, V = torch.linalg.eigh(T)
        return torch.stack([w, torch.zeros_like(w)], 1), V

    torch.eig = eig


class PyHessian(Contestant):
    """``pyhessian.hessian`` (Yao et al. 2020)."""

    name = "PyHessian"

    def _h(self, pb):
        from pyhessian import hessian

        if len(pb.batches) == 1:
            return hessian(pb.model, pb.loss_fn, data=pb.batches[0], cuda=False)
        return hessian(pb.model, pb.loss_fn, dataloader=pb.batches, cuda=False)

    def _hv(self, h, v_list):
        from pyhessian.utils import hessian_vector_product

        if h.full_dataset:
            return h.dataloader_hv_product(v_list)[1]
        return hessian_vector_product(h.gradsH, h.params, v_list)

    def _run(self, pb, fn):
        # PyHessian leaves create_graph gradients in p.grad, which keep the graph alive.
        try:
            return fn(self._h(pb))
        finally:
            pb.model.zero_grad(set_to_none=True)

    def hvp(self, pb, v):
        return self._run(pb, lambda h: flat(self._hv(h, unflat(v, h.params))).detach())

    def hvp_block(self, pb, V):
        def go(h):
            cols = [flat(self._hv(h, unflat(V[:, i], h.params))) for i in range(V.shape[1])]
            return torch.stack(cols, 1).detach()

        return self._run(pb, go)

    def slq(self, pb, steps, runs, seed):
        torch.manual_seed(seed)
        eigs, _ = self._run(pb, lambda h: h.density(iter=steps, n_v=runs))
        return {"top_ritz": float(max(max(r) for r in eigs))}

    def trace(self, pb, probes, seed):
        torch.manual_seed(seed)
        vhv = self._run(pb, lambda h: h.trace(maxIter=probes, tol=0.0))  # tol 0: all probes
        return {"trace": float(np.mean(vhv)), "probes": len(vhv)}

    def top_eig(self, pb, seed):
        torch.manual_seed(seed)
        vals, _ = self._run(pb, lambda h: h.eigenvalues(maxIter=100, tol=EIG_TOL))
        return {"top": float(vals[0])}

    def lanczos_steps(self, pb, steps):
        self._run(pb, lambda h: h.density(iter=steps, n_v=1))


def _eigenthings_op(pb):
    import hessian_eigenthings as he

    return he.HessianOperator(pb.model, pb.batches, he.supervised_loss(pb.loss_fn))


class Eigenthings(Contestant):
    """``hessian_eigenthings.HessianOperator`` (autograd double backward)."""

    name = "eigenthings"

    def _op(self, pb):
        return _eigenthings_op(pb)

    def hvp(self, pb, v):
        return self._op(pb).matvec(v).detach()

    def hvp_block(self, pb, V):
        op = self._op(pb)
        return torch.stack([op.matvec(V[:, i]) for i in range(V.shape[1])], 1).detach()

    def slq(self, pb, steps, runs, seed):
        import hessian_eigenthings as he

        res = he.spectral_density(self._op(pb), num_runs=runs, lanczos_steps=steps, seed=seed)
        return {"top_ritz": float(res.raw_eigenvalues.nan_to_num(-np.inf).max())}

    def trace(self, pb, probes, seed):
        import hessian_eigenthings as he

        return {"trace": float(he.hutchinson(self._op(pb), num_samples=probes, seed=seed).estimate)}

    def top_eig(self, pb, seed):
        import hessian_eigenthings as he

        res = he.lanczos(self._op(pb), k=1, max_iter=20, which="LA", tol=EIG_TOL, seed=seed)
        return {
            "top": float(res.eigenvalues[0]),
            "products": res.iterations,
            "residual": float(res.residuals[0]),
        }

    def lanczos_steps(self, pb, steps):
        import hessian_eigenthings as he

        op = self._op(pb)
        v0 = torch.randn(op.size)
        he.lanczos_tridiagonal(op, v0, steps, reorthogonalize=True)


class EigenthingsPower(Contestant):
    """hessian-eigenthings' power iteration (top eigenvalue only)."""

    name = "eigenthings power"

    def top_eig(self, pb, seed):
        import hessian_eigenthings as he

        value, _vec, _res, iters, _ok = he.power_iteration_one(
            _eigenthings_op(pb), tol=EIG_TOL, seed=seed
        )
        return {"top": float(value), "products": iters}


class Curvlinops(Contestant):
    """``curvlinops.HessianLinearOperator`` (vmap over the columns of a block)."""

    name = "curvlinops"

    def _op(self, pb):
        from curvlinops import HessianLinearOperator

        return HessianLinearOperator(
            pb.model, nn.CrossEntropyLoss(), pb.params, pb.batches, check_deterministic=False
        )

    def hvp(self, pb, v):
        return (self._op(pb) @ v).detach()

    def hvp_block(self, pb, V):
        return (self._op(pb) @ V).detach()

    def slq(self, pb, steps, runs, seed):
        from curvlinops.papyan2020traces.spectrum import fast_lanczos

        torch.manual_seed(seed)
        op = self._op(pb)
        tops = [float(fast_lanczos(op, steps)[0].max()) for _ in range(runs)]
        return {"top_ritz": max(tops)}

    def trace(self, pb, probes, seed):
        from curvlinops import hutchinson_trace

        torch.manual_seed(seed)
        return {"trace": float(hutchinson_trace(self._op(pb), probes))}

    def diag(self, pb, probes, seed):
        from curvlinops import hutchinson_diag

        torch.manual_seed(seed)
        return {"diag_sum": float(hutchinson_diag(self._op(pb), probes).sum())}

    def top_eig(self, pb, seed):
        from scipy.sparse.linalg import eigsh

        np.random.seed(seed)
        (value,) = eigsh(
            self._op(pb).to_scipy(), k=1, which="LA", tol=EIG_TOL, return_eigenvectors=False
        )
        return {"top": float(value)}

    def lanczos_steps(self, pb, steps):
        from curvlinops.papyan2020traces.spectrum import fast_lanczos

        fast_lanczos(self._op(pb), steps)
