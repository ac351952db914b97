"""Dataset registry and the ``load`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prunelab.data.base import DataBundle
from prunelab.registry import Registry

#: name -> loader(seed: int, data_dir: Path | None, **options) -> DataBundle
DATASETS: Registry[Callable[..., DataBundle]] = Registry("dataset")


def load(name: str, seed: int = 0, data_dir: str | Path | None = None, **options) -> DataBundle:
    """Load a dataset by name.

    Args:
        name: A registered dataset name (see ``DATASETS.names()``).
        seed: Seed for any random split / subsample / synthetic draw.
        data_dir: Directory holding the dataset files, for datasets read from disk.
        **options: Loader-specific options (e.g. ``n_train`` for ``synthetic-linear``).

    Returns:
        The dataset, with ``spec`` filled so that ``load(**bundle.spec)`` reloads it.
    """
    loader = DATASETS.get(name)
    bundle = loader(seed=seed, data_dir=Path(data_dir) if data_dir is not None else None, **options)
    bundle.spec = {
        "name": name,
        "seed": seed,
        "data_dir": str(data_dir) if data_dir else None,
        **options,
    }
    return bundle
