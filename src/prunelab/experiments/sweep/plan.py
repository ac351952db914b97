"""What a sweep still has to do, and what it did: :class:`SweepPlan` and :class:`SweepSummary`.

The plan compares the grid with the store: runs already recorded are skipped; each
dense model is trained only if a pending run or a missing prediction needs it and no
complete checkpoint exists; predictions are made once per trained dense model. As jobs
finish it records them (one transaction each) and releases the jobs they unblock.
A dense model that failed or diverged fails its pending runs with its message.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prunelab._hashing import stable_hash
from prunelab.experiments.store import ResultStore
from prunelab.experiments.sweep.config import SYMBOLIC, SweepConfig
from prunelab.experiments.sweep.grid import (
    PredictionSpec,
    RunSpec,
    dense_specs,
    expand,
    prediction_settings,
    study_specs,
)
from prunelab.experiments.sweep.work import dense_ready

log = logging.getLogger(__name__)
Job = tuple[str, str, dict]
#: keys of a dense checkpoint's meta.json that make its row in the ``dense`` table
DENSE_METRICS = ("dense", "history", "num_weights", "weights")

#: symbolic sparsity -> path of its value in the prediction result (method key first)
SYMBOLIC_FIELD = {
    "p_star": ("cosine", "p_star"),
    "p_safe": ("cosine", "p_safe"),
    "p_safe_weights": ("cosine", "by_kurtosis_tensors", "weights", "p_safe"),
    "p_safe_weights_bias": ("cosine", "by_kurtosis_tensors", "weights+bias", "p_safe"),
    "gw": ("gaussian-width", "p_hat"),
    "actual": ("actual", "p_actual"),
}
assert set(SYMBOLIC_FIELD) == set(SYMBOLIC)


@dataclass
class SweepSummary:
    """The outcome of :func:`~prunelab.experiments.runner.run_sweep`.

    Attributes:
        out: The sweep directory.
        name: Config name.
        config_hash: Config identity.
        runs_total: Grid points.
        runs_skipped: Already in the store when the sweep started.
        runs_executed: Recorded by this call.
        ok: Runs in the store with status ``ok`` (all calls together).
        failed: Runs with status ``failed``.
        diverged: Runs with status ``diverged``.
        dense_trained: Dense models trained by this call.
        dense_reused: Dense checkpoints found complete and reused.
        predictions: Prediction rows written by this call.
        studies: Study rows written by this call.
        seconds: Wall time of this call.
        failures: ``{"hash", "label", "status", "error"}`` of every failed / diverged run.
    """

    out: Path
    name: str
    config_hash: str
    runs_total: int = 0
    runs_skipped: int = 0
    runs_executed: int = 0
    ok: int = 0
    failed: int = 0
    diverged: int = 0
    dense_trained: int = 0
    dense_reused: int = 0
    predictions: int = 0
    studies: int = 0
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {**asdict(self), "out": str(self.out)}


class SweepPlan:
    """The jobs a sweep still needs, and the bookkeeping of finished ones."""

    def __init__(self, config: SweepConfig, dense_dir: Path, store: ResultStore) -> None:
        self.config, self.dense_dir, self.store = config, dense_dir, store
        self.tick: Callable[[int], object] = lambda n=1: None
        self.runs = expand(config)
        done = store.hashes("runs")
        self.pending = [r for r in self.runs if r.hash not in done]
        self.pending_by_hash = {r.hash: r for r in self.pending}
        self.by_dense: dict[str, list[RunSpec]] = defaultdict(list)
        for run in self.pending:
            if run.dense is not None:
                self.by_dense[run.dense.hash].append(run)
        self.denses = {d.hash: d for d in dense_specs(self.runs)}
        self.settings = prediction_settings(config)
        studies_done = store.hashes("studies")
        self.studies = [s for s in study_specs(config) if stable_hash(s) not in studies_done]
        self.counts = {"trained": 0, "reused": 0, "predictions": 0, "studies": 0, "runs": 0}
        self.session = {"ok": 0, "failed": 0, "diverged": 0}
        rows = {r["hash"]: r for r in store.rows("dense")}
        self.failed_dense, self.ready, self.to_train = {}, [], []
        for h in self.denses:
            row = rows.get(h)
            if row is not None and row["status"] != "ok":
                self.failed_dense[h] = row
                continue
            meta = dense_ready(self.dense_dir / h, h)
            if meta is not None:
                self.counts["reused"] += 1
                if row is None:  # killed between the checkpoint and its row
                    payload = {k: meta.get(k) for k in DENSE_METRICS}
                    result = {"status": "ok", "error": None, "seconds": None, "payload": payload}
                    self._record_dense(h, result)
                self.ready.append(h)
            elif self.by_dense[h] or self._prediction_missing(h):
                self.to_train.append(h)
        n_pred = sum(self._prediction_missing(h) for h in self.ready + self.to_train)
        self.total_jobs = len(self.to_train) + n_pred + len(self.pending) + len(self.studies)

    # ------------------------------------------------------------------ helpers
    def _prediction(self, h: str) -> PredictionSpec | None:
        return PredictionSpec(self.denses[h], self.settings) if self.settings else None

    def _prediction_missing(self, h: str) -> bool:
        pred = self._prediction(h)
        return pred is not None and self.store.get("predictions", pred.hash) is None

    def _record_dense(self, h: str, result: dict) -> None:
        self.store.record(
            "dense",
            hash=h,
            config=self.denses[h].identity(),
            status=result["status"],
            error=result["error"],
            metrics=result["payload"],
            seconds=result["seconds"],
        )

    def _record_run(self, run: RunSpec, status: str, error, metrics, seconds) -> None:
        dense = run.dense
        self.store.record(
            "runs",
            hash=run.hash,
            dense_hash=dense.hash if dense else None,
            config=run.identity(),
            status=status,
            error=error,
            metrics=metrics,
            seconds=seconds,
        )
        self.counts["runs"] += 1
        self.session[status] += 1

    def _run_job(self, run: RunSpec, sparsity: float) -> Job:
        dense = run.dense
        job = {
            "run": run.identity(),
            "data_dir": run.data.data_dir,
            "dense_path": str(self.dense_dir / dense.hash) if dense else None,
            "sparsity": sparsity,
            "eval_train": self.config.eval_train,
        }
        return ("run", run.hash, job)

    def _fail_runs(self, runs: list[RunSpec], status: str, error: str) -> None:
        for run in runs:
            self._record_run(run, status, error, None, None)
            self.tick(1)

    def _symbolic_jobs(self, h: str) -> Iterator[Job]:
        pred = self._prediction(h)
        row = self.store.get("predictions", pred.hash) if pred else None
        result = (row or {}).get("result") or {}
        for run in self.by_dense[h]:
            if not isinstance(run.sparsity, str):
                continue
            key, *path = SYMBOLIC_FIELD[run.sparsity]
            value = result.get(key)
            for name in path:
                value = value.get(name) if isinstance(value, dict) else None
            if value is None:
                why = (result.get("errors") or {}).get(key) or (row or {}).get("error")
                self._fail_runs([run], "failed", f"prediction {key!r} unavailable: {why}")
            else:
                yield self._run_job(run, float(value))

    def _after_dense(self, h: str) -> Iterator[Job]:
        for run in self.by_dense[h]:
            if not isinstance(run.sparsity, str):
                yield self._run_job(run, run.sparsity)
        if self._prediction_missing(h):
            dense = self.denses[h]
            yield (
                "prediction",
                h,
                {
                    "dense_path": str(self.dense_dir / h),
                    "data": dense.data.identity(),
                    "data_dir": dense.data.data_dir,
                    "prunable": dense.prunable,
                    "settings": self.settings,
                    "seed": dense.train["seed"],
                },
            )
        else:
            yield from self._symbolic_jobs(h)

    # ------------------------------------------------------------------ protocol
    def initial_jobs(self) -> Iterator[Job]:
        """Jobs runnable now (failed dense models fail their runs without a job)."""
        for h, row in self.failed_dense.items():
            self._fail_runs(self.by_dense[h], row["status"], f"dense model failed: {row['error']}")
        for h in self.ready:
            yield from self._after_dense(h)
        for h in self.to_train:
            dense = self.denses[h]
            job = {"spec": dense.identity(), "hash": h, "path": str(self.dense_dir / h)}
            yield ("dense", h, {**job, "data_dir": dense.data.data_dir})
        for run in self.pending:
            if run.dense is None:
                yield self._run_job(run, float(run.sparsity))
        for spec in self.studies:
            yield ("study", stable_hash(spec), spec)

    def complete(self, kind: str, key: str, result: dict) -> list[Job]:
        """Record a finished job; return the jobs it unblocks."""
        if kind == "run":
            run = self.pending_by_hash[key]
            p = result["payload"]
            self._record_run(run, result["status"], result["error"], p, result["seconds"])
            return []
        if kind == "dense":
            self._record_dense(key, result)
            if result["status"] == "ok":
                self.counts["trained"] += 1
                return list(self._after_dense(key))
            msg = f"dense model {result['status']}: {result['error']}"
            self._fail_runs(self.by_dense[key], result["status"], msg)
            return []
        if kind == "prediction":
            pred = self._prediction(key)
            self.store.record(
                "predictions",
                hash=pred.hash,
                dense_hash=key,
                config=pred.settings,
                status=result["status"],
                error=result["error"],
                result=result["payload"],
                seconds=result["seconds"],
            )
            self.counts["predictions"] += 1
            return list(self._symbolic_jobs(key))
        spec = next(s for s in self.studies if stable_hash(s) == key)
        self.store.record(
            "studies",
            hash=key,
            kind=spec["kind"],
            config=spec,
            status=result["status"],
            error=result["error"],
            result=result["payload"],
            seconds=result["seconds"],
        )
        self.counts["studies"] += 1
        return []

    def postfix(self) -> dict:
        """Progress-bar counters of this session."""
        return dict(self.session)

    def summary(self, out: Path, seconds: float) -> SweepSummary:
        """The :class:`SweepSummary` after the sweep."""
        counts = self.store.counts("runs")
        labels = {r.hash: r.label for r in self.runs}
        failures = [
            {
                "hash": r["hash"],
                "label": labels.get(r["hash"], r["hash"]),
                "status": r["status"],
                "error": r["error"],
            }
            for r in self.store.rows("runs", "WHERE status != 'ok'")
        ]
        return SweepSummary(
            out=out,
            name=self.config.name,
            config_hash=self.config.hash,
            runs_total=len(self.runs),
            runs_skipped=len(self.runs) - len(self.pending),
            runs_executed=self.counts["runs"],
            ok=counts["ok"],
            failed=counts["failed"],
            diverged=counts["diverged"],
            dense_trained=self.counts["trained"],
            dense_reused=self.counts["reused"],
            predictions=self.counts["predictions"],
            studies=self.counts["studies"],
            seconds=seconds,
            failures=failures,
        )
