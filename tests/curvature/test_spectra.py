"""Lanczos, SLQ, top eigenvalues, traces and per-layer versions against dense references."""

from __future__ import annotations

import logging

import pytest
import torch
from cases import make_case

from prunelab.curvature import (
    GGN,
    EmpiricalFisher,
    Hessian,
    SpectralMeasure,
    lanczos,
    layer_slq,
    layer_traces,
    slq,
    top_eigenvalues,
    trace,
)
from prunelab.errors import PrunelabError


def _hessian(name="mlp-ce"):
    """Cached gradient graphs: same products (tested in test_curvature_operators), 5x faster."""
    c = make_case(name)
    return c, Hessian(c.model, c.loss_fn, c.batches, cache=True)


@pytest.mark.parametrize("name", ["mlp-ce", "mlp-mse"])
def test_lanczos_extreme_ritz_values_are_exact_after_d_steps(name):
    c, H = _hessian(name)
    exact = torch.linalg.eigvalsh(c.dense_hessian())
    res = lanczos(H, num_iters=H.dim, seed=0, keep_basis=True)
    theta, _ = res.ritz(0)
    scale = float(exact.abs().max())
    assert abs(float(theta.max()) - float(exact.max())) <= 1e-8 * abs(float(exact.max()))
    assert abs(float(theta.min()) - float(exact.min())) <= 1e-8 * scale
    # The basis is orthonormal and tridiagonalises H.
    n = int(res.lengths[0])
    Q = res.basis[0, :n]
    assert torch.allclose(Q @ Q.T, torch.eye(n, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(Q @ c.dense_hessian() @ Q.T, res.tridiagonal(0), atol=1e-9 * scale)


def test_lanczos_stops_at_an_invariant_subspace():
    """The empirical Fisher of 12 examples has rank <= 12: chains must break down early."""
    c = make_case("mlp-ce")
    Fop = EmpiricalFisher(c.model, c.loss_fn, c.batches)
    res = lanczos(Fop, num_iters=Fop.dim, seed=1, num_runs=3)
    assert bool(res.breakdown.all()) and int(res.lengths.max()) <= 13
    mu = slq(Fop, num_iters=Fop.dim, num_runs=3, seed=1)
    assert torch.allclose(mu.weights.sum(1), torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert bool((mu.weights[~mu.mask] == 0).all())
    # Exhausted Krylov space: the quadrature is exact, so every top Ritz value is λ_max.
    lam = float(torch.linalg.eigvalsh(c.dense_empirical_fisher()).max())
    for r in range(3):
        n = int(mu.lengths[r])
        assert abs(float(mu.nodes[r, :n].max()) - lam) <= 1e-8 * lam


def test_slq_traces_of_h_and_h_squared_match_within_the_reported_error():
    c, H = _hessian("conv-ce")
    dense = c.dense_hessian()
    mu = slq(H, num_iters=12, num_runs=40, seed=2)
    t1, t2 = mu.trace_estimate(), mu.trace_of(lambda t: t**2)
    exact1, exact2 = float(dense.trace()), float((dense @ dense).trace())
    assert t1.num_samples == 40 and t1.stderr > 0 and t2.stderr > 0
    assert abs(t1.value - exact1) < 4 * t1.stderr
    assert abs(t2.value - exact2) < 4 * t2.stderr
    # Σ τ θ = α_0 = v_0ᵀ H v_0: the SLQ trace is Hutchinson's with the same probes.
    hutch = trace(H, num_probes=40, seed=2)
    assert abs(t1.value - hutch.value) <= 1e-10 * abs(hutch.value)


def test_slq_measure_helpers_and_roundtrip():
    c, H = _hessian("mlp-mse")
    mu = slq(H, num_iters=10, num_runs=3, seed=0)
    assert mu.nodes.shape == (3, 10) and mu.num_runs == 3 and not mu.clamped
    assert torch.allclose(mu.weights.sum(1), torch.ones(3, dtype=torch.float64), atol=1e-12)
    lo, hi = mu.extremes()
    grid = torch.linspace(lo - 1, hi + 1, 4001, dtype=torch.float64)
    dens = mu.density(grid, sigma=0.05)
    assert bool((dens >= 0).all())
    assert abs(float(torch.trapezoid(dens, grid)) - 1.0) < 1e-6
    back = SpectralMeasure.from_dict(mu.to_dict())
    assert torch.equal(back.nodes, mu.nodes) and torch.equal(back.weights, mu.weights)
    assert back.trace_estimate() == mu.trace_estimate()
    again = slq(H, num_iters=10, num_runs=3, seed=0)
    assert torch.equal(again.nodes, mu.nodes)


def test_num_iters_above_dimension_is_clamped_and_recorded(caplog):
    c, H = _hessian("mlp-ce")
    with caplog.at_level(logging.WARNING, logger="prunelab.curvature"):
        mu = slq(H, num_iters=500, num_runs=2, seed=0)
    assert mu.clamped and mu.num_iters == H.dim == 63 and mu.requested_iters == 500
    assert "num_iters=500 exceeds the dimension D=63; clamped to 63" in caplog.text


def test_lanczos_names_the_failing_step():
    c = make_case("mlp-ce")
    x, y = c.batches[1]
    x = x.clone()
    x[0, 0] = float("nan")
    H = Hessian(c.model, c.loss_fn, [c.batches[0], (x, y)])
    with pytest.raises(PrunelabError, match=r"Lanczos step 1 of 5: non-finite loss .* batch 1"):
        slq(H, num_iters=5, num_runs=2)


def test_lanczos_memory_cap():
    c, H = _hessian("mlp-ce")
    with pytest.raises(PrunelabError, match="max_basis_bytes=1000"):
        lanczos(H, num_iters=10, num_runs=2, max_basis_bytes=1000)


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
def test_top_eigenvalues_match_dense(which):
    c, H = _hessian("mlp-ce")
    exact = torch.linalg.eigvalsh(c.dense_hessian())
    order = {
        "largest": exact.flip(0),
        "smallest": exact,
        "magnitude": exact[exact.abs().argsort(descending=True)],
    }[which]
    top = top_eigenvalues(H, k=3, which=which, tol=1e-10, return_vectors=True)
    assert top.converged
    assert torch.allclose(top.values, order[:3], rtol=1e-8, atol=1e-10 * float(exact.abs().max()))
    dense = c.dense_hessian()
    resid = dense @ top.vectors - top.vectors * top.values
    assert float(resid.norm(dim=0).max()) <= 1e-6 * float(exact.abs().max())


def test_trace_estimators_against_exact():
    c = make_case("mlp-ce")
    G = GGN(c.model, c.loss_fn, c.batches)
    exact = float(c.dense_ggn().trace())
    est = trace(G, num_probes=64, seed=0)
    assert abs(est.value - exact) < 4 * est.stderr
    # rank(G) <= 12 examples x 3 = 36 < 40 sketch vectors: Hutch++ is exact here.
    pp = trace(G, num_probes=120, seed=0, method="hutch++")
    assert abs(pp.value - exact) <= 1e-8 * exact
    H = Hessian(c.model, c.loss_fn, c.batches)
    h_exact = float(c.dense_hessian().trace())
    pp = trace(H, num_probes=30, seed=0, method="hutch++")
    assert abs(pp.value - h_exact) < 4 * pp.stderr
    with pytest.raises(PrunelabError, match="valid choices: hutchinson, hutch\\+\\+"):
        trace(H, 8, method="exact")
    with pytest.raises(PrunelabError, match=">= 6"):
        trace(H, 5, method="hutch++")


def test_layer_traces_sum_to_the_full_trace_and_match_blocks():
    c, H = _hessian("conv-ce")
    dense = c.dense_hessian()
    per_layer = layer_traces(H, num_probes=64, seed=4)
    assert list(per_layer) == ["0", "4"]
    total = trace(H, num_probes=64, seed=4)
    assert abs(sum(e.value for e in per_layer.values()) - total.value) <= 1e-10 * abs(total.value)
    restricted = layer_traces(H, num_probes=64, seed=4, restrict=True)
    for layer, est in [*per_layer.items(), *restricted.items()]:
        s = H.slices[f"{layer}.weight"]
        exact = float(dense[s, s].trace())
        assert abs(est.value - exact) < 4 * est.stderr, layer
    exact_sum = sum(float(dense[s, s].trace()) for s in H.slices.values())
    assert abs(exact_sum - float(dense.trace())) <= 1e-12 * abs(float(dense.trace()))


def test_layer_slq_spans_each_block():
    c, H = _hessian("mlp-ce")
    dense = c.dense_hessian()
    measures = layer_slq(H, num_iters=100, num_runs=2, seed=0)
    assert list(measures) == ["0", "2"]
    for layer, mu in measures.items():
        s = H.slices[f"{layer}.weight"]
        assert mu.dim == s.stop - s.start and mu.clamped
        lam = torch.linalg.eigvalsh(dense[s, s])
        assert abs(mu.extremes()[1] - float(lam.max())) <= 1e-8 * float(lam.abs().max())
