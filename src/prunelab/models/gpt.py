"""``gpt``: a small decoder-only transformer (GPT-2 layout) for the ``text`` dataset.

Token + learned position embeddings, ``L`` pre-LayerNorm blocks (causal multi-head
self-attention with separate ``q``, ``k``, ``v``, ``out`` projections, then a GELU MLP
``fc`` → ``proj`` of width ``4d``), a final LayerNorm and an output head **tied** to the
token embedding. No dropout, so the model is deterministic in ``eval()`` mode as
curvature requires; attention is written out (softmax of masked ``QKᵀ/√d_h``) rather
than calling a fused kernel, so ``torch.func`` transforms (HVPs, per-example gradients)
go through it.

The prunable set (:func:`prunelab.prunable.prunable_parameters`) is the weight of every
attention and MLP Linear: the embeddings and LayerNorms are not Linear layers, biases are
excluded by default, and the tied head shares the embedding's weight, so it is excluded
(and never counted twice).

Registered sizes (``input_shape = (context,)``, ``output_dim`` = vocabulary):

============  =====  ======  =====  ==================================================
name          d      blocks  heads  parameters with a 256-token vocabulary, context 64
============  =====  ======  =====  ==================================================
``gpt-tiny``  32     2       2      ~30k (tests)
``gpt``       128    6       4      ~1.2M (the default; trains in minutes on 2 cores)
``gpt-large`` 192    6       6      ~2.7M
============  =====  ======  =====  ==================================================

Initialisation follows GPT-2 (normal, std 0.02; the two residual projections of each
block scaled by ``1/√(2L)``), not :func:`~prunelab.models.registry.init_weights`'s
Kaiming rule, which is meant for ReLU networks.

Example:
    >>> import torch
    >>> net = GPT(vocab=11, context=8, d_model=16, n_layer=1, n_head=2)
    >>> net(torch.zeros(3, 8, dtype=torch.long)).shape
    torch.Size([3, 8, 11])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunelab.errors import PrunelabError
from prunelab.models.registry import MODELS

#: name -> (d_model, n_layer, n_head)
SIZES: dict[str, tuple[int, int, int]] = {
    "gpt-tiny": (32, 2, 2),
    "gpt": (128, 6, 4),
    "gpt-large": (192, 6, 6),
}


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with separate ``q``, ``k``, ``v``, ``out`` Linears."""

    def __init__(self, d_model: int, n_head: int, context: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        causal = torch.ones(context, context, dtype=torch.bool).tril()
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, d) -> (B, T, d)``; position ``t`` attends to positions ``<= t``."""
        b, t, d = x.shape
        h = self.n_head

        def heads(z: Tensor) -> Tensor:
            return z.reshape(b, t, h, d // h).transpose(1, 2)  # (B, h, T, d_h)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // h)
        att = att.masked_fill(~self.causal[:t, :t], float("-inf"))
        y = torch.softmax(att, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, d_model: int, n_head: int, context: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, context)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, d) -> (B, T, d)``."""
        x = x + self.attn(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """Decoder-only transformer with a tied output head.

    Args:
        vocab: Vocabulary size (output width).
        context: Longest input sequence (learned positions).
        d_model: Width of the residual stream.
        n_layer: Number of blocks.
        n_head: Attention heads (must divide ``d_model``).

    Shapes:
        input ``(B, T)`` token ids, ``T <= context`` (a floating input is rounded to ids,
        so shape probes such as an all-zeros input work) -> logits ``(B, T, vocab)``.
    """

    def __init__(self, vocab: int, context: int, d_model: int, n_layer: int, n_head: int) -> None:
        super().__init__()
        if d_model % n_head:
            raise PrunelabError(f"n_head={n_head} must divide d_model={d_model}")
        self.context = context
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_head, context) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)
        self.head.weight = self.tok.weight  # tied: one tensor, counted once
        self._init(n_layer)

    def _init(self, n_layer: int) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:
            for proj in (block.attn.out, block.proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx: Tensor) -> Tensor:
        """Next-token logits ``(B, T, vocab)`` of token ids ``(B, T)``."""
        if idx.is_floating_point():
            idx = idx.round().long().clamp_(0, self.tok.num_embeddings - 1)
        t = idx.shape[-1]
        if t > self.context:
            raise PrunelabError(f"sequence of {t} tokens is longer than the context {self.context}")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def make_gpt(name: str, input_shape: tuple[int, ...], output_dim: int) -> GPT:
    """Build the registered size ``name`` for ``(context,)`` inputs and ``output_dim`` tokens."""
    if len(input_shape) != 1:
        raise PrunelabError(
            f"model {name!r} needs a token-sequence input_shape (context,), got "
            f"{tuple(input_shape)}; use it with the text dataset"
        )
    d, n_layer, n_head = SIZES[name]
    return GPT(output_dim, input_shape[0], d, n_layer, n_head)


@MODELS.register("gpt-tiny")
def gpt_tiny(input_shape: tuple[int, ...], output_dim: int) -> GPT:
    """GPT with d=32, 2 blocks, 2 heads (tests)."""
    return make_gpt("gpt-tiny", input_shape, output_dim)


@MODELS.register("gpt")
def gpt(input_shape: tuple[int, ...], output_dim: int) -> GPT:
    """GPT with d=128, 6 blocks, 4 heads (~1.2M parameters on bytes)."""
    return make_gpt("gpt", input_shape, output_dim)


@MODELS.register("gpt-large")
def gpt_large(input_shape: tuple[int, ...], output_dim: int) -> GPT:
    """GPT with d=192, 6 blocks, 6 heads (~2.7M parameters on bytes)."""
    return make_gpt("gpt-large", input_shape, output_dim)
