"""Reports: render from a tiny sweep; every referenced image / CSV exists; aggregation."""

from __future__ import annotations

import csv
import re
import statistics
from pathlib import Path

import pytest

from prunelab.errors import PrunelabError
from prunelab.experiments.report.data import aggregate, load_sweep, mean_sd
from prunelab.experiments.report.page import build_report
from prunelab.experiments.sweep.runner import run_sweep

ROOT = Path(__file__).resolve().parents[2]

SWEEP = """
name = "report-test"
models = ["lenet300"]
seeds = [0, 1]
sparsities = [0.5, 0.9, "p_star"]
[data]
name = "digits"
[train]
epochs = 1
[finetune]
epochs = 1
lr = 0.01
[[criteria]]
name = "magnitude"
[[criteria]]
name = "random"
[scoring]
samples = 128
[predictions]
methods = ["cosine"]
[linear_theory]
sparsities = [0.5, 0.8]
seeds = [0, 1]
dim = 10
n_train = 40
n_mc = 2000
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "sweep"
    cfg = out.parent / "report.toml"
    cfg.write_text(SWEEP)
    summary = run_sweep(cfg, out, progress=False)
    assert summary.ok == 12 and summary.studies == 2
    return out


def test_report_renders_and_every_reference_exists(sweep):
    index = build_report(sweep)
    page = index.read_text()
    refs = re.findall(r"(?:src|href)='([^']+)'", page)
    assert any(r.endswith(".png") for r in refs) and any(r.endswith(".csv") for r in refs)
    for ref in refs:
        path = index.parent / ref
        assert path.is_file() and path.stat().st_size > 0, ref
    pngs = [r for r in refs if r.endswith(".png")]
    for png in pngs:  # every figure has its CSV beside it
        assert png[:-4] + ".csv" in refs
        assert (index.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for needed in ("Prunable set", "no wall-clock speed-up", "Run seeds: [0, 1]", "Failures"):
        assert needed in page
    assert "Linear theory (paper 000)" in page and "Per-layer density" in page


def test_summary_csv_is_the_mean_and_sd_over_seeds(sweep):
    build_report(sweep)
    with open(sweep / "report" / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    runs = load_sweep(sweep).runs
    row = next(r for r in rows if r["criterion"] == "random" and r["sparsity"] == "0.9")
    accs = [
        r["metrics"]["after_finetune"]["accuracy"]
        for r in runs
        if r["config"]["criterion"] == "random" and r["config"]["sparsity"] == 0.9
    ]
    assert len(accs) == 2
    assert float(row["acc_finetuned_mean"]) == pytest.approx(statistics.fmean(accs))
    assert float(row["acc_finetuned_sd"]) == pytest.approx(statistics.stdev(accs))
    assert int(row["seeds"]) == 2
    star = next(r for r in rows if r["criterion"] == "magnitude" and r["sparsity"] == "p_star")
    assert 0.0 < float(star["achieved_sparsity_mean"]) < 1.0


def test_failed_runs_are_counted_not_averaged_as_zero():
    def run(status, acc, seed):
        config = {
            "model": "m", "data": {"name": "d"}, "training": "plain",
            "procedure": {"label": "one-shot"}, "criterion_label": "c", "sparsity": 0.5,
            "seed": seed,
        }  # fmt: skip
        metrics = {"after_prune": {"accuracy": acc}} if status == "ok" else None
        return {"status": status, "config": config, "metrics": metrics}

    (row,) = aggregate([run("ok", 80.0, 0), run("ok", 90.0, 1), run("diverged", None, 2)])
    assert row["acc_pruned_mean"] == 85.0 and row["seeds"] == 2 and row["diverged"] == 1
    assert mean_sd([1.0, None, float("nan")]) == (1.0, 0.0)


def test_report_refuses_a_directory_without_results(tmp_path):
    with pytest.raises(PrunelabError, match="not a sweep directory"):
        build_report(tmp_path)
