"""The Hessian of the mean loss, applied to blocks of vectors.

Two ways to form ``H v`` (methods.md §1), both with ``torch.func.vmap`` over the ``k``
probes so that the forward pass and the gradient are computed once per batch:

- ``"rev-rev"`` (default): the vector-Jacobian product of the gradient. Measured on
  the 2-core CPU for a 784-1000-600-300-10 MLP it is the faster of the two (see
  benchmarks/CURVATURE.md).
- ``"fwd-rev"``: forward-over-reverse, ``jvp`` of the gradient (Pearlmutter's R-op).
  Where PyTorch lacks a forward-mode rule (2.13: ``F.mse_loss``'s gradient) it falls
  back to ``"rev-rev"`` with a logged warning.

One probe at a time (single-chain Lanczos, ``H @ v``) takes a third route in
``"rev-rev"`` mode: plain ``torch.autograd`` double backward, as PyHessian does. At
``k = 1`` there is nothing for ``vmap`` to share, and skipping the ``torch.func``
wrappers saves their per-operation overhead (measured on a 50k-weight MLP, 512
examples: 2.7 instead of 3.9 gradients per product; the same at 1.6M weights).

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
        # batch index -> vmap-able pullback (k > 1); ("single", index) -> autograd graph
        # (k = 1). An operator used one way only keeps one of the two per batch.
        self._vjp_cache: dict = {}
        self._cache_versions: tuple[int, ...] | None = None

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

    def _kernel(self, theta, x, y, vs):
        if self.mode == "rev-rev" and vs[0].shape[0] == 1 and not self.compile:
            return self._single_product(theta, x, y, vs)
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
        if vs[0].shape[0] == 1:  # one probe: plain double backward on a kept graph
            graph = self._vjp_cache.get(("single", b.index))
            if graph is None:
                graph = self._single_graph(self.problem.theta, b.x, b.y)
                self._vjp_cache[("single", b.index)] = graph
            return self._single_apply(graph, vs, keep=True)
        hit = self._vjp_cache.get(b.index)
        if hit is None:
            _, pullback, loss = vjp(self._grad_fn(b.x, b.y), self.problem.theta, has_aux=True)
            hit = self._vjp_cache[b.index] = (pullback, loss)
        pullback, loss = hit
        return vmap(pullback)(vs)[0], loss
