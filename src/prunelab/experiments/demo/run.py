"""The demo behind ``make demo``: the three questions answered on digits in minutes.

It is a sweep (the bundled ``demo.toml``, run by the same runner, workers and store as
any other) plus a headline page. Small and real (nanoGPT's habit): fc5 trained on
scikit-learn's bundled digits, plain and ``ℓ1`` (LOMP), then

1. **which weights matter** — six criteria at the same sparsities, right after one-shot
   pruning and after a short fine-tune;
2. **how far** — the Hessian spectrum (SLQ) and the limit predictors (the quadratic
   loss model, the certified GGN and Gaussian-width limits of paper 004, the cosine rule
   of paper 003);
3. **proof** — each prediction beside the ground truth it claims (the one-shot limits
   with bootstrap intervals, the fine-tuned limits over fine-tuning seeds), its error
   ``Δ`` in points and a verdict: validated, not, or not converged (no number).

``OUT`` holds the sweep (``results.sqlite``, ``dense/``), its full report
(``report/index.html``) and the headline page (``index.html``). Re-running resumes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from prunelab.device import resolve_device
from prunelab.experiments.report.data import dense_tags, load_sweep
from prunelab.experiments.report.page import build_report
from prunelab.experiments.report.validation import TRUTHS, prediction_rows
from prunelab.experiments.sweep.runner import run_sweep

#: the bundled sweep config of the demo
CONFIG = Path(__file__).with_name("demo.toml")


@dataclass
class DemoResult:
    """What the demo measured (every table the headline page shows).

    Attributes:
        dense: Dense test metrics per training variant (``"plain"``, ``"l1"``).
        criteria: Criteria comparison rows (criterion, sparsity, stage, accuracy, sd, loss).
        limits: One row per (model, predictor, target): ``p̂``, the truth and its
            interval, ``Δ`` (points) and the verdict
            (:func:`~prunelab.experiments.report.validation.prediction_rows`).
        truths: One row per (model, ground truth): its value and 95 % interval.
        curves: The one-shot accuracy and loss curves (0.25 % grid), per model.
        spectrum: The plain model's spectrum summary (a dict).
        config: The sweep config that ran (a dict).
        report: Path of the headline ``index.html``.
        seconds: Wall-clock time of the sweep and in total.
    """

    dense: dict
    criteria: list[dict]
    limits: list[dict]
    truths: list[dict]
    curves: dict
    spectrum: dict
    config: dict
    report: Path
    seconds: dict


def demo_config(seed: int = 0, epochs: int | None = None) -> str:
    """The bundled ``demo.toml`` with ``seeds`` (and ``[train] epochs``) replaced.

    Returns:
        TOML text (the demo's own settings, so a report shows exactly what ran).
    """
    text = CONFIG.read_text(encoding="utf-8").replace("seeds = [0]", f"seeds = [{int(seed)}]", 1)
    if epochs is not None:
        text = text.replace("epochs = 30", f"epochs = {int(epochs)}", 1)
    tomllib.loads(text)  # the replacements keep it valid TOML
    return text


def _criteria_rows(runs: list[dict]) -> list[dict]:
    """Mean (± sd over random's seeds) accuracy per criterion, sparsity and stage."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        c, m = run["config"], run["metrics"]
        if c["training"] != "plain" or run["status"] != "ok":
            continue
        label = c["criterion"] if c["criterion"] == "random" else c["criterion_label"]
        groups.setdefault((label, c["sparsity"]), []).append(m)
    rows = []
    for (label, p), ms in groups.items():
        for stage, key in (("after prune", "after_prune"), ("after fine-tune", "after_finetune")):
            accs = [m[key]["accuracy"] for m in ms]
            rows.append({"criterion": label, "sparsity": p, "stage": stage,
                         "accuracy": statistics.fmean(accs),
                         "accuracy_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                         "loss": statistics.fmean(m[key]["loss"] for m in ms),
                         "compression": ms[0]["compression"]})  # fmt: skip
    return rows


def _truth_rows(tag: str, found: dict) -> list[dict]:
    """The ground truths one model measured, each with its interval and cost."""
    rows = []
    for target, (key, field) in TRUTHS.items():
        interval = (found.get(key) or {}).get(field)
        if interval:
            rows.append({"model": tag, "truth": target, "value": interval["value"],
                         "low": interval["low"], "high": interval["high"],
                         "seconds": (found.get("seconds") or {}).get(key)})  # fmt: skip
    return rows


def run_demo(
    out: str | Path,
    seed: int = 0,
    epochs: int | None = None,
    workers: int = 1,
    progress: bool = False,
    device: str = "cpu",
) -> DemoResult:
    """Run (or resume) the demo sweep and write its report and headline page.

    Args:
        out: Demo directory.
        seed: Seed of the data order, initialisation and estimators.
        epochs: Dense training epochs (default: the config's 30).
        workers: Sweep worker processes (``<= 1``: this process).
        progress: Draw the sweep's bar of jobs (training, runs, predictions) on stderr.
        device: Where the models live (``cpu``, ``cuda``, ``auto``).

    Returns:
        The measured :class:`DemoResult`.
    """
    from prunelab.experiments.demo.section import write_demo_page

    t0 = time.perf_counter()
    resolve_device(device)  # a bad device fails before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # the sweep keeps its own copy, config.toml
        config_path = Path(tmp) / CONFIG.name
        config_path.write_text(demo_config(seed, epochs), encoding="utf-8")
        run_sweep(config_path, out, workers=workers, progress=progress, device=device)
    seconds = {"sweep": time.perf_counter() - t0}
    build_report(out)
    data = load_sweep(out)
    tags = dense_tags(data)
    dense, limits, truths, curves, spectrum = {}, [], [], [], {}
    by_variant = sorted(data.predictions.items(), key=lambda kv: tags[kv[0]]["training"])
    for dense_hash, found in by_variant:
        tag = tags[dense_hash]["training"]
        dense[tag] = data.dense[dense_hash]["metrics"]["dense"]
        limits += [{"model": tag, **row} for row in prediction_rows(found)]
        truths += _truth_rows(tag, found)
        one = found["one-shot"]
        points = zip(one["grid"], one["accuracy"], one["loss"], strict=True)
        curves += [{"model": tag, "sparsity": p, "accuracy": a, "loss": lo} for p, a, lo in points]
        if tag == "plain":
            spectrum = found["spectrum"]
    seconds["total"] = time.perf_counter() - t0
    result = DemoResult(
        dense=dense, criteria=_criteria_rows(data.runs), limits=limits, truths=truths,
        curves={"rows": curves}, spectrum=spectrum, config=data.config,
        report=out / "index.html", seconds=seconds,
    )  # fmt: skip
    write_demo_page(out, result)
    return result
