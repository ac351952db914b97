"""Sweeps: results, resuming after SIGKILL, foreign directories, failures and divergence."""

from __future__ import annotations

import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from prunelab import data as datasets
from prunelab import models
from prunelab.errors import PrunelabError
from prunelab.experiments.report.page import build_report
from prunelab.experiments.store import ResultStore
from prunelab.experiments.sweep import work
from prunelab.experiments.sweep.grid import expand
from prunelab.experiments.sweep.load import load_config
from prunelab.experiments.sweep.runner import run_sweep
from prunelab.procedures import lomp
from prunelab.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "experiments" / "tiny.toml"

FAULTS = """
name = "faults"
models = ["lenet300"]
seeds = [0]
sparsities = [0.5, 0.99999]   # 0.99999 keeps 1 weight < 3 layers: the mask refuses (a failure)
[data]
name = "digits"
[train]
epochs = 1
[[training]]
name = "plain"
[[training]]
name = "exploding"
lr = 1e12                     # dense training diverges
[finetune]
epochs = 1
lr = 1e12                     # fine-tuning diverges
[[criteria]]
name = "magnitude"
"""


def table(out: Path, name: str = "runs") -> dict[str, tuple]:
    """``hash -> (status, error, metrics, config)`` of a store table (timings left out)."""
    with ResultStore(out / "results.sqlite") as store:
        rows = store.rows(name)
    assert len(rows) == len({r["hash"] for r in rows})  # never a duplicate
    payload = "result" if name == "predictions" else "metrics"
    return {r["hash"]: (r["status"], r["error"], untimed(r[payload]), r["config"]) for r in rows}


def untimed(payload):
    """A stored payload without its wall-clock ``seconds`` (a prediction's per-method times)."""
    if isinstance(payload, dict):
        return {k: v for k, v in payload.items() if k != "seconds"}
    return payload


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted tiny sweep."""
    out = tmp_path_factory.mktemp("sweeps") / "reference"
    summary = run_sweep(TINY, out, progress=False)
    assert (summary.ok, summary.failed, summary.diverged) == (4, 0, 0)
    return out


def test_sweep_records_every_run_once(reference):
    runs = table(reference)
    assert set(runs) == {r.hash for r in expand(load_config(TINY))}
    for status, error, metrics, config in runs.values():
        assert status == "ok" and error is None
        p = config["sparsity"]
        assert metrics["nnz"] == round((1 - p) * metrics["total"])
        assert metrics["after_prune"]["accuracy"] is not None
        assert metrics["after_finetune"]["accuracy"] is not None
        assert metrics["flops"]["reduction"] == pytest.approx(1 / (1 - p), rel=1e-3)
        (step,) = metrics["loss_change"]  # one-shot: one step, measured on the scoring batches
        assert step["loss_after"] == pytest.approx(metrics["step_log"][0]["loss"], rel=1e-6)
        assert step["measured"] == metrics["loss_change_total"]["measured"]
    assert len(table(reference, "dense")) == 1
    (pred,) = table(reference, "predictions").values()
    assert pred[0] == "ok" and {"cosine", "gaussian-width", "actual", "spectrum"} <= set(pred[2])


def test_resume_skips_everything_and_changes_nothing(reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    before = table(out)
    summary = run_sweep(TINY, out, progress=False)
    assert summary.runs_skipped == 4 and summary.runs_executed == 0
    assert summary.dense_trained == 0 and summary.dense_reused == 1
    assert table(out) == before


def test_killed_sweep_resumes_to_the_same_table(reference, tmp_path):
    out = tmp_path / "killed"
    code = (
        "import sys\nfrom prunelab.experiments.sweep.runner import run_sweep\n"
        "run_sweep(sys.argv[1], sys.argv[2], progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(TINY), str(out)], env=env, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    rows = 0
    try:
        while rows < 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
            if (out / "results.sqlite").exists():
                try:
                    con = sqlite3.connect(out / "results.sqlite", timeout=5)
                    rows = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:  # tables not created yet
                    rows = 0
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep finished before it could be killed"
    partial = table(out)
    assert 1 <= len(partial) < 4
    summary = run_sweep(TINY, out, progress=False)
    assert summary.runs_skipped == len(partial)
    assert table(out) == table(reference)
    assert table(out, "dense") == table(reference, "dense")
    assert table(out, "predictions") == table(reference, "predictions")


def test_other_config_is_refused_unless_forced(reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    other = tmp_path / "other.toml"
    other.write_text(TINY.read_text().replace("sparsities = [0.5, 0.9]", "sparsities = [0.5]"))
    with pytest.raises(PrunelabError, match="force=True"):
        run_sweep(other, out, progress=False)
    summary = run_sweep(other, out, progress=False, force=True)
    assert summary.runs_total == 2 and summary.runs_skipped == 0  # a new store
    assert summary.dense_reused == 1  # content-addressed checkpoints are kept
    assert (out / "config.toml").read_text() == other.read_text()
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(PrunelabError, match="other files"):
        run_sweep(TINY, stray, progress=False)


def test_failures_and_divergence_are_recorded(tmp_path):
    cfg = tmp_path / "faults.toml"
    cfg.write_text(FAULTS)
    summary = run_sweep(cfg, tmp_path / "out", progress=False)
    runs = {
        (c["training"], c["sparsity"]): (s, e, m) for s, e, m, c in table(tmp_path / "out").values()
    }
    status, error, metrics = runs[("plain", 0.99999)]
    assert status == "failed" and "min_per_layer" in error and metrics is None
    status, error, metrics = runs[("plain", 0.5)]
    assert status == "diverged" and "diverged" in error and metrics is None  # never accuracy 0
    for p in (0.5, 0.99999):
        status, error, metrics = runs[("exploding", p)]
        assert status == "diverged" and error.startswith("dense model diverged")
    dense = table(tmp_path / "out", "dense")
    (bad,) = [h for h, d in dense.items() if d[0] != "ok"]
    assert dense[bad][0] == "diverged"
    assert not (tmp_path / "out" / "dense" / bad).exists()  # no checkpoint of a diverged model
    assert (summary.ok, summary.failed, summary.diverged) == (0, 1, 3)
    assert len(summary.failures) == 4
    page = build_report(tmp_path / "out").read_text()
    assert "0 ok, 1 failed, 3 diverged" in page and "Failures and divergences (5)" in page
    assert "min_per_layer" in page and "dense model diverged" in page


def test_nonfinite_metrics_mean_diverged():
    def nan_after_prune(job):
        return {"after_prune": {"loss": math.nan, "accuracy": 10.0}}

    result = work._guard(nan_after_prune, {})
    assert result["status"] == "diverged" and "after_prune.loss" in result["error"]

    def raises(job):
        raise RuntimeError("boom")

    result = work._guard(raises, {})
    assert result["status"] == "failed" and result["error"] == "RuntimeError: boom"


def test_partial_checkpoint_is_never_used(reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    (dense_hash,) = table(out, "dense")
    ckpt = out / "dense" / dense_hash
    # a kill during the atomic write leaves a hidden temporary directory, never `ckpt`
    shutil.copytree(ckpt, out / "dense" / f".{dense_hash}.abc123.tmp")
    shutil.rmtree(ckpt)
    (out / "dense" / dense_hash).mkdir()  # a stray half directory without meta.json
    (out / "dense" / dense_hash / "model.safetensors").write_bytes(b"partial")
    assert work.dense_ready(ckpt, dense_hash) is None
    with ResultStore(out / "results.sqlite") as store:
        store.conn.execute("DELETE FROM runs WHERE rowid = (SELECT MIN(rowid) FROM runs)")
    summary = run_sweep(TINY, out, progress=False)
    assert summary.dense_trained == 1 and summary.runs_executed == 1
    assert not list((out / "dense").glob(".*.tmp"))
    assert table(out) == table(reference)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_worker_processes_give_the_same_table(reference, tmp_path):
    out = tmp_path / "pool"
    summary = run_sweep(TINY, out, workers=2, progress=False)
    assert summary.ok == 4
    ours, ref = table(out), table(reference)
    assert set(ours) == set(ref)
    for h, (status, _, metrics, _) in ours.items():
        # one thread per worker instead of two: float32 sums may differ in the last bits,
        # which one fine-tuning epoch amplifies to ~1e-7 relative
        ref_metrics = ref[h][2]
        assert status == ref[h][0]
        assert metrics["nnz"] == ref_metrics["nnz"]
        for stage, rel in (("after_prune", 1e-5), ("after_finetune", 1e-4)):
            assert metrics[stage]["loss"] == pytest.approx(ref_metrics[stage]["loss"], rel=rel)


PINNED = """
name = "pinned"
threads = 1
models = ["lenet300"]
seeds = [0, 1]
sparsities = [0.9, "p_safe"]
[data]
name = "digits"
[train]
epochs = 1
[finetune]
epochs = 1
[[criteria]]
name = "magnitude"
[[criteria]]
name = "taylor2"
hparams = { curvature = "empirical-fisher" }
[scoring]
samples = 128
[predictions]
methods = ["cosine"]
"""


def test_pinned_threads_give_identical_tables_whatever_the_workers(tmp_path):
    """``threads`` pins every job's torch threads: workers=1 and workers=2 agree exactly.

    Unpinned, the in-process run uses every core and each of two workers half of them,
    and float32 sums in another order differ in the last bits (see the test above).
    """
    cfg = tmp_path / "pinned.toml"
    cfg.write_text(PINNED)
    before = torch.get_num_threads()
    run_sweep(cfg, tmp_path / "one", workers=1, progress=False)
    assert torch.get_num_threads() == before  # the in-process setting is restored
    run_sweep(cfg, tmp_path / "two", workers=2, progress=False)
    for name in ("runs", "dense", "predictions"):
        one, two = table(tmp_path / "one", name), table(tmp_path / "two", name)
        assert one == two and len(one) == {"runs": 8, "dense": 2, "predictions": 2}[name]
    assert all(status == "ok" for status, *_ in table(tmp_path / "one").values())
    with ResultStore(tmp_path / "two" / "results.sqlite") as store:
        assert store.get_meta("threads") == [{"pinned": 1, "threads": 1, "workers": 2}]
        assert store.get_meta("config")["threads"] == 1


def test_threads_are_part_of_the_identity_only_when_pinned(tmp_path):
    unpinned = PINNED.replace("threads = 1\n", "")
    a, b = (load_config_text(tmp_path, t) for t in (unpinned, PINNED))
    assert "threads" not in a.to_dict() and b.to_dict()["threads"] == 1
    assert a.hash != b.hash
    runs_a, runs_b = expand(a), expand(b)
    assert "threads" not in runs_a[0].identity() and runs_b[0].identity()["threads"] == 1
    assert {r.hash for r in runs_a}.isdisjoint(r.hash for r in runs_b)
    assert runs_a[0].dense.hash != runs_b[0].dense.hash  # dense/ is shared under force
    with pytest.raises(PrunelabError, match="threads: must be >= 1"):
        load_config_text(tmp_path, PINNED.replace("threads = 1", "threads = 0"))


def load_config_text(tmp_path: Path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(path)


LOMP = """
name = "lomp"
models = ["lenet300"]
seeds = [3]
sparsities = [0.8]
[data]
name = "digits"
[train]
epochs = 1
[[procedures]]
kind = "lomp"
l1 = 0.001
[scoring]
samples = 64
"""


def test_sweep_lomp_equals_the_procedure(tmp_path):
    """LOMP in a sweep equals :func:`prunelab.procedures.lomp`.

    The sweep trains LOMP's ℓ1 model once as a shared dense checkpoint and then prunes it
    by one-shot magnitude; the numbers must be exactly those of the procedure.
    """
    cfg = tmp_path / "lomp.toml"
    cfg.write_text(LOMP)
    run_sweep(cfg, tmp_path / "out", progress=False)
    ((status, _, metrics, config),) = table(tmp_path / "out").values()
    assert status == "ok" and config["train"]["l1"] == 0.001

    data = datasets.load("digits", seed=0)
    torch.manual_seed(3)
    model = models.build("lenet300", data)
    train = TrainConfig(**{**config["train"], "l1": 0.0})
    mask, record = lomp(model, data, 0.8, train, l1=0.001, score_samples=64)
    assert metrics["nnz"] == mask.nnz
    assert metrics["after_prune"] == record.after_prune
    assert metrics["dense"] == record.dense


def test_eval_train_false_skips_only_the_training_split_metrics(reference, tmp_path):
    text = TINY.read_text()
    assert "eval_train" not in load_config_text(tmp_path, text).to_dict()  # hash unchanged
    cfg = tmp_path / "no_train_eval.toml"
    cfg.write_text(
        text.replace('models = ["lenet300"]', 'eval_train = false\nmodels = ["lenet300"]')
    )
    assert load_config(cfg).to_dict()["eval_train"] is False
    run_sweep(cfg, tmp_path / "out", progress=False)
    got, ref = table(tmp_path / "out"), table(reference)
    assert got.keys() == ref.keys()  # the same runs: the mask does not depend on it
    for h, (status, _, metrics, _) in got.items():
        assert status == "ok"
        for stage in ("dense", "after_prune", "after_finetune"):
            assert "train_loss" not in metrics[stage] and "train_loss" in ref[h][2][stage]
            assert metrics[stage]["loss"] == ref[h][2][stage]["loss"]
    with pytest.raises(PrunelabError, match="eval_train"):
        load_config_text(tmp_path, text.replace("seeds", 'eval_train = "no"\nseeds'))


def test_criterion_free_procedures_run_once_whatever_the_criteria(tmp_path):
    text = LOMP.replace('kind = "lomp"\nl1 = 0.001', 'kind = "rare-gems"') + (
        '[[procedures]]\nkind = "one-shot"\n[[criteria]]\nname = "magnitude"\n'
        '[[criteria]]\nname = "snip"\n'
    )
    runs = expand(load_config_text(tmp_path, text))
    kinds = sorted((r.procedure["kind"], r.criterion) for r in runs)
    assert kinds == [("one-shot", "magnitude"), ("one-shot", "snip"), ("rare-gems", "magnitude")]
