"""The common base of the curvature operators (Hessian, GGN, empirical Fisher).

An operator is a symmetric ``D × D`` matrix ``A`` that is never formed: it is only
applied to blocks of vectors. ``A`` is a mean over all ``N`` examples, computed batch by
batch as ``A = Σ_b (n_b / N) A_b`` where ``A_b`` is the curvature of batch ``b``'s mean
loss; with ``torch.distributed`` the partial sums are all-reduced.

Internally vectors travel as *rows* (``(k, D)``), which is what ``torch.func.vmap`` maps
over; the public :meth:`CurvatureOperator.matmat` takes and returns columns
(``(D, k)``) like a matrix.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from prunelab.curvature._dist import all_reduce_sum, any_rank
from prunelab.curvature._problem import Batch, ParamsArg, Problem
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

#: Largest dimension for which dense matrices / exact diagonals are formed (D² floats).
MAX_DENSE_DIM = 20_000


def _all_finite(blocks: Sequence[Tensor]) -> bool:
    """Whether every entry of ``blocks`` is finite, in one reading pass when it is.

    ``isfinite(x).all()`` makes three full-size temporaries (``abs``, two comparisons)
    and costs ~13 % of a 10-probe product at 1.6M weights; a sum reads each entry once.
    A finite sum proves every entry finite (an infinite or NaN term makes the sum
    infinite or NaN); a non-finite sum (such an entry, or an overflow of the sum of
    finite entries) falls back to the entrywise test, so the answer is exact.
    """
    total = torch.stack([b.sum() for b in blocks]).sum() if len(blocks) > 1 else blocks[0].sum()
    if bool(torch.isfinite(total)):
        return True
    return all(bool(torch.isfinite(b).all()) for b in blocks)


class CurvatureOperator:
    """A mean-over-examples curvature matrix over a chosen parameter set.

    The operator holds views of the model's parameters, not copies: products are taken
    at the current weights (a Hessian's cached graphs notice in-place changes by the
    tensors' version counters and are rebuilt).

    Args:
        model: The model, in ``eval()`` mode where it has Dropout or BatchNorm.
        loss_fn: ``(output, y) -> scalar`` mean-reduced loss.
        batches: Any iterable of ``(x, y)`` pairs; read once into a list.
        params: ``None`` for the prunable set, a :class:`~prunelab.PrunableSpec`, or a
            list of parameter names.
        shard: With ``torch.distributed``: ``True`` = every rank got all batches and
            keeps its share; ``False`` = the batches already are this rank's shard;
            ``None`` = detect (shard when all ranks hold identical batches).
        distributed: ``None`` = all-reduce when a process group with >1 rank exists.
        compile: Wrap the per-batch kernel in ``torch.compile`` (falls back to eager,
            with a logged warning, if compilation fails). Compiling takes 15-30 s on 2
            CPU cores per (batch shape, number of probes, mode); past
            ``torch._dynamo``'s recompile limit (8) PyTorch runs the kernel eagerly. Worth
            it only for long runs with fixed shapes (gain measured: 0-10 %, see
            benchmarks/CURVATURE.md).

    Raises:
        PrunelabError: On a non-deterministic model, unknown parameter names or no data.
    """

    #: Name used in messages.
    kind = "curvature"

    def __init__(
        self,
        model: nn.Module,
        loss_fn,
        batches: Iterable,
        params: ParamsArg = None,
        *,
        shard: bool | None = None,
        distributed: bool | None = None,
        compile: bool = False,
    ):
        self.problem = Problem(
            model, loss_fn, batches, params, shard=shard, distributed=distributed
        )
        self.compile = compile
        self._compiled = None

    # ----------------------------------------------------------------- description
    @property
    def dim(self) -> int:
        """``D``, the number of scalar parameters the operator acts on."""
        return self.problem.dim

    @property
    def shape(self) -> tuple[int, int]:
        """``(D, D)``."""
        return (self.dim, self.dim)

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the model parameters and of every product."""
        return self.problem.dtype

    @property
    def device(self) -> torch.device:
        """Device of the model parameters."""
        return self.problem.device

    @property
    def param_names(self) -> list[str]:
        """Selected parameter names, in flattening order."""
        return list(self.problem.names)

    @property
    def slices(self) -> dict[str, slice]:
        """``name -> slice`` of each parameter inside a flat length-``D`` vector."""
        return dict(self.problem.slices)

    @property
    def num_examples(self) -> int:
        """``N``, the number of examples the mean runs over (all ranks together)."""
        return self.problem.num_examples

    def layers(self) -> dict[str, list[str]]:
        """Group the parameter names by owning module (``"0.weight"`` → layer ``"0"``)."""
        groups: dict[str, list[str]] = {}
        for n in self.problem.names:
            groups.setdefault(n.rpartition(".")[0] or n, []).append(n)
        return groups

    def restrict(self, names: Sequence[str]) -> CurvatureOperator:
        """The same operator over a subset of its parameters (a diagonal block).

        Args:
            names: Parameter names, each one of :attr:`param_names` or of the model.

        Returns:
            A new operator of the same class sharing model, loss and data.
        """
        new = copy.copy(self)
        new.problem = self.problem.restricted(names)
        new._compiled = None
        new.clear_cache()
        return new

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.dim}, params={len(self.problem.names)}, "
            f"examples={self.num_examples}, batches={len(self.problem.batches)})"
        )

    # ----------------------------------------------------------------- subclass hooks
    def _kernel(
        self, theta: tuple[Tensor, ...], x: Tensor, y: Tensor, vs: tuple[Tensor, ...]
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        """Products ``A_b v`` for a block of ``k`` probes of one batch, and its loss.

        Args:
            theta: Selected parameter values.
            x: Inputs of the batch.
            y: Targets of the batch.
            vs: Probes as per-parameter blocks ``(k, *shape)``.

        Returns:
            ``(products, scalar mean loss of the batch)``: the products as per-parameter
            blocks ``(k, *shape)``, or as a list of ``k`` such tuples with blocks
            ``(1, *shape)``, one per probe (added into the result as they are, with no
            stacked copy).
        """
        raise NotImplementedError

    def clear_cache(self) -> None:
        """Drop cached per-batch graphs (call after changing the model's weights in place)."""

    def _batch_product(self, b: Batch, vs: tuple[Tensor, ...]):
        """Run the (possibly compiled) kernel on batch ``b``."""
        theta = self.problem.theta
        if self.compile and self._compiled is None:
            self._compiled = torch.compile(self._kernel, dynamic=False)
        if self.compile and self._compiled is not False:
            try:
                return self._compiled(theta, b.x, b.y, vs)
            except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
                log.warning("torch.compile failed (%s); falling back to eager mode", exc)
                self._compiled = False
        return self._kernel(theta, b.x, b.y, vs)

    # ----------------------------------------------------------------- products
    def _matmat_rows(self, rows: Tensor) -> Tensor:
        """``(A Vᵀ)ᵀ`` for ``k`` probe rows ``(k, D)``; every batch is visited once.

        Each batch's per-parameter products are added straight into their slices of the
        ``(k, D)`` result (no concatenated copy), and their finiteness is checked through
        one sum per block: a sum is finite only if every term is, so only a non-finite
        sum (a non-finite entry, or a sum that overflowed) pays the entrywise test.
        """
        p = self.problem
        k = rows.shape[0]
        acc = torch.empty_like(rows) if p.batches else torch.zeros_like(rows)
        first = True
        views = [
            acc[:, s].view(k, *shape) for s, shape in zip(p.slices.values(), p.shapes, strict=True)
        ]
        vs = p.split(rows)
        bad = None
        with torch.no_grad():  # torch.func transforms ignore it; it stops stray graphs
            for b in p.batches:
                prods, loss = self._batch_product(b, vs)
                probes = prods if isinstance(prods, list) else None
                msg = None
                if not torch.isfinite(loss):
                    msg = f"non-finite loss ({float(loss)}) on {p.batch_label(b)}"
                elif not _all_finite([t for h in probes for t in h] if probes else prods):
                    msg = f"non-finite {self.kind} product on {p.batch_label(b)}"
                if msg is not None:
                    if not p.world.active:
                        raise PrunelabError(msg)
                    bad = bad or msg  # report the first bad batch of this rank
                # The first batch is written (scaled), later ones added: no zero fill.
                scale = float(b.n) / float(p.num_examples)
                if probes is None:
                    pairs = zip(views, prods, strict=True)
                else:
                    pairs = [
                        (v[i : i + 1], h)
                        for i, hs in enumerate(probes)
                        for v, h in zip(views, hs, strict=True)
                    ]
                for out, prod in pairs:
                    prod = prod.reshape(out.shape)
                    if first:
                        torch.mul(prod, scale, out=out)
                    else:
                        out.add_(prod, alpha=scale)
                first = False
        if p.world.active:
            # Every rank must reach the same collectives, so failures are agreed on first.
            all_reduce_sum(acc, p.world)
            if any_rank(bad is not None, p.world, p.device):
                raise PrunelabError(bad or f"non-finite {self.kind} product on another rank")
        return acc

    def _as_rows(self, V: Tensor, what: str) -> Tensor:
        if not isinstance(V, Tensor) or V.ndim != 2 or V.shape[0] != self.dim:
            got = tuple(V.shape) if isinstance(V, Tensor) else type(V).__name__
            raise PrunelabError(f"{what} must be a tensor of shape ({self.dim}, k), got {got}")
        return V.to(device=self.device, dtype=self.dtype).T.contiguous()

    def matmat(self, V: Tensor) -> Tensor:
        """Apply the operator to ``k`` vectors at once.

        All ``k`` probes share one forward and backward pass per data batch.

        Args:
            V: ``(D, k)`` block of vectors.

        Returns:
            ``A V`` of shape ``(D, k)`` in the model's dtype.

        Raises:
            PrunelabError: On a wrong shape, or a non-finite loss or product (the batch
                is named).
        """
        return self._matmat_rows(self._as_rows(V, "V")).T

    def __matmul__(self, v: Tensor) -> Tensor:
        """``A @ v`` for a flat ``(D,)`` vector (or a ``(D, k)`` block)."""
        if isinstance(v, Tensor) and v.ndim == 1:
            return self.matmat(v[:, None])[:, 0]
        return self.matmat(v)

    def to_dense(self, max_dim: int = MAX_DENSE_DIM, block_size: int = 64) -> Tensor:
        """Form the dense ``(D, D)`` matrix by applying the operator to unit vectors.

        Args:
            max_dim: Refuse when ``D`` exceeds this (memory and time grow like ``D²``).
            block_size: Unit vectors per pass over the data.

        Raises:
            PrunelabError: If ``D > max_dim``.
        """
        if self.dim > max_dim:
            raise PrunelabError(
                f"dense {self.kind} needs D <= max_dim={max_dim}, got D={self.dim}; "
                "use a stochastic estimator instead"
            )
        out = torch.empty(self.dim, self.dim, dtype=self.dtype, device=self.device)
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        for start in range(0, self.dim, block_size):
            out[start : start + block_size] = self._matmat_rows(eye[start : start + block_size])
        return out
