"""Curvature operators against dense float64 references, and their refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cases import make_case, rel_err
from torch import nn

from prunelab.curvature import GGN, EmpiricalFisher, Hessian
from prunelab.curvature.operator import _all_finite
from prunelab.errors import PrunelabError
from prunelab.prunable import PrunableSpec

OPS = {
    "hessian": (lambda c, **kw: Hessian(c.model, c.loss_fn, c.batches, **kw), "dense_hessian"),
    "hessian-fwd": (
        lambda c, **kw: Hessian(c.model, c.loss_fn, c.batches, mode="fwd-rev", **kw),
        "dense_hessian",
    ),
    "hessian-cached": (
        lambda c, **kw: Hessian(c.model, c.loss_fn, c.batches, cache=True, **kw),
        "dense_hessian",
    ),
    "ggn": (lambda c, **kw: GGN(c.model, c.loss_fn, c.batches, **kw), "dense_ggn"),
    "fisher": (
        lambda c, **kw: EmpiricalFisher(c.model, c.loss_fn, c.batches, **kw),
        "dense_empirical_fisher",
    ),
}


@pytest.mark.parametrize("kind", list(OPS))
def test_products_match_dense_reference(case, kind):
    build, ref_name = OPS[kind]
    op = build(case)
    dense = getattr(case, ref_name)()
    assert op.shape == (case.dim, case.dim) and op.dim == case.dim
    assert op.num_examples == case.num_examples
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(case.dim, generator=gen, dtype=torch.float64)
    V = torch.randn(case.dim, 5, generator=gen, dtype=torch.float64)
    hv = op @ v
    assert hv.shape == (case.dim,) and hv.dtype == torch.float64
    assert rel_err(hv, dense @ v) <= 1e-10
    assert rel_err(op.matmat(V), dense @ V) <= 1e-10
    # A second application (cached graphs are reused) gives the same numbers.
    assert rel_err(op.matmat(V), dense @ V) <= 1e-10


def test_references_are_distinct():
    """Hessian ≠ GGN ≠ Fisher on these cases, so the three tests above cannot alias."""
    c = make_case("mlp-ce")
    H, G, F_ = c.dense_hessian(), c.dense_ggn(), c.dense_empirical_fisher()
    assert rel_err(G, H) > 1e-3 and rel_err(F_, G) > 1e-3


def test_restricted_parameters_give_the_diagonal_block():
    c = make_case("conv-ce")
    full = c.dense_hessian()
    H = Hessian(c.model, c.loss_fn, c.batches)
    block = H.restrict(["4.weight"])
    s = H.slices["4.weight"]
    assert block.dim == s.stop - s.start
    assert rel_err(block.to_dense(), full[s, s]) <= 1e-10
    named = Hessian(c.model, c.loss_fn, c.batches, params=["4.weight"])
    assert rel_err(named.to_dense(), full[s, s]) <= 1e-10


def test_params_can_include_non_prunable_tensors():
    c = make_case("mlp-mse")
    H = Hessian(c.model, c.loss_fn, c.batches, params=["0.weight", "0.bias"])
    assert H.param_names == ["0.weight", "0.bias"] and H.dim == 5 * 7 + 7
    dense = H.to_dense()
    assert torch.allclose(dense, dense.T, atol=1e-12)


def test_batches_are_read_once_from_a_generator():
    c = make_case("mlp-ce")
    H = Hessian(c.model, c.loss_fn, (b for b in c.batches))
    v = torch.ones(c.dim, dtype=torch.float64)
    assert rel_err(H @ v, c.dense_hessian() @ v) <= 1e-10
    assert rel_err(H @ v, c.dense_hessian() @ v) <= 1e-10  # still there the second time


def test_a_single_pair_is_one_batch():
    c = make_case("mlp-ce")
    x, y = c.batches[0]
    H1 = Hessian(c.model, c.loss_fn, (x, y))
    H2 = Hessian(c.model, c.loss_fn, [(x, y)])
    assert torch.equal(H1.to_dense(), H2.to_dense())


@pytest.mark.parametrize("empty", [[], iter([]), [(torch.zeros(0, 5), torch.zeros(0))]])
def test_empty_batches_are_refused(empty):
    c = make_case("mlp-ce")
    with pytest.raises(PrunelabError, match="empty"):
        Hessian(c.model, c.loss_fn, empty)


def test_unknown_parameter_name_lists_valid_names():
    c = make_case("mlp-ce")
    with pytest.raises(PrunelabError, match=r"'nope'.*0\.weight, 0\.bias, 2\.weight, 2\.bias"):
        Hessian(c.model, c.loss_fn, c.batches, params=["0.weight", "nope"])


def test_batchnorm_in_train_mode_is_refused():
    c = make_case("conv-ce")
    c.model.train()
    for cls in (Hessian, GGN, EmpiricalFisher):
        with pytest.raises(PrunelabError, match=r"BatchNorm2d '1'.*model\.eval\(\)"):
            cls(c.model, c.loss_fn, c.batches)


def test_active_dropout_is_refused_but_eval_dropout_is_fine():
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)).double()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
    with pytest.raises(PrunelabError, match=r"Dropout '1' \(p=0\.5\)"):
        Hessian(net, F.cross_entropy, [(x, y)])
    Hessian(net.eval(), F.cross_entropy, [(x, y)])
    # p=0 dropout is deterministic even in training mode; so is a plain MLP in train mode.
    Hessian(
        nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.0)).double().train(), F.cross_entropy, [(x, y)]
    )


@pytest.mark.parametrize("cls", [Hessian, GGN, EmpiricalFisher])
def test_non_finite_loss_names_the_batch(cls):
    c = make_case("mlp-ce")
    x, y = c.batches[1]
    x = x.clone()
    x[0, 0] = float("nan")
    op = cls(c.model, c.loss_fn, [c.batches[0], (x, y), c.batches[2]])
    with pytest.raises(PrunelabError, match=r"non-finite loss \(nan\) on batch 1$"):
        op @ torch.ones(c.dim, dtype=torch.float64)


@pytest.mark.parametrize("cls", [Hessian, GGN, EmpiricalFisher])
def test_non_finite_product_with_finite_loss_names_the_batch(cls):
    """An infinite probe entry gives a finite loss but a non-finite product."""
    c = make_case("mlp-ce")
    op = cls(c.model, c.loss_fn, c.batches)
    v = torch.ones(c.dim, dtype=torch.float64)
    v[0] = float("inf")
    kind = op.kind
    with pytest.raises(PrunelabError, match=rf"non-finite {kind} product on batch 0$"):
        op @ v
    V = torch.ones(c.dim, 3, dtype=torch.float64)
    V[1, 2] = float("nan")
    with pytest.raises(PrunelabError, match=rf"non-finite {kind} product on batch 0$"):
        op.matmat(V)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finiteness_check_is_exact_when_the_sum_overflows(dtype):
    """The sum-based check falls back to the entrywise test on a non-finite sum."""
    big = torch.finfo(dtype).max
    finite = [torch.full((2, 3), big, dtype=dtype), torch.full((2, 1), -1.0, dtype=dtype)]
    assert not bool(torch.isfinite(sum(b.sum() for b in finite)))  # the sum overflows
    assert _all_finite(finite) and _all_finite(finite[:1])
    for bad in (float("inf"), float("-inf"), float("nan")):
        blocks = [t.clone() for t in finite]
        blocks[1][1, 0] = bad
        assert not _all_finite(blocks)
        small = [torch.zeros(2, 3, dtype=dtype), torch.zeros(2, 1, dtype=dtype)]
        small[0][0, 0] = bad
        assert not _all_finite(small)
    opposite = [torch.tensor([float("inf")], dtype=dtype), torch.tensor([float("-inf")])]
    assert not _all_finite([opposite[0], opposite[1].to(dtype)])  # inf + -inf = nan


def test_wrong_vector_shape_is_refused():
    c = make_case("mlp-ce")
    H = Hessian(c.model, c.loss_fn, c.batches)
    with pytest.raises(PrunelabError, match=r"shape \(63, k\)"):
        H.matmat(torch.ones(62, 2, dtype=torch.float64))


def test_loss_that_is_not_a_mean_is_refused_by_the_fisher():
    c = make_case("mlp-ce")

    def summed(out, y):
        return F.cross_entropy(out, y, reduction="sum")

    with pytest.raises(PrunelabError, match="not a mean over examples"):
        EmpiricalFisher(c.model, summed, c.batches)


def test_unknown_hessian_mode():
    c = make_case("mlp-ce")
    with pytest.raises(PrunelabError, match="valid choices: rev-rev, fwd-rev"):
        Hessian(c.model, c.loss_fn, c.batches, mode="magic")


@pytest.mark.slow
def test_compile_option_matches():
    """``compile=True`` gives the same numbers (compiling takes about a minute on 2 cores)."""
    c = make_case("mlp-ce")
    H = Hessian(c.model, c.loss_fn, c.batches, compile=True)
    v = torch.ones(c.dim, dtype=torch.float64)
    assert rel_err(H @ v, c.dense_hessian() @ v) <= 1e-10


def test_compile_failure_falls_back_to_eager(monkeypatch, caplog):
    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no compiler here")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    c = make_case("mlp-ce")
    H = Hessian(c.model, c.loss_fn, c.batches, compile=True)
    v = torch.ones(c.dim, dtype=torch.float64)
    assert rel_err(H @ v, c.dense_hessian() @ v) <= 1e-10
    assert "falling back to eager" in caplog.text


def test_distributed_true_needs_a_process_group():
    c = make_case("mlp-ce")
    with pytest.raises(PrunelabError, match="torch.distributed is not initialised"):
        Hessian(c.model, c.loss_fn, c.batches, distributed=True)


def test_params_accepts_a_prunable_spec():
    c = make_case("mlp-ce")
    H = Hessian(c.model, c.loss_fn, c.batches, params=PrunableSpec(include_classifier=False))
    assert H.param_names == ["0.weight"]
    H = Hessian(c.model, c.loss_fn, c.batches, params=PrunableSpec(include_bias=True))
    assert H.param_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert H.layers() == {"0": ["0.weight", "0.bias"], "2": ["2.weight", "2.bias"]}
