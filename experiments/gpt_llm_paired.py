"""Paired comparison of the LLM criteria on the gpt of ``gpt_llm.toml`` (issue 11 item 7).

One dense model gives no spread over training seeds, but every pruned model is evaluated
on the same 1,024 validation windows, so the difference of two criteria's validation
losses has a paired standard error over windows: ``sd(l_a − l_b) / √n``. This script
re-prunes the sweep's dense checkpoint (found by its content hash under
``runs/gpt_llm/dense``) at 50 % per row and 2:4 with the sweep's settings, and prints
each criterion's validation loss and perplexity beside its paired difference from
magnitude and from wanda (nats, ± 1 s.e.). One thread; a few minutes on one core.

    .venv/bin/python experiments/gpt_llm_paired.py [--sweep runs/gpt_llm]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from prunelab.experiments.jobs import prune_job
from prunelab.procedures import PruneSettings

CRITERIA = ("magnitude", "wanda", "sparsegpt")
#: (label, PruneSettings fields): the sweep's two 50 % procedures
SETTINGS = (("50% per row", {"scope": "row"}), ("2:4", {"scope": "layer", "nm": "2:4"}))


def window_losses(model: torch.nn.Module, data) -> torch.Tensor:
    """Mean next-token loss of every validation window, ``(n,)`` float64 (nats)."""
    model.eval()
    out = []
    with torch.no_grad():
        for x, y in data.batches("test", 256):
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                   reduction="none")  # fmt: skip
            out.append(loss.reshape(y.shape).mean(1).double())
    return torch.cat(out)


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
            losses[crit] = window_losses(outcome.model, outcome.data)
        n = len(losses["magnitude"])
        for crit in CRITERIA:
            row = {"setting": label, "criterion": crit, "loss": float(losses[crit].mean()),
                   "perplexity": math.exp(float(losses[crit].mean()))}  # fmt: skip
            for ref in ("magnitude", "wanda"):
                d = losses[crit] - losses[ref]
                row[f"minus_{ref}"] = float(d.mean())
                row[f"minus_{ref}_se"] = float(d.std() / math.sqrt(n))
            rows.append(row)
            print(
                f"{label:12s} {crit:10s} loss {row['loss']:.4f} ppl {row['perplexity']:.3f}  "
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
