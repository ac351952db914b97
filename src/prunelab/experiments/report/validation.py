"""The limits validation table: each predictor beside the ground truth it claims.

A predictor is **validated** on a model when its numerics converged and
``|p̂ − truth| ≤ 2`` points or ``p̂`` lies inside the truth's 95 % interval (bootstrap
over test examples for the one-shot limits, min–max over fine-tuning seeds for the
fine-tuned limits). An estimate that has not converged is never validated: it moves
with a numerical setting. Targets:

===================  =======================================================
predictor            targets
===================  =======================================================
certified (GGN)      fine-tuned loss and accuracy limits (004's geometry)
gaussian-width       fine-tuned loss and accuracy limits
quadratic            one-shot *loss* limit (``ΔL ≤ ε`` along the path)
calibration          one-shot *loss* limit (the baseline: ``ΔL`` measured on the
                     curvature predictors' training examples)
cosine p* (003)      fine-tuned accuracy limit (003 fine-tunes after pruning)
===================  =======================================================

The cost columns are the seconds the sweep spent on the prediction and on measuring its
truth (``found["seconds"]``, when the run recorded them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prunelab.experiments.report import html
from prunelab.experiments.report.data import SweepData, dense_label, dense_tags
from prunelab.limits._estimate import CONVERGENCE_WARN

#: (predictor, result key, how to read p̂, target key in the truths): one row each
PREDICTORS = (
    ("certified (GGN)", "certified", "p_mid", "fine-tuned loss"),
    ("certified (GGN)", "certified", "p_mid", "fine-tuned accuracy"),
    ("gaussian-width", "gaussian-width", "p_hat", "fine-tuned loss"),
    ("gaussian-width", "gaussian-width", "p_hat", "fine-tuned accuracy"),
    ("quadratic", "quadratic", "p_hat", "one-shot loss"),
    ("calibration", "calibration", "loss_limit.value", "one-shot loss"),
    ("cosine p*", "cosine", "p_star", "fine-tuned accuracy"),
)
#: target -> (result key of the truth, the field holding its interval)
TRUTHS = {
    "one-shot accuracy": ("one-shot", "last_pass"),
    "one-shot loss": ("one-shot", "loss_limit"),
    "fine-tuned accuracy": ("fine-tuned", "limit"),
    "fine-tuned loss": ("fine-tuned", "loss_limit"),
}
#: points within which a predictor counts as validated
WITHIN_POINTS = 2.0


def _truths(found: dict) -> dict[str, tuple[dict, float | None]]:
    """``target -> (interval dict, seconds spent measuring it)`` from a prediction payload."""
    seconds = found.get("seconds") or {}
    out = {}
    for target, (key, field) in TRUTHS.items():
        interval = (found.get(key) or {}).get(field)
        if interval:  # a run stored before the loss version has none: no row
            out[target] = (interval, seconds.get(key))
    return out


def _field(est: dict, path: str):
    """``est["a"]["b"]`` for ``path = "a.b"``."""
    for part in path.split("."):
        est = est[part]
    return est


def _numerics(key: str, est: dict, p_hat: float) -> tuple[str, bool]:
    """The note on a prediction's numerics and whether they converged."""
    if key == "calibration":  # a measurement: its own interval over calibration examples
        interval = est["loss_limit"]
        return f"own interval [{interval['low']:.3f}, {interval['high']:.3f}]", True
    if key == "certified":
        note = f"bracket [{est['p_lower']:.3f}, {est['p_upper']:.3f}]"
        note += "" if est["converged"] else " (not converged)"
        note += "; rank-deficient" if est["rank_deficient"] else ""
        return note, bool(est["converged"])
    if key == "gaussian-width":  # the library's own convergence check, restated
        half, full = (est.get("settings") or {}).get("convergence", {}).get(
            "p_hat", [p_hat, p_hat])  # fmt: skip
        if abs(full - half) > CONVERGENCE_WARN:
            return f"not converged: p̂ {half:.3f} at m/2 steps, {full:.3f} at m", False
    return "", True


def prediction_rows(found: dict) -> list[dict]:
    """One row per (predictor, target) of one model's predictions and truths.

    Args:
        found: A prediction payload (:func:`~prunelab.experiments.jobs.measure.predictions`).

    Returns:
        Rows ``predictor, p_hat, target, truth, truth_low, truth_high, delta_pp,
        validated, verdict, predict_s, truth_s, note``; a predictor or truth not in
        ``found`` gives no row (nothing is compared with the wrong target).
    """
    truths = _truths(found)
    seconds = found.get("seconds") or {}
    rows = []
    for name, key, field, target in PREDICTORS:
        est, (truth, truth_s) = found.get(key), truths.get(target, (None, None))
        if not est or not truth:
            continue
        p_hat = float(_field(est, field))
        delta = 100.0 * (p_hat - truth["value"])
        inside = truth["low"] is not None and truth["low"] <= p_hat <= truth["high"]
        note, converged = _numerics(key, est, p_hat)
        close = abs(delta) <= WITHIN_POINTS or inside
        verdict = ("yes" if close else "no") if converged else "not converged"
        rows.append({
            "predictor": name, "p_hat": p_hat, "target": target, "truth": truth["value"],
            "truth_low": truth["low"], "truth_high": truth["high"], "delta_pp": delta,
            "validated": verdict == "yes", "verdict": verdict,
            "predict_s": seconds.get(key), "truth_s": truth_s, "note": note,
        })  # fmt: skip
    return rows


def validation_rows(data: SweepData) -> list[dict]:
    """:func:`prediction_rows` of every dense model of a sweep, labelled."""
    tags = dense_tags(data)
    rows = []
    for dense_hash, found in data.predictions.items():
        if dense_hash not in data.dense:
            continue
        label = dense_label(data.dense[dense_hash], tags)
        keep = {k: label[k] for k in ("model", "training", "seed")}
        rows += [{**keep, **row} for row in prediction_rows(found)]
    return sorted(rows, key=lambda r: (r["model"], r["training"], r["seed"], r["predictor"]))


def _mean_sd(values: list[float], digits: int = 3) -> str:
    """``mean ± sd`` (the sd over seeds; a lone value alone)."""
    arr = np.array([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return ""
    if arr.size == 1:
        return f"{arr[0]:.{digits}f}"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}"


def validation_summary(rows: list[dict]) -> list[dict]:
    """The rows grouped over training seeds: means ± sd, the verdicts counted, the costs.

    Returns:
        One row per (model, training, predictor, target): ``p̂`` and truth as
        ``mean ± sd`` over seeds, ``Δ`` in points likewise, ``validated`` as
        ``"k / n"`` (with the not-converged count), and the median seconds.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["training"], r["predictor"], r["target"]), []).append(r)
    out = []
    for (model, training, predictor, target), rs in groups.items():
        unconverged = sum(r["verdict"] == "not converged" for r in rs)
        verdict = f"{sum(r['validated'] for r in rs)} / {len(rs)}"
        verdict += f" ({unconverged} not converged)" if unconverged else ""
        costs = {k: [r[k] for r in rs if r.get(k) is not None] for k in ("predict_s", "truth_s")}
        out.append({
            "model": model, "training": training, "predictor": predictor, "target": target,
            "seeds": len(rs), "p_hat": _mean_sd([r["p_hat"] for r in rs]),
            "truth": _mean_sd([r["truth"] for r in rs]),
            "delta_pp": _mean_sd([r["delta_pp"] for r in rs], digits=1),
            "validated": verdict,
            "predict_s": float(np.median(costs["predict_s"])) if costs["predict_s"] else None,
            "truth_s": float(np.median(costs["truth_s"])) if costs["truth_s"] else None,
        })  # fmt: skip
    return out


def validation_section(data: SweepData, rep: Path) -> list[str]:
    """The report section (empty when the sweep measured no ground truth with intervals)."""
    rows = validation_rows(data)
    if not rows:
        return []
    html.write_csv(rep / "limits_validation.csv", rows)
    summary = validation_summary(rows)
    html.write_csv(rep / "limits_validation_summary.csv", summary)
    passed = sum(r["validated"] for r in rows)
    return [
        html.section(
            "Limits validation: each predictor against the target it claims",
            html.paragraph(
                "Validated = the numerics converged and |p̂ − truth| ≤ "
                f"{WITHIN_POINTS:g} points or p̂ inside the truth's 95 % interval (bootstrap "
                "over test examples; min–max over fine-tuning seeds). "
                f"{passed} of {len(rows)} predictor × target × model rows validated."
            ),
            html.table(summary),
            html.paragraph("Per training seed:", note=True),
            html.table(rows),
            html.paragraph("CSV: limits_validation.csv, limits_validation_summary.csv", note=True),
        )
    ]
