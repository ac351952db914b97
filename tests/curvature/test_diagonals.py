"""Diagonals: exact, Hutchinson (error rate and standard error), empirical and true Fisher."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cases import CASE_NAMES, make_case, rel_err

from prunelab.curvature import (
    GGN,
    Hessian,
    empirical_fisher_diag,
    exact_diagonal,
    fisher_diag,
    hutchinson_diag,
)
from prunelab.errors import PrunelabError


@pytest.mark.parametrize("name", CASE_NAMES)
def test_exact_diagonal_matches_dense(name):
    c = make_case(name)
    H = Hessian(c.model, c.loss_fn, c.batches)
    assert rel_err(exact_diagonal(H, block_size=17), c.dense_hessian().diagonal()) <= 1e-10
    G = GGN(c.model, c.loss_fn, c.batches)
    assert rel_err(exact_diagonal(G), c.dense_ggn().diagonal()) <= 1e-10


def test_exact_diagonal_refuses_large_dimension():
    c = make_case("mlp-ce")
    H = Hessian(c.model, c.loss_fn, c.batches)
    with pytest.raises(PrunelabError, match="max_dim=10, got D=63"):
        exact_diagonal(H, max_dim=10)


def test_hutchinson_error_shrinks_like_inverse_sqrt_probes():
    c = make_case("mlp-ce")
    H = Hessian(c.model, c.loss_fn, c.batches)
    truth = c.dense_hessian().diagonal()
    mse = {}
    for S in (8, 128):
        errs = [hutchinson_diag(H, S, seed=s, block_size=32).value - truth for s in range(6)]
        mse[S] = float(torch.stack(errs).pow(2).mean())
    ratio = (mse[8] / mse[128]) ** 0.5
    assert 3.0 < ratio < 5.3, ratio


def test_hutchinson_stderr_covers_the_truth_and_has_the_right_size():
    c = make_case("conv-ce")
    H = Hessian(c.model, c.loss_fn, c.batches)
    dense = c.dense_hessian()
    truth = dense.diagonal()
    S = 64
    est = hutchinson_diag(H, S, seed=3)
    assert est.num_samples == S and est.value.shape == truth.shape
    err = (est.value - truth).abs()
    covered = err <= 4 * est.stderr + 1e-12 * truth.abs().max()
    assert float(covered.double().mean()) >= 0.95
    # The per-probe variance of entry i is Σ_{j≠i} H_ij²; the reported stderr must match it.
    theory = ((dense.pow(2).sum(1) - truth.pow(2)) / S).sqrt()
    live = theory > 1e-8 * theory.max()
    assert 0.8 < float((est.stderr[live] / theory[live]).median()) < 1.2


def test_hutchinson_is_reproducible_and_independent_of_block_size():
    c = make_case("mlp-mse")
    H = Hessian(c.model, c.loss_fn, c.batches)
    a = hutchinson_diag(H, 10, seed=7, block_size=3)
    b = hutchinson_diag(H, 10, seed=7, block_size=10)
    again = hutchinson_diag(H, 10, seed=7, block_size=3)
    assert torch.equal(a.value, again.value) and torch.equal(a.stderr, again.stderr)
    assert torch.allclose(a.value, b.value, rtol=1e-12, atol=1e-14)
    assert torch.allclose(a.stderr, b.stderr, rtol=1e-9, atol=1e-14)
    assert not torch.allclose(a.value, hutchinson_diag(H, 10, seed=8).value)


def test_hutchinson_needs_two_probes():
    c = make_case("mlp-ce")
    H = Hessian(c.model, c.loss_fn, c.batches)
    with pytest.raises(PrunelabError, match="num_probes must be an integer >= 2, got 1"):
        hutchinson_diag(H, 1)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_empirical_fisher_diag_matches_a_loop_over_examples(name):
    c = make_case(name)
    g = c.per_example_grads()  # a Python loop of autograd.grad, one example at a time
    truth = (g**2).mean(0)
    got = empirical_fisher_diag(c.model, c.loss_fn, c.batches)
    assert rel_err(got, truth) <= 1e-10
    chunked = empirical_fisher_diag(c.model, c.loss_fn, c.batches, chunk_size=2)
    assert rel_err(chunked, truth) <= 1e-10
    # Not the square of the mean gradient, which is a different quantity.
    assert rel_err(g.mean(0) ** 2, truth) > 0.1


def test_empirical_fisher_diag_names_a_non_finite_batch():
    c = make_case("mlp-ce")
    x, y = c.batches[2]
    x = x.clone()
    x[1] = float("inf")
    with pytest.raises(PrunelabError, match="non-finite per-example loss or gradient on batch 2"):
        empirical_fisher_diag(c.model, c.loss_fn, [c.batches[0], c.batches[1], (x, y)])


@pytest.mark.parametrize("name", ["mlp-ce", "conv-ce"])
def test_exact_fisher_diag_equals_the_ggn_diagonal(name):
    c = make_case(name)
    est = fisher_diag(c.model, c.loss_fn, c.batches, chunk_size=3)
    assert rel_err(est.value, c.dense_ggn().diagonal()) <= 1e-10
    assert float(est.stderr.abs().max()) == 0.0


def test_sampled_fisher_diag_is_unbiased_within_its_stderr():
    c = make_case("mlp-ce")
    truth = c.dense_ggn().diagonal()
    est = fisher_diag(c.model, c.loss_fn, c.batches, method="sampled", num_samples=48, seed=1)
    again = fisher_diag(c.model, c.loss_fn, c.batches, method="sampled", num_samples=48, seed=1)
    assert torch.equal(est.value, again.value)
    assert est.num_samples == 48
    covered = (est.value - truth).abs() <= 4 * est.stderr + 1e-12
    assert float(covered.double().mean()) >= 0.95
    assert rel_err(est.value, truth) < 0.5


def test_fisher_diag_refuses_regression_and_unknown_method():
    c = make_case("mlp-mse")
    with pytest.raises(PrunelabError, match="softmax cross-entropy"):
        fisher_diag(c.model, c.loss_fn, c.batches)
    c = make_case("mlp-ce")
    with pytest.raises(PrunelabError, match="needs softmax cross-entropy"):
        fisher_diag(c.model, lambda o, y: F.cross_entropy(o, y) * 2, c.batches)
    with pytest.raises(PrunelabError, match="valid choices: exact, sampled"):
        fisher_diag(c.model, c.loss_fn, c.batches, method="guess")


def _tiny_lm():
    """A 1-block GPT on random tokens, float64: (N, T, V) logits, mean over all tokens."""
    from prunelab._evaluate import token_cross_entropy
    from prunelab.curvature import GGN
    from prunelab.models.gpt import GPT

    torch.manual_seed(3)
    net = GPT(vocab=5, context=3, d_model=4, n_layer=1, n_head=2).double().eval()
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(0, 5, (5, 3), generator=gen)
    y = torch.randint(0, 5, (5, 3), generator=gen)
    batches = [(x[:3], y[:3]), (x[3:], y[3:])]
    truth = GGN(net, token_cross_entropy, batches).to_dense().diagonal()
    return net, token_cross_entropy, batches, truth


def test_exact_fisher_diag_of_a_language_model_equals_the_ggn_diagonal():
    net, loss_fn, batches, truth = _tiny_lm()
    est = fisher_diag(net, loss_fn, batches, chunk_size=2)
    assert rel_err(est.value, truth) <= 1e-10


def test_sampled_fisher_diag_of_a_language_model_is_unbiased_within_its_stderr():
    net, loss_fn, batches, truth = _tiny_lm()
    est = fisher_diag(net, loss_fn, batches, method="sampled", num_samples=64, seed=2)
    covered = (est.value - truth).abs() <= 4 * est.stderr + 1e-12
    assert float(covered.double().mean()) >= 0.95
    assert rel_err(est.value, truth) < 0.5
