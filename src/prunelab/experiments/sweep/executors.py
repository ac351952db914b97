"""Where a sweep's jobs run: this process, a local process pool, or a Ray cluster.

Every executor has the same small interface (``has_room``, ``submit``, ``busy``,
``next_result``, ``close``), so the runner's loop — priorities, dependencies (a prune
run is submitted only after its dense model is trained), and the store, written by the
driver alone — is the same for all of them.

**Ray** (``executor = "ray"``, the optional extra ``prunelab[ray]``): each job is a Ray
task with ``max_retries``, so a worker process that dies mid-task (killed, out of
memory) is retried by Ray and its result still reaches the driver exactly once; the
driver writes it. ``address=None`` starts a local Ray instance with ``workers`` CPUs;
an address joins an existing cluster (within :data:`CONNECT_TIMEOUT` seconds, or a
one-line error). Dense checkpoints are written to the sweep folder's ``dense/``, so on a
multi-machine cluster that folder must be on a file system every node sees (NFS, a
shared volume): results travel back through Ray's object store, checkpoints do not,
because a prune run reloads its dense model by path like every other prunelab command.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from prunelab.errors import PrunelabError
from prunelab.experiments.sweep import work

#: job kind -> the worker function
JOBS: dict[str, Callable[[dict], dict]] = {
    "dense": work.train_dense,
    "prediction": work.predict,
    "run": work.prune,
    "study": work.study,
}
EXECUTORS = ("local", "ray")
#: seconds to wait for ``ray.init(address=...)`` before giving up
CONNECT_TIMEOUT = 30
#: times Ray re-runs a task whose worker process died
MAX_RETRIES = 3


def worker_threads(workers: int) -> int:
    """Torch threads of each of ``workers`` processes when the config does not pin them."""
    return max(1, (os.cpu_count() or 1) // workers)


class LocalExecutor:
    """Runs jobs in this process (``workers <= 1``) or in a spawned process pool."""

    name = "local"

    def __init__(self, workers: int, threads: int | None = None) -> None:
        self.limit = max(1, workers)
        self.pool = None
        self.inflight: dict = {}
        self.done: list = []
        if workers > 1:
            threads = threads or worker_threads(workers)
            self.pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=work.init_worker,
                initargs=(threads,),
            )

    def has_room(self) -> bool:
        """Whether another job may be submitted now."""
        return len(self.inflight) + len(self.done) < self.limit

    def busy(self) -> bool:
        """Whether jobs are submitted and not yet collected."""
        return bool(self.inflight or self.done)

    def submit(self, tag: tuple, job: dict) -> None:
        """Start ``job`` (its kind is ``tag[0]``)."""
        fn = JOBS[tag[0]]
        if self.pool is None:
            self.done.append((tag, fn(job)))
        else:
            self.inflight[self.pool.submit(fn, job)] = tag

    def next_result(self) -> tuple[tuple, dict]:
        """The next finished ``(tag, result)``; the oldest first among those ready."""
        if self.done:
            return self.done.pop(0)
        finished, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
        future = min(finished, key=lambda f: self.inflight[f][1])  # oldest first
        tag = self.inflight.pop(future)
        try:
            return tag, future.result()
        except BrokenProcessPool:
            raise PrunelabError(
                "a worker process died (out of memory?); finished results are saved: run the "
                "same sweep again to resume"
            ) from None

    def close(self, cancel: bool = False) -> None:
        """Release the workers (``cancel``: stop running jobs, their results are not needed)."""
        if self.pool is None:
            return
        if cancel:
            # results of running jobs are not needed (they are recomputed on resume), so
            # stop the workers instead of waiting for them
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


class RayExecutor:
    """Runs every job as a Ray task (retried when its worker process dies)."""

    name = "ray"

    def __init__(self, workers: int, threads: int | None, address: str | None) -> None:
        ray = _import_ray()
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            _init_ray(ray, workers, address)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.limit = max(1, workers if address is None else cpus)
        self.threads = threads or worker_threads(self.limit)
        self.remote = {
            kind: ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_in_worker) for kind in JOBS
        }
        self.inflight: dict = {}

    def has_room(self) -> bool:
        """Whether another job may be submitted now."""
        return len(self.inflight) < self.limit

    def busy(self) -> bool:
        """Whether jobs are submitted and not yet collected."""
        return bool(self.inflight)

    def submit(self, tag: tuple, job: dict) -> None:
        """Start ``job`` (its kind is ``tag[0]``)."""
        ref = self.remote[tag[0]].remote(tag[0], job, self.threads)
        self.inflight[ref] = tag

    def next_result(self) -> tuple[tuple, dict]:
        """The next finished ``(tag, result)``; the oldest first among those ready."""
        ready, _ = self.ray.wait(list(self.inflight), num_returns=1)
        ref = min(ready, key=lambda r: self.inflight[r][1])
        tag = self.inflight.pop(ref)
        try:
            return tag, self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # retries exhausted
            raise PrunelabError(
                f"a Ray task failed {MAX_RETRIES + 1} times ({type(exc).__name__}); finished "
                "results are saved: run the same sweep again to resume"
            ) from None

    def close(self, cancel: bool = False) -> None:
        """Release the workers (``cancel``: stop running jobs, their results are not needed)."""
        if cancel:
            for ref in self.inflight:
                self.ray.cancel(ref, force=True)
        if self.started:
            self.ray.shutdown()


def _in_worker(kind: str, job: dict, threads: int) -> dict:
    """A Ray task: the same worker function a local pool would run, same thread count."""
    work.init_worker(threads)
    return JOBS[kind](job)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise PrunelabError(
            "executor 'ray' needs the optional extra: pip install -e '.[ray]'"
        ) from None
    return ray


def _init_ray(ray, workers: int, address: str | None) -> None:
    """Start a local Ray (``workers`` CPUs) or join ``address``, with a bounded wait."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, private instance
    options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address is None:
        ray.init(num_cpus=max(1, workers), **options)
        return
    import threading

    failure: list[BaseException] = []

    def connect() -> None:
        try:
            ray.init(address=address, **options)
        except BaseException as exc:  # reported below, in one line
            failure.append(exc)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT)
    if thread.is_alive() or failure or not ray.is_initialized():
        why = f"{type(failure[0]).__name__}" if failure else f"no answer in {CONNECT_TIMEOUT} s"
        raise PrunelabError(f"cannot reach the Ray cluster at address {address!r} ({why})")


def check_executor(executor: str, address: str | None) -> None:
    """Refuse an unknown executor, or an address without Ray, in one line."""
    if executor not in EXECUTORS:
        raise PrunelabError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if address is not None and executor != "ray":
        raise PrunelabError("address only applies with executor 'ray'")
    if executor == "ray":
        _import_ray()


def make_executor(name: str, workers: int, threads: int | None, address: str | None):
    """The executor called ``name`` (see :data:`EXECUTORS`)."""
    check_executor(name, address)
    if name == "ray":
        return RayExecutor(max(1, workers), threads, address)
    return LocalExecutor(workers, threads)
