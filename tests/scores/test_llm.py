"""``wanda`` and ``sparsegpt`` against slow, obviously right float64 references.

* wanda on a tiny GPT equals ``|W|·‖X_j‖₂`` with every layer input recomputed by hand;
* sparsegpt's blocked Cholesky reconstruction equals a column-by-column OBS solve with
  explicit inverses of ``H_FF`` (any block size), its score equals ``w²/[(H_FF)⁻¹]_jj``;
* on a single Linear with random calibration data its layer output error is no larger
  than magnitude pruning's at the same density (per row, global, 2:4);
* the reconstruction calibrates one block at a time on the already-refitted weights.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.masks import Mask
from prunelab.models.gpt import GPT
from prunelab.prunable import prunable_parameters
from prunelab.scores import reconstruct, score
from prunelab.scores._calibration import blocks, layers_of
from prunelab.scores.sparsegpt import hessian, reconstruct_layer, saliency


def tiny_gpt() -> GPT:
    torch.manual_seed(3)
    net = GPT(vocab=7, context=5, d_model=8, n_layer=2, n_head=2).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))  # biases and LayerNorms away from 0 / 1
    return net


def token_batches(vocab=7, context=5, sizes=(3, 2)):
    gen = torch.Generator().manual_seed(4)
    out = []
    for n in sizes:
        x = torch.randint(0, vocab, (n, context), generator=gen)
        out.append((x, torch.roll(x, -1, dims=1)))
    return out


def lm_loss(out, y):
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def gpt_layer_inputs(net: GPT, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every prunable Linear's input, by hand (the model's math written out)."""
    t = x.shape[1]
    h = net.tok.weight[x] + net.pos.weight[:t]
    out = {}
    for i, blk in enumerate(net.blocks):
        a = F.layer_norm(h, (h.shape[-1],), blk.ln1.weight, blk.ln1.bias)
        for name in ("q", "k", "v"):
            out[f"blocks.{i}.attn.{name}"] = a
        att = blk.attn
        nh, d = att.n_head, h.shape[-1]

        def split(z, nh=nh, d=d):
            return z.reshape(z.shape[0], t, nh, d // nh).transpose(1, 2)

        q, k, v = split(att.q(a)), split(att.k(a)), split(att.v(a))
        w = (q @ k.transpose(-2, -1)) / math.sqrt(d // nh)
        w = w.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), -math.inf)
        y = (torch.softmax(w, -1) @ v).transpose(1, 2).reshape(x.shape[0], t, d)
        out[f"blocks.{i}.attn.out"] = y
        h = h + att.out(y)
        m = F.layer_norm(h, (d,), blk.ln2.weight, blk.ln2.bias)
        out[f"blocks.{i}.fc"] = m
        out[f"blocks.{i}.proj"] = F.gelu(blk.fc(m))
        h = h + blk.proj(out[f"blocks.{i}.proj"])
    return out


def test_wanda_equals_the_direct_computation_on_a_tiny_gpt():
    net, batches = tiny_gpt(), token_batches()
    got = score(net, "wanda", batches, lm_loss)
    sumsq = {}
    with torch.no_grad():
        for x, _ in batches:
            for name, inp in gpt_layer_inputs(net, x).items():
                s = inp.reshape(-1, inp.shape[-1]).pow(2).sum(0)
                sumsq[name] = sumsq.get(name, 0) + s
    assert list(got) == list(prunable_parameters(net))
    for name, s in got.items():
        layer = name.rsplit(".", 1)[0]
        w = net.get_submodule(layer).weight.detach()
        torch.testing.assert_close(s, w.abs() * sumsq[layer].sqrt()[None, :], rtol=1e-12, atol=0)


def test_wanda_on_a_conv_uses_the_im2col_columns():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, stride=2, bias=True).double().eval()
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    from prunelab.prunable import PrunableSpec

    got = score(
        conv,
        "wanda",
        [(x, torch.zeros(len(x)))],
        lambda o, y: o.sum(),
        spec=PrunableSpec(include_bias=True),
    )
    cols = F.unfold(x, 3, padding=1, stride=2)  # (N, C*9, L)
    norms = cols.pow(2).sum((0, 2)).sqrt().reshape(2, 3, 3)
    torch.testing.assert_close(got["weight"], conv.weight.detach().abs() * norms[None])
    rows = cols.shape[0] * cols.shape[2]
    torch.testing.assert_close(got["bias"], conv.bias.detach().abs() * math.sqrt(rows))


# ------------------------------------------------------------------ sparsegpt references
def obs_reference(w, keep, h):
    """Column-by-column OBS with explicit float64 inverses of H over the unprocessed columns."""
    w = w.clone()
    cols = w.shape[1]
    for j in range(cols):
        hinv = torch.linalg.inv(h[j:, j:])
        for r in range(w.shape[0]):
            if not keep[r, j]:
                w[r, j:] -= w[r, j] / hinv[0, 0] * hinv[0, :]
                w[r, j] = 0.0
    return torch.where(keep, w, 0.0)


def random_layer(rows=5, cols=7, n=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cols, generator=gen, dtype=torch.float64)
    x = x @ torch.randn(cols, cols, generator=gen, dtype=torch.float64)  # correlated inputs
    w = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    return x, w


def adaptive_reference(w, keep, h, segment):
    """:func:`obs_reference` with the paper's adaptive selection.

    At each segment start, every row keeps as many weights of the segment as ``keep``
    does: the largest ``w²/[(H_FF)⁻¹]_00`` of the current (partially updated) weights
    among those not already zero.
    """
    avail = keep | (w != 0)
    w, keep = w.clone(), keep.clone()
    cols = w.shape[1]
    d = torch.stack([torch.linalg.inv(h[j:, j:])[0, 0] for j in range(cols)])
    for j in range(cols):
        if j % segment == 0:
            seg = slice(j, min(j + segment, cols))
            for r in range(w.shape[0]):
                k = int(keep[r, seg].sum())
                sal = [(float(w[r, c] ** 2 / d[c]), -c) for c in range(seg.start, seg.stop)
                       if avail[r, c]]  # fmt: skip
                best = {-c for _, c in sorted(sal, reverse=True)[:k]}
                for c in range(seg.start, seg.stop):
                    keep[r, c] = c in best
        hinv = torch.linalg.inv(h[j:, j:])
        for r in range(w.shape[0]):
            if not keep[r, j]:
                w[r, j:] -= w[r, j] / hinv[0, 0] * hinv[0, :]
                w[r, j] = 0.0
    return torch.where(keep, w, 0.0), keep


@pytest.mark.parametrize("blocksize", [1, 3, 128])
def test_sparsegpt_reconstruction_matches_a_dense_obs_solve(blocksize):
    x, w = random_layer()
    h, dead = hessian(x.T @ x, x.shape[0], 0.01)
    keep = torch.rand(w.shape, generator=torch.Generator().manual_seed(1)) > 0.5
    got, used = reconstruct_layer(w, keep, h, dead, blocksize)
    torch.testing.assert_close(got, obs_reference(w, keep, h), rtol=1e-9, atol=1e-10)
    assert torch.equal(used, keep)
    assert bool((got[~keep] == 0).all())


@pytest.mark.parametrize(("blocksize", "segment"), [(3, 3), (8, 4), (128, 128), (6, 2)])
def test_sparsegpt_adaptive_selection_matches_the_slow_reference(blocksize, segment):
    x, w = random_layer(rows=4, cols=8)
    w[0, 1] = 0.0  # pruned earlier: must stay pruned
    h, dead = hessian(x.T @ x, x.shape[0], 0.01)
    keep = Mask.from_scores({"w": w.abs()}, 0.5, "row").masks["w"]
    got, used = reconstruct_layer(w, keep, h, dead, blocksize, segment)
    want, want_keep = adaptive_reference(w, keep, h, segment)
    assert torch.equal(used, want_keep)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    assert not bool(used[0, 1])
    for start in range(0, 8, segment):  # counts per row and segment are the mask's
        assert torch.equal(
            used[:, start : start + segment].sum(1), keep[:, start : start + segment].sum(1)
        )


def test_sparsegpt_score_is_the_sequential_obs_saliency():
    x, w = random_layer()
    h, dead = hessian(x.T @ x, x.shape[0], 0.01)
    want = torch.stack(
        [w[:, j] ** 2 / torch.linalg.inv(h[j:, j:])[0, 0] for j in range(w.shape[1])], dim=1
    )
    torch.testing.assert_close(saliency(w, h, dead), want, rtol=1e-9, atol=0)


def test_sparsegpt_dead_columns_are_zeroed_and_score_zero():
    x, w = random_layer()
    x[:, 2] = 0.0
    h, dead = hessian(x.T @ x, x.shape[0], 0.01)
    assert dead.tolist() == [j == 2 for j in range(7)]
    assert bool((saliency(w, h, dead)[:, 2] == 0).all())
    keep = torch.ones_like(w, dtype=torch.bool)
    assert bool((reconstruct_layer(w, keep, h, dead, 4)[0][:, 2] == 0).all())


def layer_error(x, w, w_hat):
    return float((x @ w.T - x @ w_hat.T).pow(2).sum())


def calibration_like(rows=8, cols=32, n=256, seed=0, shared=0.5):
    """Random inputs shaped like activations: log-normal feature scales, a shared factor.

    (On inputs ``randn @ randn(C, C)``, whose Gram matrix is badly conditioned, SparseGPT's
    left-to-right order made the error larger than magnitude's in a third of the cases.)
    """
    gen = torch.Generator().manual_seed(seed)
    scales = torch.exp(torch.randn(cols, generator=gen, dtype=torch.float64))
    x = torch.randn(n, cols, generator=gen, dtype=torch.float64) * scales
    x = x + shared * torch.randn(n, 1, generator=gen, dtype=torch.float64) * scales
    return x, torch.randn(rows, cols, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize(
    ("sparsity", "scope", "nm"),
    [(0.5, "row", None), (0.7, "global", None), (0.5, "layer", "2:4"), (0.9, "row", None),
     (0.5, "row", "4:8")],
)  # fmt: skip
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparsegpt_layer_error_is_at_most_magnitudes(sparsity, scope, nm, seed):
    x, w = calibration_like(seed=seed)
    batches = [(x[:100], torch.zeros(100)), (x[100:], torch.zeros(156))]
    errors = {}
    for crit in ("magnitude", "sparsegpt"):
        net = nn.Linear(32, 8, bias=False).double().eval()
        with torch.no_grad():
            net.weight.copy_(w)
        mask = Mask.from_scores(
            score(net, crit, batches, lambda o, y: o.sum()), sparsity, scope, nm=nm
        )
        nnz = mask.nnz
        mask = reconstruct(net, crit, mask, batches) or mask.apply(net) and mask
        assert bool((net.weight[~mask.masks["weight"]] == 0).all())
        assert mask.nnz == nnz
        errors[crit] = layer_error(x, w, net.weight.detach())
    assert errors["sparsegpt"] <= errors["magnitude"]


def test_sparsegpt_reconstructs_block_by_block_on_refitted_inputs():
    """Layer 2 is refitted on the inputs that the already-refitted layer 1 produces."""
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(30, 6, generator=gen, dtype=torch.float64)
    batches = [(x[:10], torch.zeros(10)), (x[10:], torch.zeros(20))]
    mask = Mask.from_scores(score(net, "sparsegpt", batches, lambda o, y: o.sum()), 0.5, "row")
    ref = [net[0].weight.detach().clone(), net[2].weight.detach().clone()]
    # by hand: layer 1 on the raw inputs, layer 2 on tanh(refitted layer 1)
    h1, d1 = hessian(x.T @ x, 30, 0.01)
    w1, k1 = reconstruct_layer(ref[0], mask.masks["0.weight"], h1, d1, 128, 128)
    a = torch.tanh(x @ w1.T + net[0].bias.detach())
    h2, d2 = hessian(a.T @ a, 30, 0.01)
    w2, k2 = reconstruct_layer(ref[1], mask.masks["2.weight"], h2, d2, 128, 128)
    used = reconstruct(net, "sparsegpt", mask, batches)
    assert torch.equal(used.masks["0.weight"], k1) and torch.equal(used.masks["2.weight"], k2)
    torch.testing.assert_close(net[0].weight.detach(), w1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(net[2].weight.detach(), w2, rtol=1e-10, atol=1e-12)


def test_gpt_layers_are_calibrated_per_transformer_block():
    net = tiny_gpt()
    groups = blocks(net, layers_of(net, prunable_parameters(net)))
    assert [g.name for g in groups] == ["blocks.0", "blocks.1"]
    assert [layer.name for layer in groups[0].layers] == [
        "blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v", "blocks.0.attn.out",
        "blocks.0.fc", "blocks.0.proj",
    ]  # fmt: skip


def test_sparsegpt_prunes_a_gpt_closer_to_the_dense_outputs_than_magnitude():
    batches = token_batches(sizes=(16, 16))
    dense = tiny_gpt()
    with torch.no_grad():
        want = [dense(x) for x, _ in batches]
    distance = {}
    for crit in ("magnitude", "sparsegpt"):
        net = tiny_gpt()
        mask = Mask.from_scores(score(net, crit, batches, lm_loss), 0.5, "row")
        mask = reconstruct(net, crit, mask, batches) or mask.apply(net) and mask
        for n, p in prunable_parameters(net).items():
            assert bool((p[~mask.masks[n]] == 0).all())
        with torch.no_grad():
            distance[crit] = sum(
                float((net(x) - w).pow(2).sum()) for (x, _), w in zip(batches, want, strict=True)
            )
    assert distance["sparsegpt"] < distance["magnitude"]


def test_obd_with_the_true_fisher_on_a_language_model_uses_sampled_token_labels():
    # the exact T·V sum is out of reach for a real vocabulary, so obd's "fisher" samples
    # every position's label; the sampled diagonal itself is checked against the dense GGN
    # in tests/curvature/test_diagonals.py
    from prunelab.curvature import fisher_diag

    net, batches = tiny_gpt(), token_batches()
    got = score(net, "obd", batches, lm_loss, curvature="fisher", num_probes=6, seed=5)
    params = prunable_parameters(net)
    diag = fisher_diag(net, lm_loss, batches, list(params), method="sampled",
                       num_samples=6, seed=5).value  # fmt: skip
    start = 0
    for name, p in params.items():
        c = diag[start : start + p.numel()].reshape(p.shape)
        start += p.numel()
        torch.testing.assert_close(got[name], 0.5 * c * p.detach() ** 2, rtol=1e-12, atol=0)
    again = score(net, "obd", batches, lm_loss, curvature="fisher", num_probes=6, seed=5)
    assert all(torch.equal(got[k], again[k]) for k in got)
