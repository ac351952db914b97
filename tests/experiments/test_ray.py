"""Sweeps on Ray: local tables, a killed worker retried, a killed driver resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from prunelab.errors import PrunelabError
from prunelab.experiments.store import ResultStore
from prunelab.experiments.sweep import executors
from prunelab.experiments.sweep.runner import run_sweep

pytest.importorskip("ray")  # `make test` installs the [ray] extra; a bare checkout skips

ROOT = Path(__file__).resolve().parents[2]
#: the tiny sweep with threads pinned, so local and Ray workers compute the same floats
PINNED = (
    (ROOT / "experiments" / "tiny.toml")
    .read_text()
    .replace('name = "tiny"', 'name = "tiny-pinned"\nthreads = 1', 1)
)
PINNED = PINNED.replace("sparsities = [0.5, 0.9]", "sparsities = [0.3, 0.5, 0.7, 0.9]", 1)
TABLES = {"runs": "metrics", "dense": "metrics", "predictions": "result"}


def tables(out: Path) -> dict:
    """Every store table as ``hash -> (status, error, payload)`` (timings left out)."""
    found = {}
    with ResultStore(out / "results.sqlite") as store:
        for name, payload in TABLES.items():
            rows = store.rows(name)
            assert len(rows) == len({r["hash"] for r in rows})  # never a duplicate row
            found[name] = {r["hash"]: (r["status"], r["error"], untimed(r[payload])) for r in rows}
    return found


def untimed(payload):
    """A stored payload without its wall-clock ``seconds`` (a prediction's per-method times)."""
    if isinstance(payload, dict):
        return {k: v for k, v in payload.items() if k != "seconds"}
    return payload


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ray") / "pinned.toml"
    path.write_text(PINNED)
    return path


@pytest.fixture(scope="module")
def local(config, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ray") / "local"
    run_sweep(config, out, workers=2, progress=False)
    return tables(out)


def _ray_workers() -> list[int]:
    """PIDs of Ray worker processes that are running one of our tasks."""
    res = subprocess.run(["pgrep", "-f", "ray::_in_worker"], capture_output=True, text=True)
    return [int(p) for p in res.stdout.split()]


@pytest.mark.timeout(600)
def test_ray_gives_the_local_table_even_when_a_worker_is_killed(config, local, tmp_path):
    killed: list[int] = []

    def kill_one() -> None:  # SIGKILL the first worker seen running a task
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            for pid in _ray_workers():
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
                except ProcessLookupError:
                    continue
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    run_sweep(config, tmp_path / "ray", workers=2, progress=False, executor="ray")
    killer.join(1)
    assert killed, "no Ray worker was seen running a task"
    assert tables(tmp_path / "ray") == local  # same rows, same numbers, none twice


@pytest.mark.timeout(600)
def test_killed_ray_driver_resumes_to_the_same_table(config, local, tmp_path):
    out = tmp_path / "ray"
    code = (
        "import sys\nfrom prunelab.experiments.sweep.runner import run_sweep\n"
        "run_sweep(sys.argv[1], sys.argv[2], workers=2, progress=False, executor='ray')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code, str(config), str(out)], env=env,
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline:  # wait for the first stored run, then kill the driver
        if (out / "results.sqlite").exists():
            with ResultStore(out / "results.sqlite") as store:
                if store.rows("runs"):
                    break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_sweep(config, out, workers=2, progress=False, executor="ray")
    assert tables(out) == local


def test_bad_executor_and_unreachable_address(config, tmp_path, monkeypatch):
    with pytest.raises(PrunelabError, match="unknown executor 'slurm'"):
        run_sweep(config, tmp_path / "a", executor="slurm")
    with pytest.raises(PrunelabError, match="address only applies"):
        run_sweep(config, tmp_path / "b", address="127.0.0.1:1")
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 20)
    start = time.time()
    with pytest.raises(PrunelabError, match="cannot reach the Ray cluster"):
        run_sweep(config, tmp_path / "c", executor="ray", address="127.0.0.1:1")
    assert time.time() - start < 60
