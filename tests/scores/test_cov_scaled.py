"""cov_scaled = OBD with the exact Hessian of the squared loss on a linear model (paper 000)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.scores import score


def linear_problem(scales, outputs=2, n=40, shift=0.0):
    torch.manual_seed(4)
    d = len(scales)
    net = nn.Linear(d, outputs).double()
    x = torch.randn(n, d, dtype=torch.float64) * torch.tensor(scales) + shift
    y = torch.randn(n, outputs, dtype=torch.float64)
    return net, [(x[:25], y[:25]), (x[25:], y[25:])], x


def test_cov_scaled_is_second_moment_times_theta_sq(float64):
    net, batches, x = linear_problem([0.1, 1.0, 3.0, 10.0])
    got = score(net, "cov_scaled", batches, F.mse_loss)["weight"]
    moment = (x * x).mean(0)
    torch.testing.assert_close(got, moment[None, :] * net.weight.detach() ** 2)


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_cov_scaled_ranks_like_obd_with_exact_squared_loss_hessian(float64, shift):
    net, batches, _ = linear_problem([0.1, 0.5, 1.0, 3.0, 10.0], outputs=3, shift=shift)
    cov = score(net, "cov_scaled", batches, F.mse_loss)
    obd = score(net, "obd", batches, F.mse_loss, curvature="exact")
    # PyTorch's MSE also averages over the K=3 outputs: H = 2 XᵀX / (N K).
    torch.testing.assert_close(obd["weight"], cov["weight"] / 3, rtol=1e-10, atol=1e-14)
    for p in (0.2, 0.4, 0.6, 0.8):
        assert Mask.from_scores(cov, p).equal(Mask.from_scores(obd, p))


def test_cov_scaled_equals_magnitude_ranking_for_equal_scales(float64):
    torch.manual_seed(0)
    net = nn.Linear(6, 2).double()
    x = torch.randn(20, 6, dtype=torch.float64).sign()  # ±1: every second moment is exactly 1
    batches = [(x, torch.zeros(20, 2, dtype=torch.float64))]
    cov = score(net, "cov_scaled", batches, F.mse_loss)
    mag = score(net, "magnitude")
    for p in (0.25, 0.5, 0.75):
        assert Mask.from_scores(cov, p).equal(Mask.from_scores(mag, p))


def test_centered_option(float64):
    net, batches, x = linear_problem([1.0, 2.0], shift=3.0)
    got = score(net, "cov_scaled", batches, F.mse_loss, centered=True)["weight"]
    var = x.var(0, unbiased=False)
    torch.testing.assert_close(got, var[None, :] * net.weight.detach() ** 2)


def test_cov_scaled_refuses_non_linear_models(float64):
    mlp = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).double()
    batches = [(torch.randn(4, 2), torch.randn(4, 1))]
    with pytest.raises(PrunelabError, match="exactly one nn.Linear"):
        score(mlp, "cov_scaled", batches, F.mse_loss)
    with pytest.raises(PrunelabError, match="needs data"):
        score(nn.Linear(2, 1), "cov_scaled")
