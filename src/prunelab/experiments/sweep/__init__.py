"""Sweeps: a TOML grid, expanded, planned, run by workers into one SQLite store.

``config`` (the typed schema) → ``load`` (TOML → validated config) → ``grid`` (the run
specs and their hashes) → ``plan`` (what is left to do, in dependency order) → ``work``
(what a worker runs: the job layer) → ``runner`` (processes, locking, resume).
"""

from prunelab.experiments.sweep.load import load_config, parse_config
from prunelab.experiments.sweep.runner import run_sweep

__all__ = ["load_config", "parse_config", "run_sweep"]
