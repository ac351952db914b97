"""The Hessian of the mean loss, applied to blocks of vectors.

Two ways to form ``H v`` (methods.md §1):

- ``"rev-rev"`` (default): the vector-Jacobian product of the gradient. The gradient and
  its autograd graph are built once per batch (``create_graph=True``); each of the
  ``k`` probes is then one plain ``torch.autograd`` double backward on that graph, as
  PyHessian and hessian-eigenthings do for one probe. ``torch.func.vmap`` over the
  pullback (the earlier route, kept for ``compile=True``) shares the same forward and
  backward but does no fewer multiply-adds (the vmapped GEMMs are the same GEMMs,
  batched), and it adds copies, broadcast (stride-0) batched GEMMs and larger
  temporaries: one double backward per probe measured 0.83-0.98x its time for 10
  probes on the 50k-weight and 1.6M-weight MLPs and on the conv net (BENCHMARKS.md,
  "Blocked HVP against the arithmetic floor").
- ``"fwd-rev"``: forward-over-reverse, ``jvp`` of the gradient (Pearlmutter's R-op),
  vmapped over the probes. Where PyTorch lacks a forward-mode rule (2.13:
  ``F.mse_loss``'s gradient) it falls back to ``"rev-rev"`` with a logged warning.

With ``cache=True`` the gradient graph of every batch is kept between products, so an
iterative method (Lanczos, Hutchinson blocks) pays the forward and backward pass once
instead of once per product. It costs the memory of one autograd graph per batch
(activations and their gradients for all ``N`` examples), so by default
(``cache=None``) it is on only when the data are a single batch: that one graph is
built by every product anyway, and keeping it changes the peak memory little (as
PyHessian does with ``data=``). A cached graph is dropped by itself when a parameter
or buffer of the model has been changed in place since it was built (their version
counters moved), so a cached operator never returns products at stale weights.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor
from torch.func import grad_and_value, jvp, vjp, vmap

from prunelab.curvature._problem import Batch
from prunelab.curvature.operator import CurvatureOperator
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

_MODES = ("rev-rev", "fwd-rev")


class Hessian(CurvatureOperator):
    """``H = ∇²_θ L(θ)`` with ``L`` the mean loss over every example of ``batches``.

    Args:
        model: The model (deterministic: call ``model.eval()`` first if it has Dropout
            or BatchNorm).
        loss_fn: ``(output, y) -> scalar`` mean-reduced loss.
        batches: Iterable of ``(x, y)`` batches, weighted by size.
        params: ``None`` (prunable set), a ``PrunableSpec`` or parameter names.
        mode: ``"rev-rev"`` or ``"fwd-rev"`` (same numbers, different speed).
        cache: Keep each batch's gradient graph between products (faster, more memory);
            ``None`` (default): only when ``batches`` is a single batch in
            ``"rev-rev"`` mode without ``compile``.
        **kwargs: ``shard``, ``distributed``, ``compile`` as in :class:`CurvatureOperator`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(3, 2)).double()
        >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
        >>> H = Hessian(net, nn.functional.cross_entropy, [(x, y)])
        >>> H.shape
        (6, 6)
        >>> v = torch.randn(6, dtype=torch.float64)
        >>> bool(torch.allclose(H @ v, H.to_dense() @ v))
        True
    """

    kind = "Hessian"

    def __init__(
        self, model, loss_fn, batches, params=None, *, mode="rev-rev", cache=None, **kwargs
    ):
        if mode not in _MODES:
            raise PrunelabError(
                f"unknown Hessian mode {mode!r}; valid choices: {', '.join(_MODES)}"
            )
        super().__init__(model, loss_fn, batches, params, **kwargs)
        self.mode = mode
        if cache is None:
            cache = len(self.problem.batches) == 1 and mode == "rev-rev" and not self.compile
        self.cache = bool(cache)
        # ("single", index) -> autograd graph (rev-rev); batch index -> vmap-able
        # pullback (the "vmap" block route). One of the two per batch in practice.
        self._vjp_cache: dict = {}
        self._cache_versions: tuple[int, ...] | None = None
        # k > 1 probes in rev-rev mode: one double backward per probe on one graph
        # ("loop") or torch.func's vmapped pullback ("vmap"; always used when compiled).
        self._block_route = "loop"

    def clear_cache(self) -> None:
        """Drop the cached gradient graphs (needed after changing the weights in place)."""
        self._vjp_cache = {}
        self._cache_versions = None

    def _versions(self) -> tuple[int, ...]:
        """In-place modification counters of everything a product depends on."""
        p = self.problem
        tensors = [*p.theta, *p.fixed.values(), *p.model.buffers()]
        return tuple(t._version for t in tensors)

    def _grad_fn(self, x: Tensor, y: Tensor):
        """``θ -> (∇L_b(θ), L_b(θ))`` for one batch."""
        return grad_and_value(lambda th: self.problem.loss(th, x, y))

    def _single_graph(self, theta, x, y):
        """The gradient of batch ``(x, y)`` with its graph, for plain double backward."""
        with torch.enable_grad():
            th = tuple(t.detach().requires_grad_() for t in theta)
            loss = self.problem.loss(th, x, y)
            grads = torch.autograd.grad(loss, th, create_graph=True, materialize_grads=True)
        # A gradient entry that does not depend on θ (e.g. a parameter the loss does not
        # use) has no graph: its rows of H are zero.
        live = [i for i, g in enumerate(grads) if g.requires_grad]
        return th, [grads[i] for i in live], live, loss.detach()

    @staticmethod
    def _single_apply(graph, vs, keep: bool):
        """``H_b v`` for one probe ``vs`` (``k = 1`` blocks) on a :meth:`_single_graph`."""
        th, grads, live, loss = graph
        if not live:  # the loss is linear in θ: H = 0
            return tuple(torch.zeros_like(v) for v in vs), loss
        hv = torch.autograd.grad(
            grads,
            th,
            grad_outputs=[vs[i][0] for i in live],
            retain_graph=keep,
            materialize_grads=True,
        )
        return tuple(h.unsqueeze(0) for h in hv), loss

    def _single_product(self, theta, x, y, vs):
        """``H_b v`` for one probe by plain double backward (no ``torch.func``)."""
        return self._single_apply(self._single_graph(theta, x, y), vs, keep=False)

    def _looped_apply(self, graph, vs, keep: bool):
        """``H_b v_i`` for each of ``k`` probes, one double backward each on one graph.

        Returns a list of ``k`` per-probe tuples (the accumulator adds them in place).
        """
        k = vs[0].shape[0]
        out = []
        for i in range(k):
            hv, loss = self._single_apply(graph, [v[i : i + 1] for v in vs], keep or i < k - 1)
            out.append(hv)
        return out, loss

    def _kernel(self, theta, x, y, vs):
        if self.mode == "rev-rev" and vs[0].shape[0] == 1 and not self.compile:
            return self._single_product(theta, x, y, vs)
        if self.mode == "rev-rev" and self._block_route == "loop" and not self.compile:
            return self._looped_apply(self._single_graph(theta, x, y), vs, keep=False)
        g = self._grad_fn(x, y)
        if self.mode == "fwd-rev":

            def one(v):
                _, hv, loss = jvp(g, (theta,), (v,), has_aux=True)
                return hv, loss

            try:
                return vmap(one, out_dims=(0, None))(vs)
            except RuntimeError as exc:
                # Forward-mode AD has gaps (PyTorch 2.13: F.mse_loss's gradient); the
                # reverse-over-reverse product is the same matrix.
                log.warning("fwd-rev Hessian product failed (%s); using rev-rev", exc)
                self.mode = "rev-rev"
        _, pullback, loss = vjp(g, theta, has_aux=True)
        return vmap(pullback)(vs)[0], loss

    def _batch_product(self, b: Batch, vs):
        if not self.cache:
            return super()._batch_product(b, vs)
        versions = self._versions()
        if versions != self._cache_versions:  # weights changed in place: rebuild
            self._vjp_cache, self._cache_versions = {}, versions
        if vs[0].shape[0] == 1 or self._block_route == "loop":  # plain double backward, kept graph
            graph = self._vjp_cache.get(("single", b.index))
            if graph is None:
                graph = self._single_graph(self.problem.theta, b.x, b.y)
                self._vjp_cache[("single", b.index)] = graph
            if vs[0].shape[0] == 1:
                return self._single_apply(graph, vs, keep=True)
            return self._looped_apply(graph, vs, keep=True)
        hit = self._vjp_cache.get(b.index)
        if hit is None:
            _, pullback, loss = vjp(self._grad_fn(b.x, b.y), self.problem.theta, has_aux=True)
            hit = self._vjp_cache[b.index] = (pullback, loss)
        pullback, loss = hit
        return vmap(pullback)(vs)[0], loss
