"""Storage of the Lanczos basis under a memory cap (private).

Full re-orthogonalisation stores every Krylov vector: ``r·m·D`` entries, 768 MiB for
100 steps of 1.57M float32 weights. Given ``max_memory``, :class:`KrylovBasis` picks
the most accurate storage that fits, in this order:

1. ``"full"``: every vector in the operator's dtype (exact full re-orthogonalisation).
2. ``"half"``: every vector rounded to half the precision (float64 → float32,
   float32 → float16) and re-orthogonalised against in that form. Rounding a unit
   vector to unit roundoff ``u'`` leaves the basis orthogonal to ``O(u')``: 6e-8 for
   float64 and 5e-4 for float32 operators, about ``sqrt(eps)`` of the working
   precision. That is Simon's (1984) *semi-orthogonality*, under which the tridiagonal
   ``T`` is, to working precision, the projection of ``A`` onto an orthonormal basis of
   the same Krylov space: Ritz values and quadrature weights stay accurate. It halves
   the memory, keeps every vector and needs no extra products, which is why it comes
   before selective or partial re-orthogonalisation: those also need every vector
   kept (in some store) to re-orthogonalise against when the estimated loss of
   orthogonality demands it, so they save time, not memory.
3. ``"window"``: only the latest ``w`` vectors (half precision) that fit; each new
   vector is re-orthogonalised against those (local re-orthogonalisation). Global
   orthogonality is lost once a Ritz value converges, so converged eigenvalues can
   reappear as "ghost" copies; the moments ``tr A = D·E[α_1]`` and
   ``tr A² = D·E[α_1² + β_1²]`` and the extreme Ritz values are unaffected. Below
   ``w = 2`` the cap is refused.

The two vectors of the three-term recurrence are always kept in full precision and are
counted in the cap.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from prunelab.errors import PrunelabError

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_HALF = {torch.float64: torch.float32, torch.float32: torch.float16}

#: Vectors converted to the working dtype at once during a half-precision projection.
_CHUNK = 4


def parse_bytes(value: int | float | str | None) -> int | None:
    """``512``, ``"512MiB"``, ``"1.5 GB"``, ``"2e9"`` → bytes (``None`` stays ``None``).

    Raises:
        PrunelabError: On an unparsable or non-positive value.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise PrunelabError(f"max_memory must be a number of bytes or e.g. '512MiB', got {value}")
    if isinstance(value, int | float):
        num, unit = float(value), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
        if m is None or m.group(2).lower() not in _UNITS:
            raise PrunelabError(
                f"max_memory must be bytes or a size like '512MiB', '2GB', got {value!r} "
                f"(units: {', '.join(u for u in _UNITS if u)})"
            )
        num, unit = float(m.group(1)), m.group(2).lower()
    out = int(num * _UNITS[unit])
    if out <= 0:
        raise PrunelabError(f"max_memory must be positive, got {value!r}")
    return out


class KrylovBasis:
    """The stored vectors of ``r`` Lanczos chains of up to ``m`` steps each.

    Args:
        runs: ``r``.
        steps: ``m``.
        dim: ``D``.
        dtype: The operator's dtype.
        device: The operator's device.
        max_memory: Cap in bytes (``None``: always ``"full"``).

    Attributes:
        mode: ``"full"``, ``"half"`` or ``"window"``.
        window: Vectors kept per chain (``m`` unless ``"window"``).
        nbytes: Bytes of the stored vectors plus the two recurrence vectors.

    Raises:
        PrunelabError: If not even two half-precision vectors per chain fit.
    """

    def __init__(self, runs, steps, dim, dtype, device, max_memory: int | None = None):
        item = torch.empty((), dtype=dtype).element_size()
        half = _HALF.get(dtype, dtype)
        half_item = torch.empty((), dtype=half).element_size()
        recurrence = 2 * runs * dim * item
        if max_memory is None or recurrence + runs * steps * dim * item <= max_memory:
            self.mode, self.store_dtype, self.window = "full", dtype, steps
        elif recurrence + runs * steps * dim * half_item <= max_memory:
            self.mode, self.store_dtype, self.window = "half", half, steps
        else:
            self.mode, self.store_dtype = "window", half
            self.window = (max_memory - recurrence) // (runs * dim * half_item)
            if self.window < 2:
                raise PrunelabError(
                    f"max_memory={max_memory} B is too small for {runs} Lanczos chain(s) "
                    f"of D={dim}: the recurrence and two stored vectors need "
                    f"{recurrence + 2 * runs * dim * half_item} B"
                )
        self.dtype = dtype
        self._q = torch.empty(runs, self.window, dim, dtype=self.store_dtype, device=device)
        self.nbytes = self._q.numel() * self._q.element_size() + recurrence

    def put(self, j: int, rows: Tensor, which: Tensor | None = None) -> None:
        """Store step ``j``'s vectors ``rows`` ``(len(which), D)`` of chains ``which``."""
        slot = j % self.window
        if which is None:
            self._q[:, slot] = rows
        else:
            self._q[which, slot] = rows.to(self.store_dtype)

    def orthogonalise(self, w: Tensor, j: int, which: Tensor, full: bool) -> Tensor:
        """Remove from ``w`` ``(len(which), D)`` its components along stored steps ``<= j``.

        Classical Gram-Schmidt applied twice ("twice is enough").
        """
        lo = max(0, j + 1 - self.window)
        if self.mode == "full":
            basis = self._q[:, : j + 1] if full else self._q[which, : j + 1]
            for _ in range(2):
                # (r, 1, j+1) @ (r, j+1, D): both operands row-major (with the basis
                # transposed instead, bmm took 1.5x as long at D = 50k).
                h = torch.bmm(basis, w[:, :, None]).transpose(1, 2)
                w -= torch.bmm(h, basis)[:, 0]
            return w
        slots = [s % self.window for s in range(lo, j + 1)]
        chunks = [slots[c : c + _CHUNK] for c in range(0, len(slots), _CHUNK)]
        for _ in range(2):
            # Coefficients against the same w first (classical Gram-Schmidt), converting
            # a few stored vectors at a time so that no full-precision copy of the
            # basis is ever made.
            coef = [torch.bmm(self._chunk(c, which, full), w[:, :, None]) for c in chunks]
            for c, h in zip(chunks, coef, strict=True):
                w -= torch.bmm(h.transpose(1, 2), self._chunk(c, which, full))[:, 0]
        return w

    def _chunk(self, slots: list[int], which: Tensor, full: bool) -> Tensor:
        blk = self._q[:, slots]  # advanced indexing: copies only these few vectors
        return (blk if full else blk[which]).to(self.dtype)

    def tensor(self, lengths: Tensor | None = None) -> Tensor:
        """All stored vectors ``(r, m, D)`` in the operator's dtype.

        Raises:
            PrunelabError: In ``"window"`` mode (the early vectors are gone).
        """
        if self.mode == "window":
            raise PrunelabError(
                "the Lanczos basis was not kept (max_memory allows only the latest "
                f"{self.window} vectors); raise max_memory to get Ritz vectors"
            )
        return self._q if self.mode == "full" else self._q.to(self.dtype)
