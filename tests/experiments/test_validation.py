"""The validation table: each predictor against its own target, with the 2-point rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunelab.experiments.report.data import SweepData
from prunelab.experiments.report.validation import validation_rows


def _sweep(found: dict) -> SweepData:
    config = {"model": "fc5", "data": {"name": "digits"}, "train": {"seed": 0, "l1": 0.0}}
    run = {"dense_hash": "h", "config": {"training": "plain", "procedure": {"kind": "one-shot"},
                                         "data": {"name": "digits"}}}  # fmt: skip
    return SweepData(Path("."), {}, "x", runs=[run], dense={"h": {"hash": "h", "config": config}},
                     predictions={"h": found})  # fmt: skip


def interval(v, lo, hi):
    return {"value": v, "low": lo, "high": hi, "sd": 0.01}


def test_each_predictor_meets_its_target_and_the_rule():
    found = {
        "one-shot": {
            "last_pass": interval(0.80, 0.75, 0.85),
            "loss_limit": interval(0.6, 0.5, 0.7),
        },
        "fine-tuned": {"limit": interval(0.95, 0.94, 0.96)},
        "certified": {
            "p_mid": 0.99,
            "p_lower": 0.98,
            "p_upper": 1.0,
            "converged": True,
            "rank_deficient": True,
        },  # fmt: skip
        "quadratic": {"p_hat": 0.69},  # inside the loss limit's interval, 9 points off
        "cosine": {"p_star": 0.90},  # 10 points above the one-shot accuracy limit
        "gaussian-width": {"p_hat": 0.965, "settings": {"convergence": {"p_hat": [0.5, 0.965]}}},
    }
    rows = {r["predictor"]: r for r in validation_rows(_sweep(found))}
    assert rows["certified (GGN)"]["target"] == "fine-tuned"
    assert rows["certified (GGN)"]["delta_pp"] == pytest.approx(4.0)
    assert (
        not rows["certified (GGN)"]["validated"]
        and "rank-deficient" in rows["certified (GGN)"]["note"]
    )
    assert rows["quadratic"]["target"] == "one-shot loss" and rows["quadratic"]["validated"]
    assert not rows["cosine p*"]["validated"]
    gw = rows["gaussian-width"]
    assert (
        gw["validated"] and gw["delta_pp"] == pytest.approx(1.5) and "not converged" in gw["note"]
    )
    del found["fine-tuned"]  # no truth, no row: nothing is compared with the wrong target
    assert {r["predictor"] for r in validation_rows(_sweep(found))} == {"quadratic", "cosine p*"}
