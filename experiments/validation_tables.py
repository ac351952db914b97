"""The README's limits-validation tables, printed from one or more validation sweeps.

Reads each sweep's store (``prunelab.experiments.report``: the same rows as the HTML
report's validation section) and prints two Markdown tables: every predictor against
every target it claims, grouped over training seeds (``p̂`` and truth as mean ± sd, the
verdicts counted), and the cost of predicting against measuring (median seconds per
dense model, as the sweep recorded them, with the load they ran under stated by hand).

    .venv/bin/python experiments/validation_tables.py runs/limits_validation \
        runs/limits_validation_fashion
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from prunelab.experiments.report.data import load_sweep
from prunelab.experiments.report.validation import validation_rows, validation_summary

#: the cost table's columns: result key -> label
COSTS = {
    "quadratic": "quadratic", "calibration": "calibration", "certified": "certified",
    "gaussian-width": "gaussian-width", "cosine": "cosine", "one-shot": "one-shot truth",
    "fine-tuned": "fine-tuned truth",
}  # fmt: skip


def _markdown(rows: list[dict], cols: list[str]) -> str:
    def cell(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    """Print the two tables for the sweeps named on the command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweeps", nargs="+", type=Path)
    args = ap.parse_args()
    summary, costs = [], []
    for out in args.sweeps:
        data = load_sweep(out)
        name = data.config.get("data", [{}])
        tag = (name[0] if isinstance(name, list) else name).get("name", "?")
        for row in validation_summary(validation_rows(data)):
            summary.append({"data": tag, **row})
        per_model: dict[tuple, list[dict]] = {}
        for h, found in data.predictions.items():
            if h in data.dense and found.get("seconds"):
                cfg = data.dense[h]["config"]
                key = (tag, cfg["model"], "l1" if cfg["train"].get("l1") else "plain")
                per_model.setdefault(key, []).append(found["seconds"])
        for (d, model, training), secs in sorted(per_model.items()):
            row = {"data": d, "model": model, "training": training, "n": len(secs)}
            for key, label in COSTS.items():
                vals = [s[key] for s in secs if key in s]
                row[label] = float(np.median(vals)) if vals else None
            costs.append(row)
    cols = ["data", "model", "training", "predictor", "target", "seeds", "p_hat", "truth",
            "delta_pp", "validated"]  # fmt: skip
    print(_markdown(summary, cols))
    print()
    print(_markdown(costs, ["data", "model", "training", "n", *COSTS.values()]))


if __name__ == "__main__":
    main()
