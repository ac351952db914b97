"""Run a sweep: train each dense model once, predict, prune every grid point, store it all.

Layout of a sweep directory ``OUT``::

    OUT/config.toml        the config text the directory was created for
    OUT/sweep.json         its name and config hash (identity of the directory)
    OUT/results.sqlite     the results store (see :mod:`prunelab.experiments.store`)
    OUT/dense/<hash>/      trained dense checkpoints (content-addressed, written atomically)
    OUT/report/            written by :func:`prunelab.experiments.report.build_report`

Resuming: every result is committed in its own transaction and a run whose hash is in
the store is skipped, so a sweep killed at any moment (Ctrl-C, ``kill -9``) re-run with
the same config finishes the missing runs only. Dense checkpoints are moved into place
only once complete, so a kill mid-write leaves a hidden temporary directory (removed at
the next start), never a usable-looking partial checkpoint. A lock file keeps two sweeps
from writing the same ``OUT`` at once.

Workers: ``workers <= 1`` runs every job in this process; ``workers = N > 1`` runs jobs in
``N`` spawned processes (``concurrent.futures.ProcessPoolExecutor``), the cores shared
between them (``cores // N`` torch threads each), unless the config pins ``threads``:
then every job runs with exactly that many threads, in a worker or in this process (whose
own setting is restored afterwards), so ``workers`` no longer changes any number. The
thread setting of each call is recorded in the store (meta ``threads``). Workers only
compute and return plain dicts; **only this process writes the store**, so SQLite never
sees two writers. Jobs are scheduled as their inputs become
ready (runs before predictions before dense training), so results appear early.
"""

from __future__ import annotations

import fcntl
import heapq
import itertools
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm import tqdm

from prunelab._io import atomic_write_json, atomic_write_text
from prunelab._version import __version__
from prunelab.device import resolve_device
from prunelab.errors import PrunelabError
from prunelab.experiments.files import (
    CONFIG_FILE,
    DENSE_DIR,
    LOCK_FILE,
    REPORT_DIR,
    STORE_FILE,
    SWEEP_FILE,
)
from prunelab.experiments.store import ResultStore
from prunelab.experiments.sweep.config import SweepConfig
from prunelab.experiments.sweep.executors import check_executor, make_executor, worker_threads
from prunelab.experiments.sweep.load import load_config
from prunelab.experiments.sweep.plan import SweepPlan, SweepSummary

log = logging.getLogger(__name__)

#: job priorities: lower runs first (results early, dense training last)
PRIORITY = {"run": 0, "prediction": 1, "study": 2, "dense": 3}


@contextmanager
def sweep_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``OUT/.lock`` (released even by ``kill -9``)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PrunelabError(f"another sweep is running in {str(out)!r}; wait for it") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _start_new_store(out: Path) -> None:
    """``force``: drop the old results and report; content-addressed ``dense/`` is kept."""
    for name in (STORE_FILE, STORE_FILE + "-wal", STORE_FILE + "-shm", SWEEP_FILE, CONFIG_FILE):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / REPORT_DIR, ignore_errors=True)


def prepare_out(out: Path, config: SweepConfig, text: str, force: bool) -> None:
    """Make ``out`` the directory of ``config``, refusing one made for another config.

    Raises:
        PrunelabError: ``out`` is a file, or holds another sweep / other files, and
            ``force`` is False.
    """
    if out.exists() and not out.is_dir():
        raise PrunelabError(f"out {str(out)!r} is a file; choose a directory")
    sweep_file = out / SWEEP_FILE
    existing = None
    if sweep_file.is_file():
        try:
            existing = json.loads(sweep_file.read_text()).get("config_hash")
        except (OSError, json.JSONDecodeError, AttributeError):
            existing = "(unreadable)"
    if existing != config.hash:
        others = [p.name for p in out.iterdir() if p.name != LOCK_FILE] if out.exists() else []
        if existing is not None or [n for n in others if n != DENSE_DIR]:
            if not force:
                what = f"sweep with config hash {existing}" if existing else "other files"
                raise PrunelabError(
                    f"{str(out)!r} holds a {what}, not this config ({config.name!r}, hash "
                    f"{config.hash}); choose another out or pass force=True to start a new store"
                )
            log.warning("force: starting a new results store in %s", out)
            _start_new_store(out)
    out.mkdir(parents=True, exist_ok=True)
    # sweep.json first: a crash before config.toml is written leaves a directory that is
    # still recognised as this config's (config.toml is then written on the next start)
    if existing != config.hash:
        atomic_write_json(
            sweep_file,
            {"name": config.name, "config_hash": config.hash, "prunelab_version": __version__},
        )
    if not (out / CONFIG_FILE).is_file() or existing != config.hash:
        atomic_write_text(out / CONFIG_FILE, text)


def _clean_temporaries(dense_dir: Path) -> None:
    """Remove hidden temporary directories that a killed checkpoint write left behind."""
    if dense_dir.is_dir():
        for p in dense_dir.iterdir():
            if p.name.startswith(".") and p.name.endswith((".tmp", ".old")):
                shutil.rmtree(p, ignore_errors=True)


def effective_threads(workers: int, threads: int | None) -> int:
    """The torch thread count every job of this call runs with."""
    if threads is not None:
        return threads
    return worker_threads(workers) if workers > 1 else torch.get_num_threads()


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(threads)`` (``None``: unchanged), then restore."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _record_threads(store: ResultStore, workers: int, threads: int | None) -> None:
    """Store this call's thread setting; warn when an unpinned sweep resumes with another."""
    now = {"pinned": threads, "threads": effective_threads(workers, threads), "workers": workers}
    history = store.get_meta("threads") or []
    if threads is None and history and history[-1]["threads"] != now["threads"]:
        log.warning(
            "this sweep's earlier results were computed with %d torch threads, these with %d: "
            "float32 results differ between the two; pin `threads` in the config to publish",
            history[-1]["threads"],
            now["threads"],
        )
    if not history or history[-1] != now:
        store.set_meta("threads", [*history, now])


def run_sweep(
    config_path: str | Path,
    out: str | Path | None = None,
    workers: int = 1,
    force: bool = False,
    progress: bool = True,
    executor: str = "local",
    address: str | None = None,
    device: str = "cpu",
) -> SweepSummary:
    """Run (or resume) the sweep of a TOML config.

    Args:
        config_path: The TOML file (see :mod:`prunelab.experiments.sweep.config`).
        out: Sweep directory (default ``runs/<config name>``).
        workers: ``<= 1``: run in this process; ``N``: ``N`` spawned worker processes.
        force: If ``out`` holds another config's sweep, start a new store there.
        progress: Show a tqdm progress bar on stderr.
        executor: ``local`` (this process or a process pool) or ``ray`` (Ray tasks; see
            :mod:`prunelab.experiments.sweep.executors`).
        address: Ray cluster to join (``None``: start a local one with ``workers`` CPUs).
        device: Where every job's model lives (``cpu``, ``cuda``, ``auto``); not part of
            any run's identity.

    Returns:
        A :class:`~prunelab.experiments.sweep.plan.SweepSummary`.

    Raises:
        PrunelabError: Invalid config, a foreign ``out`` without ``force``, another sweep
            running in ``out``, or a worker process that died.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise PrunelabError(f"workers must be an integer >= 0, got {workers!r}")
    check_executor(executor, address)
    resolve_device(device)  # a bad device fails before anything is written
    config = load_config(config_path)
    text = Path(config_path).read_text(encoding="utf-8")
    out = Path(out) if out is not None else Path("runs") / config.name
    start = time.perf_counter()
    with sweep_lock(out):
        prepare_out(out, config, text, force)
        _clean_temporaries(out / DENSE_DIR)
        with ResultStore(out / STORE_FILE) as store:
            store.set_meta("config_hash", config.hash)
            store.set_meta("config", config.to_dict())
            _record_threads(store, workers, config.threads)
            plan = SweepPlan(config, out / DENSE_DIR, store)
            with torch_threads(config.threads if workers <= 1 else None):
                _execute(plan, workers, progress, executor, address, device)
            return plan.summary(out, time.perf_counter() - start)


def _execute(
    plan: SweepPlan,
    workers: int,
    progress: bool,
    executor_name: str,
    address: str | None,
    device: str = "cpu",
) -> None:
    heap: list = []
    seq = itertools.count()
    bar = tqdm(
        total=plan.total_jobs,
        desc=plan.config.name,
        unit="job",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )

    def push(kind: str, key: str, job: dict) -> None:
        heapq.heappush(heap, (PRIORITY[kind], next(seq), (kind, key), job))

    plan.tick = lambda n=1: bar.update(n)
    for kind, key, job in plan.initial_jobs():
        push(kind, key, job)
    executor = make_executor(executor_name, workers, plan.config.threads, address)
    try:
        while heap or executor.busy():
            while heap and executor.has_room():
                _, order, (kind, key), job = heapq.heappop(heap)
                executor.submit((kind, order, key), {**job, "device": device})
            (kind, _, key), result = executor.next_result()
            for follow in plan.complete(kind, key, result):
                push(*follow)
            bar.update(1)
            bar.set_postfix(plan.postfix())
    except BaseException:
        executor.close(cancel=True)
        raise
    finally:
        bar.close()
    executor.close()
