"""The limits validation table: each predictor beside the ground truth it claims.

A predictor is **validated** on a model when ``|p̂ − truth| ≤ 2`` points or ``p̂`` lies
inside the truth's 95 % interval (bootstrap over test examples for the one-shot limits,
min–max over fine-tuning seeds for the fine-tuned limit). Targets:

===================  ====================================================
predictor            target
===================  ====================================================
certified (GGN)      fine-tuned limit (004's geometry: a refit exists)
gaussian-width       fine-tuned limit (flagged when not converged)
quadratic            one-shot *loss* limit (``ΔL ≤ ε`` along the path)
cosine p* (003)      one-shot accuracy limit (003 compares after 1 epoch)
===================  ====================================================
"""

from __future__ import annotations

from pathlib import Path

from prunelab.experiments.report import html
from prunelab.experiments.report.data import SweepData, dense_label, dense_tags
from prunelab.limits._estimate import CONVERGENCE_WARN

#: predictor -> (result key, how to read p̂, target key in the truths, target label)
PREDICTORS = {
    "certified (GGN)": ("certified", "p_mid", "fine-tuned", "fine-tuned"),
    "gaussian-width": ("gaussian-width", "p_hat", "fine-tuned", "fine-tuned"),
    "quadratic": ("quadratic", "p_hat", "loss", "one-shot loss"),
    "cosine p*": ("cosine", "p_star", "one-shot", "one-shot accuracy"),
}
#: points within which a predictor counts as validated
WITHIN_POINTS = 2.0


def _truths(found: dict) -> dict[str, dict]:
    """``target -> {"value", "low", "high"}`` from a prediction payload."""
    out = {}
    one = found.get("one-shot")
    if one:
        out["one-shot"] = one["last_pass"]
        out["loss"] = one["loss_limit"]
    ft = found.get("fine-tuned")
    if ft:
        out["fine-tuned"] = ft["limit"]
    return out


def validation_rows(data: SweepData) -> list[dict]:
    """One row per (dense model, predictor) with its target, error and verdict."""
    tags = dense_tags(data)
    rows = []
    for dense_hash, found in data.predictions.items():
        if dense_hash not in data.dense:
            continue
        label = dense_label(data.dense[dense_hash], tags)
        truths = _truths(found)
        for name, (key, field, target, target_label) in PREDICTORS.items():
            est, truth = found.get(key), truths.get(target)
            if not est or not truth:
                continue
            p_hat = float(est[field])
            delta = 100.0 * (p_hat - truth["value"])
            inside = truth["low"] is not None and truth["low"] <= p_hat <= truth["high"]
            note = ""
            if key == "certified":
                note = f"bracket [{est['p_lower']:.3f}, {est['p_upper']:.3f}]"
                note += "" if est["converged"] else " (not converged)"
                note += "; rank-deficient" if est["rank_deficient"] else ""
            if key == "gaussian-width":  # the library's own convergence check, restated
                half, full = (est.get("settings") or {}).get("convergence", {}).get(
                    "p_hat", [p_hat, p_hat])  # fmt: skip
                if abs(full - half) > CONVERGENCE_WARN:
                    note = f"not converged: p̂ {half:.3f} at m/2 steps, {full:.3f} at m"
            rows.append({
                "model": label["model"], "training": label["training"], "seed": label["seed"],
                "predictor": name, "p_hat": p_hat, "target": target_label,
                "truth": truth["value"], "truth_low": truth["low"], "truth_high": truth["high"],
                "delta_pp": delta,
                "validated": abs(delta) <= WITHIN_POINTS or inside, "note": note,
            })  # fmt: skip
    return sorted(rows, key=lambda r: (r["model"], r["training"], r["seed"], r["predictor"]))


def validation_section(data: SweepData, rep: Path) -> list[str]:
    """The report section (empty when the sweep measured no ground truth with intervals)."""
    rows = validation_rows(data)
    if not rows:
        return []
    html.write_csv(rep / "limits_validation.csv", rows)
    passed = sum(r["validated"] for r in rows)
    return [
        html.section(
            "Limits validation: each predictor against the target it claims",
            html.paragraph(
                f"Validated = |p̂ − truth| ≤ {WITHIN_POINTS:g} points or p̂ inside the truth's "
                "95 % interval (bootstrap over test examples; min–max over fine-tuning "
                f"seeds). {passed} of {len(rows)} predictor × model pairs validated."
            ),
            html.table(rows),
            html.paragraph("CSV: limits_validation.csv", note=True),
        )
    ]
