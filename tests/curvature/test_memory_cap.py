"""Lanczos under a memory cap against full re-orthogonalisation, and the fast single product."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cases import make_case, rel_err
from torch import nn

from prunelab.curvature import Hessian, lanczos, slq, top_eigenvalues
from prunelab.curvature._basis import KrylovBasis, parse_bytes
from prunelab.curvature.settings import SpectrumSettings
from prunelab.errors import PrunelabError

D, N = 120, 400


@pytest.fixture
def known():
    """Hessian of a linear least-squares model, ``H = (2/N) XᵀX``, spectrum chosen.

    Eigenvalues: a geometric run from 1e-3 to 1, plus three outliers (10, 20, 50), as
    network Hessians have: the outliers converge early and then, without global
    orthogonality, come back as ghosts.
    """
    gen = torch.Generator().manual_seed(0)
    eig = torch.cat(
        [
            torch.logspace(-3, 0, D - 3, dtype=torch.float64),
            torch.tensor([10.0, 20.0, 50.0], dtype=torch.float64),
        ]
    )
    U = torch.linalg.qr(torch.randn(N, D, generator=gen, dtype=torch.float64)).Q
    V = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=torch.float64)).Q
    X = U @ torch.diag((eig * N / 2).sqrt()) @ V.T
    net = nn.Linear(D, 1, bias=False).double()
    y = torch.randn(N, 1, generator=gen, dtype=torch.float64)
    H = Hessian(net, F.mse_loss, [(X[:200], y[:200]), (X[200:], y[200:])], ["weight"])
    return H, eig


def _bytes(steps, runs=4, item=8):
    return runs * steps * D * item


def test_parse_bytes():
    assert parse_bytes("512MiB") == 512 * 2**20
    assert parse_bytes("1.5 GB") == 1_500_000_000
    assert parse_bytes(4096) == 4096 and parse_bytes("2e3") == 2000
    assert parse_bytes(None) is None
    for bad in ("12 parsecs", "-1", 0, True):
        with pytest.raises(PrunelabError):
            parse_bytes(bad)
    with pytest.raises(PrunelabError, match="max_memory"):
        SpectrumSettings(max_memory="lots")
    assert "max_memory" not in SpectrumSettings().to_dict()  # old identities unchanged


def test_storage_is_chosen_by_the_cap():
    mk = lambda cap: KrylovBasis(4, 50, D, torch.float64, torch.device("cpu"), cap)  # noqa: E731
    rec = 2 * 4 * D * 8
    assert mk(None).mode == "full" and mk(rec + _bytes(50)).mode == "full"
    assert mk(rec + _bytes(50) - 1).mode == "half" and mk(rec + _bytes(50, item=4)).mode == "half"
    win = mk(rec + _bytes(10, item=4))
    assert win.mode == "window" and win.window == 10
    with pytest.raises(PrunelabError, match="too small"):
        mk(rec + _bytes(1, item=4))


#: Unit roundoff of float32, the storage of a float64 operator's capped basis.
U32 = 2.0**-24


@pytest.mark.parametrize("steps_kept", [None, 20, 5])  # None: half precision, all vectors
def test_capped_lanczos_matches_full_reorthogonalisation(known, steps_kept):
    H, eig = known
    m, norm = 40, float(eig.max())
    full = slq(H, m, 4, seed=3)
    rec = 2 * 4 * D * 8
    cap = rec + (_bytes(m, item=4) if steps_kept is None else _bytes(steps_kept, item=4))
    res = lanczos(H, m, 3, num_runs=4, max_memory=cap)
    assert res.basis_mode == ("half" if steps_kept is None else "window")
    assert res.basis_bytes <= cap  # the cap is honoured
    capped = slq(H, m, 4, seed=3, max_memory=cap)
    # tr H and tr H² are the first two moments of each run's quadrature (α_1 and
    # α_1² + β_1²): exact under any loss of orthogonality, so equal to full's.
    for f in (None, lambda t: t**2, lambda t: t**3):
        a, b = full.trace_of(f), capped.trace_of(f)
        assert abs(a.value - b.value) <= 1e-12 * abs(a.value)
        assert abs(a.stderr - b.stderr) <= 1e-10 * a.stderr
    # Smooth spectral sums (what SLQ is for) stay within 0.1 % of full's, far inside
    # the Monte-Carlo error (~20 % with 4 runs), even with ghost copies of the outliers.
    for f in (torch.log1p, torch.sqrt, lambda t: torch.exp(-10 * t)):
        a, b = full.trace_of(f), capped.trace_of(f)
        assert abs(a.value - b.value) <= 1e-3 * abs(a.value)
    # The largest Ritz value is λ_max to the storage precision times ‖H‖.
    assert abs(full.extremes()[1] - norm) <= U32 * norm
    assert abs(capped.extremes()[1] - norm) <= U32 * norm
    if steps_kept is None:
        # All vectors kept in float32: every Ritz value of every run moves by at most
        # the storage roundoff times ‖H‖, every weight by < 1e-5 (no ghosts).
        assert float((capped.nodes - full.nodes).abs().max()) <= U32 * norm
        assert float((capped.weights - full.weights).abs().max()) <= 1e-5
    else:
        # Only the latest vectors: the converged outlier comes back as ghost copies.
        assert int((capped.nodes > 0.99 * norm).sum()) > int((full.nodes > 0.99 * norm).sum())


def test_window_without_basis_refuses_ritz_vectors(known):
    H, _ = known
    cap = 2 * D * 8 + 3 * D * 4
    top = top_eigenvalues(H, 1, tol=1e-10, max_memory=cap)
    assert abs(float(top.values[0]) - 50.0) <= 1e-8 * 50
    with pytest.raises(PrunelabError, match="Ritz vectors"):
        top_eigenvalues(H, 1, max_memory=cap, return_vectors=True)


def test_without_a_cap_the_results_are_unchanged(known):
    H, _ = known
    a = lanczos(H, 30, 1, num_runs=2)
    b = lanczos(H, 30, 1, num_runs=2, max_memory="1GiB")
    assert a.basis_mode == b.basis_mode == "full"
    assert torch.equal(a.alphas, b.alphas) and torch.equal(a.betas, b.betas)


@pytest.mark.parametrize("name", ["mlp-ce", "conv-ce"])
def test_single_probe_fast_path_matches_vmap_and_dense(name):
    """``H @ v`` (plain double backward) against the vmapped block and the dense Hessian."""
    c = make_case(name)
    H = Hessian(c.model, c.loss_fn, c.batches)
    v = torch.randn(c.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    one = H @ v
    block = H.matmat(torch.stack([v, 2 * v], 1))[:, 0]  # k = 2: one backward per probe
    assert rel_err(one, block) <= 1e-12
    H._block_route = "vmap"
    vmapped = H.matmat(torch.stack([v, 2 * v], 1))[:, 0]  # k = 2: the torch.func route
    assert rel_err(one, vmapped) <= 1e-12
    assert rel_err(one, c.dense_hessian() @ v) <= 1e-10


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("route", ["loop", "vmap"])
def test_block_routes_match_dense(case, route, cache):
    """Both k > 1 routes (a double backward per probe, vmapped pullback) vs dense H."""
    H = Hessian(case.model, case.loss_fn, case.batches, cache=cache)
    H._block_route = route
    V = torch.randn(case.dim, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    dense = case.dense_hessian()
    assert rel_err(H.matmat(V), dense @ V) <= 1e-10
    assert rel_err(H.matmat(V), dense @ V) <= 1e-10  # again: a kept graph is reused


def test_single_probe_with_an_unused_parameter():
    net = nn.ModuleDict({"a": nn.Linear(3, 2), "unused": nn.Linear(2, 2)}).double()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = net

        def forward(self, x):
            return self.m["a"](x)

    model = Net()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
    H = Hessian(model, F.cross_entropy, [(x, y)], [n for n, _ in model.named_parameters()])
    v = torch.randn(H.dim, dtype=torch.float64)
    assert rel_err(H @ v, H.matmat(torch.stack([v, v], 1))[:, 0]) <= 1e-12


def test_cache_defaults_on_for_one_batch_and_follows_in_place_changes():
    c = make_case("mlp-ce")
    x = torch.cat([b[0] for b in c.batches])
    y = torch.cat([b[1] for b in c.batches])
    one = Hessian(c.model, c.loss_fn, [(x, y)])
    many = Hessian(c.model, c.loss_fn, c.batches)
    assert one.cache and not many.cache
    v = torch.randn(one.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert rel_err(one @ v, many @ v) <= 1e-10  # same matrix, cached or not
    with torch.no_grad():  # change the weights in place: the cached graph must go
        for p in c.model.parameters():
            p.mul_(1.5)
    assert rel_err(one @ v, Hessian(c.model, c.loss_fn, [(x, y)], cache=False) @ v) <= 1e-10
