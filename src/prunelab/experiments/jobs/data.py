"""Reloading the dataset a run was made with (cached per process)."""

from __future__ import annotations

from pathlib import Path

from prunelab import data as datasets
from prunelab._hashing import stable_hash
from prunelab.errors import PrunelabError

_CACHE: dict[str, datasets.DataBundle] = {}


def load_data(
    spec: dict | None, data_dir: str | Path | None = None, cache: bool = False
) -> datasets.DataBundle:
    """Load the dataset described by ``spec``.

    Args:
        spec: A :attr:`~prunelab.data.DataBundle.spec` (as stored in ``meta.json``:
            ``name``, ``seed``, ``data_dir`` and the loader's options), or a sweep's data
            identity (``name``, ``seed``, ``options``; its report ``label`` is ignored).
        data_dir: Directory to read from instead of the stored one.
        cache: Keep the bundle for later calls in this process (sweep workers load the
            same dataset for every run).

    Returns:
        The dataset.

    Raises:
        PrunelabError: ``spec`` has no dataset name.
    """
    spec = dict(spec or {})
    name = spec.pop("name", None)
    if name is None:
        raise PrunelabError("meta.json has no data spec; cannot reload its dataset")
    seed = spec.pop("seed", 0)
    stored_dir = spec.pop("data_dir", None)
    # a sweep identity nests the loader options; a DataBundle.spec has them flat
    options = spec.get("options", spec)
    directory = data_dir or stored_dir or None
    key = stable_hash([name, seed, options, str(directory)])
    if cache and key in _CACHE:
        return _CACHE[key]
    bundle = datasets.load(name, seed=seed, data_dir=directory, **options)
    if cache:
        _CACHE[key] = bundle
    return bundle
