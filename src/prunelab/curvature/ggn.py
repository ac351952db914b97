"""The generalised Gauss-Newton matrix ``G = Jᵀ H_out J``, applied to blocks of vectors.

``J`` is the Jacobian of the model output with respect to ``θ`` and ``H_out`` the
Hessian of the loss with respect to the output. ``G`` is the Hessian with the
second-order terms of the network dropped; for softmax cross-entropy it equals the true
Fisher. Products use one forward-mode pass (``J v``), the loss's output Hessian (reverse over
reverse), and one reverse-mode pass (``Jᵀ u``), each vmapped over the ``k`` probes.
"""

from __future__ import annotations

from torch.func import grad_and_value, jvp, vjp, vmap

from prunelab.curvature.operator import CurvatureOperator


class GGN(CurvatureOperator):
    """Generalised Gauss-Newton ``G = mean_n J_nᵀ H_out,n J_n`` of the mean loss.

    Arguments are those of :class:`~prunelab.curvature.operator.CurvatureOperator`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
        >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
        >>> G = GGN(net, nn.functional.cross_entropy, [(x, y)])
        >>> bool(torch.linalg.eigvalsh(G.to_dense()).min() > -1e-12)  # PSD for convex losses
        True
    """

    kind = "GGN"

    def _kernel(self, theta, x, y, vs):
        p = self.problem

        def forward(th):
            return p.output(th, x)

        out, pullback = vjp(forward, theta)
        jv = vmap(lambda v: jvp(forward, (theta,), (v,))[1])(vs)
        # H_out u by reverse-over-reverse (H_out is symmetric): forward-over-reverse of
        # F.mse_loss fails inside PyTorch 2.13 ("ZeroTensors are immutable").
        _, out_pullback, loss = vjp(grad_and_value(lambda o: p.loss_fn(o, y)), out, has_aux=True)
        hjv = vmap(out_pullback)(jv)[0]
        return vmap(pullback)(hjv)[0], loss
