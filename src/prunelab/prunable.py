"""The prunable set: which parameters count as "weights" for pruning.

The same set is the denominator of every sparsity, the dimension of every Hessian
used for a limit prediction, and the vector of every cosine similarity, so it is
chosen in one place. Default (methods.md §0): the ``weight`` of every ``Linear`` and
``Conv*`` layer, classifier included; biases and normalisation parameters excluded.
In a transformer that is every attention (q, k, v, out) and MLP Linear: embeddings and
LayerNorms are not Linear layers, and an output head tied to the token embedding shares
its tensor, so it is excluded too; any tensor shared by several layers is counted once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

from torch import nn

from prunelab.errors import PrunelabError

_PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class PrunableSpec:
    """Which parameters are prunable.

    Attributes:
        include_classifier: Prune the last Linear/Conv layer (the classifier) too.
        include_bias: Also prune the biases of Linear/Conv layers.
    """

    include_classifier: bool = True
    include_bias: bool = False

    def to_dict(self) -> dict:
        """Plain-dict form for ``meta.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object, where: str = "prunable set") -> PrunableSpec:
        """Read back :meth:`to_dict` (e.g. ``meta.json``'s ``prunable``), checking every key.

        Raises:
            PrunelabError: Not a dict, an unknown key, or a value that is not a boolean
                (``where`` names what was read).

        Example:
            >>> PrunableSpec.from_dict({"include_bias": True}).include_bias
            True
        """
        valid = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, dict):
            raise PrunelabError(f"{where}: expected a dict with keys {', '.join(valid)}")
        for key, value in data.items():
            if key not in valid:
                raise PrunelabError(f"{where}: unknown key {key!r}; valid: {', '.join(valid)}")
            if not isinstance(value, bool):
                raise PrunelabError(f"{where}: {key} must be true or false, got {value!r}")
        return cls(**data)

    def describe(self) -> str:
        """One-line human description for reports."""
        parts = ["weights of Linear and Conv layers"]
        parts.append("classifier included" if self.include_classifier else "classifier excluded")
        parts.append("biases included" if self.include_bias else "biases excluded")
        return ", ".join(parts) + "; normalisation parameters excluded"


def prunable_parameters(
    model: nn.Module, spec: PrunableSpec | None = None
) -> dict[str, nn.Parameter]:
    """Return the prunable parameters of ``model`` keyed by their ``named_parameters`` name.

    Args:
        model: Any module.
        spec: The selection rule; defaults to :class:`PrunableSpec()`.

    Returns:
        An ordered dict ``name -> Parameter`` in module-registration order.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> list(prunable_parameters(net))
        ['0.weight', '2.weight']
        >>> list(prunable_parameters(net, PrunableSpec(include_classifier=False)))
        ['0.weight']
    """
    spec = spec or PrunableSpec()
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _PRUNABLE_TYPES)]
    if not spec.include_classifier and layers:
        layers = layers[:-1]
    # A Linear whose weight *is* an Embedding's (a transformer's tied output head) is the
    # embedding, which is not prunable; and a tensor shared by two layers counts once.
    seen = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    out: dict[str, nn.Parameter] = {}
    for mod_name, mod in layers:
        prefix = f"{mod_name}." if mod_name else ""
        tensors = [("weight", mod.weight)]
        if spec.include_bias and getattr(mod, "bias", None) is not None:
            tensors.append(("bias", mod.bias))
        for attr, tensor in tensors:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                out[prefix + attr] = tensor
    return out
