"""Exact pruning masks over the prunable set.

A :class:`Mask` is a dict ``parameter name -> bool tensor`` (``True`` = kept) over the
prunable parameters of a model (:func:`~prunelab.prunable.prunable_parameters`). It is a
plain value: applying it zeroes weights in place and installs no hooks, so the model
still deep-copies and saves like any other module (hook-based masks break both).

Building a mask from scores follows methods.md §0: higher score = keep; exactly
``k = round((1-p)·D)`` weights are kept; ties are broken by position (see
:meth:`Mask.from_scores`); weights pruned in a previous mask can never be revived; each
layer keeps at least ``min_per_layer`` weights, and a layer that still ends up empty is
reported in :attr:`Mask.collapsed` and logged.

A model that still carries ``torch.nn.utils.prune`` hooks (``weight_orig`` /
``weight_mask``) is adopted, not silently ignored: :meth:`Mask.apply` first folds the
hooks with ``prune.remove`` (keeping their zeros, so the result is the intersection of
both masks) and logs which parameters it folded; see :func:`fold_torch_prune`.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from prunelab._topk import parse_nm, select
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.prunable import PrunableSpec, prunable_parameters

log = logging.getLogger(__name__)

_SCOPES = ("global", "layer", "row")


def _layer_of(name: str, model: nn.Module) -> tuple[nn.Module, str]:
    """Split ``"a.b.weight"`` into the module ``a.b`` and the attribute ``"weight"``."""
    mod_name, _, attr = name.rpartition(".")
    return (model.get_submodule(mod_name) if mod_name else model), attr


def torch_prune_hooks(model: nn.Module) -> list[tuple[str, str]]:
    """``(module name, tensor name)`` of every ``torch.nn.utils.prune`` reparametrisation.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> _ = prune.l1_unstructured(net[2], "weight", amount=0.5)
        >>> torch_prune_hooks(net)
        [('2', 'weight')]
    """
    found = []
    for mod_name, module in model.named_modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                found.append((mod_name, hook._tensor_name))
    return found


def fold_torch_prune(model: nn.Module) -> list[str]:
    """Fold every ``torch.nn.utils.prune`` hook of ``model`` into its plain parameter, in place.

    ``prune.remove`` sets each parameter to ``<name>_orig * <name>_mask``, so the hooks'
    zeros stay zero; the hooks, ``*_orig`` and ``*_mask`` go away and the model saves and
    deep-copies as a plain module again.

    Returns:
        The folded parameter names (``"0.weight"``), empty when there were no hooks.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> _ = prune.l1_unstructured(net[0], "weight", amount=0.5)
        >>> fold_torch_prune(net), int((net[0].weight == 0).sum()), hasattr(net[0], "weight_orig")
        (['0.weight'], 6, False)
    """
    folded = []
    for mod_name, attr in torch_prune_hooks(model):
        prune.remove(model.get_submodule(mod_name) if mod_name else model, attr)
        folded.append(f"{mod_name}.{attr}" if mod_name else attr)
    return folded


class Mask:
    """Keep/prune flags for every prunable weight of a model.

    Args:
        masks: ``name -> bool tensor`` (``True`` = kept), shaped like the parameters and
            keyed as in :func:`~prunelab.prunable.prunable_parameters`.
        spec: The prunable-set rule the mask was built over (default ``PrunableSpec()``).
        collapsed: Names of layers that lost every weight; computed when omitted.

    Scores come from the criteria in :mod:`prunelab.scores` (``prunelab.score``); any
    ``name -> tensor`` dict over the prunable set works, here ``|θ|``:

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> mag = {n: p.detach().abs() for n, p in prunable_parameters(net).items()}
        >>> m = Mask.from_scores(mag, sparsity=0.5)
        >>> m.total, m.nnz, m.sparsity
        (18, 9, 0.5)
        >>> _ = m.apply(net)
        >>> int((net[0].weight != 0).sum() + (net[2].weight != 0).sum())
        9
        >>> Mask.from_model_zeros(net).equal(m)
        True
    """

    def __init__(
        self,
        masks: dict[str, Tensor],
        spec: PrunableSpec | None = None,
        collapsed: list[str] | None = None,
    ) -> None:
        self.masks: dict[str, Tensor] = {n: m.detach().to(torch.bool) for n, m in masks.items()}
        self.spec = spec or PrunableSpec()
        if collapsed is None:
            collapsed = [n for n, m in self.masks.items() if not bool(m.any())]
        self.collapsed: list[str] = list(collapsed)
        #: the ``(N, M)`` pattern :meth:`from_scores` built it with, else ``None``
        self.nm: tuple[int, int] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def dense(cls, model: nn.Module, spec: PrunableSpec | None = None) -> Mask:
        """A mask that keeps every prunable weight of ``model``."""
        params = prunable_parameters(model, spec)
        return cls({n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}, spec)

    @classmethod
    def from_model_zeros(cls, model: nn.Module, spec: PrunableSpec | None = None) -> Mask:
        """The mask ``weight != 0`` read off the model (e.g. a loaded pruned checkpoint)."""
        params = prunable_parameters(model, spec)
        return cls({n: p.detach() != 0 for n, p in params.items()}, spec)

    @classmethod
    def from_scores(
        cls,
        scores: dict[str, Tensor],
        sparsity: float,
        scope: str = "global",
        previous: Mask | None = None,
        min_per_layer: int = 1,
        *,
        spec: PrunableSpec | None = None,
        nm: str | tuple[int, int] | None = None,
    ) -> Mask:
        """Keep the highest-scoring weights.

        ``scope="global"`` keeps exactly ``k = round((1-p)·D)`` weights over all layers
        (``D`` = total prunable weights). ``scope="layer"`` keeps ``round((1-p)·D_l)`` in
        each layer, raised to ``min_per_layer`` where that rounds lower; the total is then
        the sum of the per-layer counts, which can differ from the global ``k`` by rounding.
        ``scope="row"`` keeps ``round((1-p)·C)`` in every output row (``C`` = the
        parameter's size over its first dimension; a bias is one row; Wanda's comparison
        group); ``min_per_layer`` does not apply.

        ``nm="N:M"`` (e.g. ``"2:4"``): in every group of ``M`` consecutive weights along
        the flattened input dimension at most ``N`` are kept, the ``N`` best of the group;
        the scope then ranks only those. At ``p = 1 - N/M`` every group keeps exactly ``N``
        (any scope); a larger ``p`` prunes further among the ``N:M`` survivors.

        Tie rule: the flattened score tensors are concatenated in the order of ``scores``
        (row-major within a tensor); among equal scores the earlier position is kept.

        Global ``min_per_layer``: a layer that the global top-k leaves with fewer than
        ``min(min_per_layer, weights still available in it)`` weights gets its best
        remaining weights back, and the same number of kept weights is dropped elsewhere,
        lowest global rank first, never taking another layer below its own minimum; the
        total stays exactly ``k``.

        Args:
            scores: ``name -> tensor`` shaped like the parameters; higher = keep.
            sparsity: Fraction removed, in ``[0, 1)``.
            scope: ``"global"``, ``"layer"`` or ``"row"``.
            previous: A mask whose pruned weights must stay pruned (iterative pruning);
                its keys and shapes must match ``scores``.
            min_per_layer: Weights every layer keeps at least (0 allows layer collapse).
            spec: The prunable-set rule to record (default: ``previous.spec`` or
                ``PrunableSpec()``).
            nm: ``"N:M"`` or ``(N, M)`` with ``1 <= N < M``, or ``None``.

        Returns:
            The new mask; layers left empty are listed in ``.collapsed`` and logged.

        Raises:
            PrunelabError: Bad sparsity / scope / ``min_per_layer``, NaN scores, keys or
                shapes that do not match ``previous``, ``k`` larger than the number of
                weights ``previous`` kept (masks can only shrink), or a ``k`` too small to
                give every layer ``min_per_layer`` weights.
        """
        p = check_sparsity(sparsity)
        if scope not in _SCOPES:
            raise PrunelabError(
                f"unknown mask scope {scope!r}; valid choices: {', '.join(_SCOPES)}"
            )
        if isinstance(min_per_layer, bool) or not isinstance(min_per_layer, int):
            raise PrunelabError(f"min_per_layer must be an integer >= 0, got {min_per_layer!r}")
        if min_per_layer < 0:
            raise PrunelabError(f"min_per_layer must be an integer >= 0, got {min_per_layer}")
        if not scores:
            raise PrunelabError("scores is empty: the prunable set has no parameters")
        if spec is None:
            spec = previous.spec if previous is not None else PrunableSpec()
        pattern = parse_nm(nm)
        masks = select(
            scores, p, scope, previous.masks if previous else None, min_per_layer, pattern
        )
        out = cls(masks, spec)
        out.nm = pattern
        if out.collapsed:
            log.warning(
                "layer collapse at sparsity %.4g: no weight kept in %s", p, ", ".join(out.collapsed)
            )
        return out

    @classmethod
    def from_layer_counts(
        cls,
        scores: dict[str, Tensor],
        kept: dict[str, int],
        *,
        spec: PrunableSpec | None = None,
    ) -> Mask:
        """Keep exactly ``kept[name]`` highest-scoring weights of each layer.

        The entry point of a per-layer allocation
        (:mod:`prunelab.limits.allocation`): each layer's own count, ties broken by
        position as in :meth:`from_scores`.

        Args:
            scores: ``name -> tensor`` shaped like the parameters; higher = keep.
            kept: ``name -> count`` in ``[0, numel]`` for every name of ``scores``.
            spec: The prunable-set rule to record.

        Raises:
            PrunelabError: Names that differ, a count out of range, or NaN scores.

        Example:
            >>> s = {"a": torch.tensor([3.0, 1.0, 2.0]), "b": torch.tensor([[1.0, 5.0]])}
            >>> m = Mask.from_layer_counts(s, {"a": 2, "b": 1})
            >>> m.masks["a"].tolist(), m.masks["b"].tolist()
            ([True, False, True], [[False, True]])
        """
        if set(kept) != set(scores):
            raise PrunelabError(
                f"kept counts name {sorted(kept)} but the scores name {sorted(scores)}"
            )
        masks = {}
        for n, s in scores.items():
            k = kept[n]
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= s.numel():
                raise PrunelabError(
                    f"kept count of layer {n!r} must be in [0, {s.numel()}], got {k!r}"
                )
            if torch.isnan(s).any():
                raise PrunelabError(f"scores of layer {n!r} contain NaN")
            order = torch.sort(s.detach().reshape(-1), descending=True, stable=True).indices
            keep = torch.zeros(s.numel(), dtype=torch.bool, device=s.device)
            keep[order[:k]] = True
            masks[n] = keep.reshape(s.shape)
        out = cls(masks, spec)
        if out.collapsed:
            log.warning("layer counts leave no weight in %s", ", ".join(out.collapsed))
        return out

    @classmethod
    def from_state_dict(
        cls,
        state: dict[str, Tensor],
        spec: PrunableSpec | None = None,
        *,
        model: nn.Module | None = None,
    ) -> Mask:
        """Rebuild a mask saved with :meth:`state_dict` (e.g. from ``masks.safetensors``).

        Args:
            state: ``name -> tensor`` (bool, or 0/1 of any dtype).
            spec: The prunable-set rule the mask was built over.
            model: If given, the names and shapes are checked against its prunable
                parameters and the layers are put in the model's order (file formats
                may sort names, and the order sets the tie rule of later pruning).

        Raises:
            PrunelabError: Values other than 0/1, or names / shapes that do not fit ``model``.
        """
        tensors = {n: torch.as_tensor(t) for n, t in state.items()}
        for n, t in tensors.items():
            if t.dtype != torch.bool and not bool(((t == 0) | (t == 1)).all()):
                raise PrunelabError(f"mask of layer {n!r} has values other than 0 and 1")
        mask = cls(tensors, spec)
        if model is not None:
            order = list(mask._check_model(model))
            mask = cls({n: mask.masks[n] for n in order}, spec)
        return mask

    @classmethod
    def from_torch_prune(
        cls, model: nn.Module, remove: bool = False, spec: PrunableSpec | None = None
    ) -> Mask:
        """Read the ``<name>_mask`` buffers that ``torch.nn.utils.prune`` installed.

        Prunable parameters without such a buffer count as fully kept.

        Args:
            model: A model pruned with ``torch.nn.utils.prune``.
            remove: Also call ``prune.remove`` so the zeros become the plain parameter
                and the hooks, ``*_orig`` and ``*_mask`` go away.
            spec: The prunable-set rule.

        Returns:
            The mask.
        """
        masks = {}
        for name, param in prunable_parameters(model, spec).items():
            module, attr = _layer_of(name, model)
            buf = getattr(module, attr + "_mask", None)
            if buf is None:
                masks[name] = torch.ones_like(param, dtype=torch.bool)
                continue
            masks[name] = buf.detach().to(torch.bool).clone()
            if remove:
                prune.remove(module, attr)
        return cls(masks, spec)

    # ------------------------------------------------------------------ use
    def _check_model(self, model: nn.Module) -> dict[str, Tensor]:
        params = prunable_parameters(model, self.spec)
        if set(params) != set(self.masks):
            raise PrunelabError(
                f"mask layers {sorted(self.masks)} do not match the model's prunable "
                f"parameters {sorted(params)}"
            )
        for n, p in params.items():
            if p.shape != self.masks[n].shape:
                raise PrunelabError(
                    f"layer {n!r}: mask shape {tuple(self.masks[n].shape)} does not match "
                    f"parameter shape {tuple(p.shape)}"
                )
        return params

    def apply(self, model: nn.Module) -> nn.Module:
        """Zero the pruned weights of ``model`` in place (no hooks) and return it.

        ``torch.nn.utils.prune`` hooks on the model are folded first
        (:func:`fold_torch_prune`, logged as a warning): their zeros are kept, so the
        model ends with the intersection of their mask and this one. Without the fold the
        hooks would recompute the weights on the next forward and undo this mask.

        Raises:
            PrunelabError: If the model's prunable parameters differ in names or shapes.
        """
        self._check_model(model)  # refuse before changing anything
        folded = fold_torch_prune(model)
        if folded:
            log.warning(
                "adopted torch.nn.utils.prune masks on %s: folded with prune.remove "
                "(their zeros kept) before applying the mask",
                ", ".join(folded),
            )
        params = self._check_model(model)
        with torch.no_grad():
            for n, p in params.items():
                p.masked_fill_(~self.masks[n].to(p.device), 0.0)
        return model

    def to_torch_prune(self, model: nn.Module) -> nn.Module:
        """Install the mask with ``torch.nn.utils.prune.custom_from_mask`` and return the model.

        Each prunable layer gets ``weight_orig`` / ``weight_mask`` (PyTorch's forward-pre
        hook form), for interoperation with code that expects it. Read it back with
        :meth:`from_torch_prune`.
        """
        params = self._check_model(model)
        for n, p in params.items():
            module, attr = _layer_of(n, model)
            prune.custom_from_mask(module, attr, self.masks[n].to(p.device))
        return model

    def state_dict(self) -> dict[str, Tensor]:
        """``name -> bool tensor`` on the CPU, for ``masks.safetensors``."""
        return {n: m.detach().cpu().clone() for n, m in self.masks.items()}

    # ------------------------------------------------------------------ statistics
    @property
    def total(self) -> int:
        """``D``: number of prunable weights."""
        return sum(m.numel() for m in self.masks.values())

    @property
    def nnz(self) -> int:
        """Number of kept weights."""
        return sum(int(m.sum()) for m in self.masks.values())

    @property
    def density(self) -> float:
        """Fraction kept, ``nnz / D``."""
        return self.nnz / self.total if self.total else 1.0

    @property
    def sparsity(self) -> float:
        """Fraction removed, ``1 - density``."""
        return 1.0 - self.density

    @property
    def compression_ratio(self) -> float:
        """``D / nnz`` (``inf`` when nothing is kept)."""
        nnz = self.nnz
        return self.total / nnz if nnz else float("inf")

    def per_layer(self) -> list[dict]:
        """One dict per layer: ``name``, ``shape`` (tuple), ``total``, ``kept``, ``density``."""
        rows = []
        for n, m in self.masks.items():
            kept, total = int(m.sum()), m.numel()
            rows.append(
                {
                    "name": n,
                    "shape": tuple(m.shape),
                    "total": total,
                    "kept": kept,
                    "density": kept / total if total else 1.0,
                }
            )
        return rows

    def summary_table(self) -> list[list[str]]:
        """Rows of strings for a per-layer density table: a header, layers, then the total."""
        rows = [["layer", "shape", "kept", "total", "density"]]
        for r in self.per_layer():
            shape = "x".join(str(s) for s in r["shape"])
            rows.append([r["name"], shape, str(r["kept"]), str(r["total"]), f"{r['density']:.4f}"])
        rows.append(["all", "", str(self.nnz), str(self.total), f"{self.density:.4f}"])
        return rows

    # ------------------------------------------------------------------ algebra
    def _check_same_layout(self, other: Mask) -> None:
        if not isinstance(other, Mask):
            raise PrunelabError(f"expected a Mask, got {type(other).__name__}")
        if set(self.masks) != set(other.masks):
            raise PrunelabError(
                f"masks cover different layers: {sorted(self.masks)} vs {sorted(other.masks)}"
            )
        for n, m in self.masks.items():
            if m.shape != other.masks[n].shape:
                raise PrunelabError(
                    f"layer {n!r}: mask shapes differ, {tuple(m.shape)} vs "
                    f"{tuple(other.masks[n].shape)}"
                )

    def __and__(self, other: Mask) -> Mask:
        """Intersection: a weight is kept only if both masks keep it."""
        self._check_same_layout(other)
        return Mask({n: m & other.masks[n].to(m.device) for n, m in self.masks.items()}, self.spec)

    def equal(self, other: Mask) -> bool:
        """True if both masks cover the same layers and keep exactly the same weights."""
        if not isinstance(other, Mask) or set(self.masks) != set(other.masks):
            return False
        return all(
            m.shape == other.masks[n].shape and torch.equal(m.cpu(), other.masks[n].cpu())
            for n, m in self.masks.items()
        )

    def __repr__(self) -> str:
        return (
            f"Mask(layers={len(self.masks)}, nnz={self.nnz}/{self.total}, "
            f"sparsity={self.sparsity:.4f})"
        )
