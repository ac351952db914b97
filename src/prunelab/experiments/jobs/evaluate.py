"""The evaluate job: a checkpoint's accuracy, loss and per-layer density."""

from __future__ import annotations

from pathlib import Path

from prunelab import checkpoint
from prunelab.experiments.jobs.data import load_data
from prunelab.train import evaluate


def evaluate_job(
    ckpt: str | Path,
    split: str = "test",
    data_dir: str | Path | None = None,
    data_options: dict | None = None,
    device: str | None = None,
) -> dict:
    """Evaluate a checkpoint on ``split`` of the data it was trained on.

    ``data_dir`` / ``data_options`` override where and how the data are reloaded.

    Returns:
        Accuracy (%), loss, sparsity, ``nnz`` / ``total``, compression ratio and the
        per-layer table.
    """
    model, mask, meta = checkpoint.load(ckpt, device)
    metrics = evaluate(
        model, load_data(meta.get("data"), data_dir, options=data_options), split=split
    )
    return {
        "checkpoint": str(ckpt),
        "split": split,
        **metrics,
        "sparsity": mask.sparsity,
        "nnz": mask.nnz,
        "total": mask.total,
        "compression_ratio": mask.compression_ratio,
        "per_layer": mask.per_layer(),
    }
