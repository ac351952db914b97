"""The validation table: each predictor against its own target, with the 2-point rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunelab.experiments.report.data import SweepData
from prunelab.experiments.report.validation import validation_rows, validation_summary


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
        "fine-tuned": {
            "limit": interval(0.95, 0.94, 0.96),
            "loss_limit": interval(0.90, 0.89, 0.91),
        },
        "certified": {
            "p_mid": 0.99,
            "p_lower": 0.98,
            "p_upper": 1.0,
            "converged": True,
            "rank_deficient": True,
        },  # fmt: skip
        "quadratic": {"p_hat": 0.69},  # inside the loss limit's interval, 9 points off
        "calibration": {"loss_limit": interval(0.63, 0.6, 0.66)},  # 3 points off, inside
        "cosine": {"p_star": 0.80},  # 15 points below the fine-tuned accuracy limit
        "gaussian-width": {"p_hat": 0.955, "settings": {"convergence": {"p_hat": [0.5, 0.955]}}},
        "seconds": {"certified": 3.0, "fine-tuned": 30.0, "one-shot": 2.0},
    }
    rows = {(r["predictor"], r["target"]): r for r in validation_rows(_sweep(found))}
    assert set(rows) == {
        ("certified (GGN)", "fine-tuned loss"), ("certified (GGN)", "fine-tuned accuracy"),
        ("gaussian-width", "fine-tuned loss"), ("gaussian-width", "fine-tuned accuracy"),
        ("quadratic", "one-shot loss"), ("cosine p*", "fine-tuned accuracy"),
        ("calibration", "one-shot loss"),
    }  # fmt: skip
    cal = rows["calibration", "one-shot loss"]
    assert cal["p_hat"] == 0.63 and cal["delta_pp"] == pytest.approx(3.0) and cal["validated"]
    assert "own interval [0.600, 0.660]" in cal["note"]
    cert = rows["certified (GGN)", "fine-tuned accuracy"]
    assert cert["delta_pp"] == pytest.approx(4.0) and cert["verdict"] == "no"
    assert "rank-deficient" in cert["note"]
    assert cert["predict_s"] == 3.0 and cert["truth_s"] == 30.0  # the cost beside the error
    assert rows["certified (GGN)", "fine-tuned loss"]["delta_pp"] == pytest.approx(9.0)
    assert rows["quadratic", "one-shot loss"]["validated"]
    assert rows["quadratic", "one-shot loss"]["truth_s"] == 2.0
    assert rows["quadratic", "one-shot loss"]["predict_s"] is None  # not recorded: no number
    assert not rows["cosine p*", "fine-tuned accuracy"]["validated"]
    # within 2 points of its truth, but its quadrature moved: never validated
    gw = rows["gaussian-width", "fine-tuned accuracy"]
    assert gw["delta_pp"] == pytest.approx(0.5) and gw["verdict"] == "not converged"
    assert not gw["validated"] and "not converged" in gw["note"]
    del found["fine-tuned"]  # no truth, no row: nothing is compared with the wrong target
    assert {r["predictor"] for r in validation_rows(_sweep(found))} == {"quadratic", "calibration"}


def test_a_run_stored_before_the_loss_truths_gets_only_its_accuracy_rows():
    found = {
        "fine-tuned": {"limit": interval(0.95, 0.94, 0.96)},
        "cosine": {"p_star": 0.95},
        "certified": {
            "p_mid": 0.9,
            "p_lower": 0.9,
            "p_upper": 0.9,
            "converged": True,
            "rank_deficient": False,
        },  # fmt: skip
    }
    rows = validation_rows(_sweep(found))
    assert {(r["predictor"], r["target"]) for r in rows} == {
        ("cosine p*", "fine-tuned accuracy"), ("certified (GGN)", "fine-tuned accuracy")
    }  # fmt: skip
    assert all(r["verdict"] in ("yes", "no") for r in rows)


def test_summary_groups_training_seeds():
    rows = [
        {"model": "m", "training": "plain", "seed": s, "predictor": "quadratic",
         "target": "one-shot loss", "p_hat": p, "truth": t, "delta_pp": 100 * (p - t),
         "validated": ok, "verdict": v, "predict_s": 2.0 + s, "truth_s": None}
        for s, (p, t, ok, v) in enumerate(
            [(0.8, 0.79, True, "yes"), (0.9, 0.8, False, "no"), (0.7, 0.7, False, "not converged")]
        )
    ]  # fmt: skip
    (row,) = validation_summary(rows)
    assert row["seeds"] == 3 and row["validated"] == "1 / 3 (1 not converged)"
    assert row["p_hat"] == "0.800 ± 0.100" and row["predict_s"] == 3.0 and row["truth_s"] is None
    assert row["delta_pp"].startswith("3.7 ± ")
