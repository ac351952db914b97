"""Paired comparison of the LLM criteria on one dense model (issue 11 item 7).

One dense model gives no spread over training seeds, but every pruned model is evaluated
on the same held-out examples (the gpt's 1,024 validation windows, MiniLM's 256
evaluation sentences), so the difference of two criteria's mean losses has a paired
standard error over examples: ``sd(l_a − l_b) / √n``. This script re-prunes a sweep's
dense checkpoint (the one under ``SWEEP/dense``) at 50 % per row and 2:4 with the
sweeps' settings, and prints each criterion's test loss (next-token nats, or 1 − cos)
beside its paired difference from magnitude and from wanda (± 1 s.e.). One thread; a
few minutes on one core (MiniLM: sparsegpt's reconstruction takes ~5).

    .venv/bin/python experiments/llm_paired.py [--sweep runs/gpt_llm | runs/minilm_llm]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import torch

from prunelab.experiments.jobs import prune_job
from prunelab.procedures import PruneSettings
from prunelab.train import loss_function

CRITERIA = ("magnitude", "wanda", "sparsegpt")
#: (label, PruneSettings fields): the sweep's two 50 % procedures
SETTINGS = (("50% per row", {"scope": "row"}), ("2:4", {"scope": "layer", "nm": "2:4"}))


def example_losses(model: torch.nn.Module, data) -> torch.Tensor:
    """The task loss of every test example on its own, ``(n,)`` float64."""
    model.eval()
    loss_fn, out = loss_function(data), []
    with torch.no_grad():
        for x, y in data.batches("test", 256):
            pred = model(x)
            out += [float(loss_fn(pred[i : i + 1], y[i : i + 1])) for i in range(len(y))]
    return torch.tensor(out, dtype=torch.float64)


def main() -> None:
    """Prune, evaluate per window, print the paired table, write ``paired.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", default="runs/gpt_llm", help="the gpt_llm sweep directory")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dense_dirs = sorted((Path(args.sweep) / "dense").iterdir())
    if len(dense_dirs) != 1:
        raise SystemExit(f"expected one dense checkpoint under {args.sweep}/dense")
    rows = []
    for label, fields in SETTINGS:
        losses = {}
        for crit in CRITERIA:
            settings = PruneSettings(samples=128, batch_size=32, **fields)
            outcome = prune_job(dense_dirs[0], crit, 0.5, settings, eval_train=False)
            losses[crit] = example_losses(outcome.model, outcome.data)
        n = len(losses["magnitude"])
        for crit in CRITERIA:
            row = {"setting": label, "criterion": crit, "loss": float(losses[crit].mean()),
                   "exp_loss": math.exp(float(losses[crit].mean()))}  # fmt: skip
            for ref in ("magnitude", "wanda"):
                d = losses[crit] - losses[ref]
                row[f"minus_{ref}"] = float(d.mean())
                row[f"minus_{ref}_se"] = float(d.std() / math.sqrt(n))
            rows.append(row)
            print(
                f"{label:12s} {crit:10s} loss {row['loss']:.4f} (exp {row['exp_loss']:.3f})  "
                f"- magnitude {row['minus_magnitude']:+.4f} ± {row['minus_magnitude_se']:.4f}  "
                f"- wanda {row['minus_wanda']:+.4f} ± {row['minus_wanda_se']:.4f}",
                flush=True,
            )
    out = Path(args.sweep) / "paired.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"load": os.getloadavg(), "rows": rows}, indent=1))
    tmp.replace(out)


if __name__ == "__main__":
    main()
