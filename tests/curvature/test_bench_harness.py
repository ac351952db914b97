"""The peer-benchmark harness's logic on a tiny problem (no timing is checked)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "peers"))

import _contestants  # noqa: E402
import _measure  # noqa: E402
import _models  # noqa: E402
import _plan  # noqa: E402
import _report  # noqa: E402
import _timing  # noqa: E402


class HalfWrong(_contestants.Contestant):
    """A 'peer' whose product is 2 H v and that offers nothing else."""

    name = "doubler"

    def hvp(self, pb, v):
        return 2 * _contestants.Prunelab().hvp(pb, v)


def _flat_loss(pb, v):
    params = _contestants.unflat(v, pb.params)
    values = dict(zip(pb.names, params, strict=True))
    return (
        sum(
            F.cross_entropy(torch.func.functional_call(pb.model, values, (x,)), y) * len(x)
            for x, y in pb.batches
        )
        / pb.num_examples
    )


def test_harness_measures_checks_and_reports(monkeypatch):
    monkeypatch.setattr(_timing, "MIN_SAMPLE_S", 0.0)  # one call per sample: fast
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).eval()
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    pb = _models.Problem("tiny", model, [(x[:8], y[:8]), (x[8:], y[8:])], F.cross_entropy, "t")
    cs = [_contestants.Prunelab(), _contestants.Prunelab("prunelab cache", cache=True), HalfWrong()]
    run = _measure.measure(pb, cs, _plan.ScalePlan(2, {"slq64": 1}), threads=1)
    ops = run["ops"]
    assert set(ops["hvp"]) == {"prunelab", "prunelab cache", "doubler"}
    assert "doubler" not in ops["top"] and len(ops["slq64"]["prunelab"]["wall"]) == 1
    assert len(ops["hvp"]["prunelab"]["wall"]) == 2 == len(run["gradient"]["wall"])
    err = run["checks"]["hvp_rel_err_vs_prunelab"]
    assert err["prunelab cache"] < 1e-5 and err["doubler"] == pytest.approx(1.0, rel=1e-5)
    dense = torch.linalg.eigvalsh(
        torch.func.hessian(lambda v: _flat_loss(pb, v))(
            torch.cat([p.detach().flatten() for p in pb.params])
        )
    )
    top = ops["top"]["prunelab"]["median_info"]["top"]
    assert abs(top - float(dense.max())) <= 1e-3 * float(dense.max())
    assert _timing.median_ratio([2.0, 6.0], [1.0, 2.0]) == 2.5
    md = _report.markdown(
        {
            "command": "run.py",
            "machine": {"cores": 2, "torch": torch.__version__},
            "started": "now",
            "load_start": (1.0, 1.0, 1.0),
            "load_end": (1.0, 1.0, 1.0),
            "elapsed_s": 1.0,
            "scales": {"tiny": {"description": "t", "dim": pb.dim, "runs": [run]}},
        }
    )
    assert "| one HVP (2 reps) |" in md and "doubler" in md and "1.0e+00" in md
