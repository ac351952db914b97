"""Experiments: jobs behind the CLI, the demo, sweeps, the results store and reports."""
