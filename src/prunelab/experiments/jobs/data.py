"""Reloading the dataset a run was made with (cached per process)."""

from __future__ import annotations

import inspect
from pathlib import Path

from prunelab import data as datasets
from prunelab._hashing import stable_hash
from prunelab.errors import PrunelabError

_CACHE: dict[str, datasets.DataBundle] = {}


def loader_options(name: str) -> list[str]:
    """The keyword-only options of dataset ``name``'s loader (what ``**options`` may set)."""
    params = inspect.signature(datasets.DATASETS.get(name)).parameters
    return [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]


def check_data_options(name: str, options: dict | None) -> dict:
    """Refuse an option dataset ``name``'s loader does not have, naming the valid ones.

    The same check the sweep makes on a TOML ``[[data]]`` entry's ``options``.

    Example:
        >>> check_data_options("digits", {"test_fraction": 0.5})
        {'test_fraction': 0.5}
    """
    options = dict(options or {})
    valid = loader_options(name)
    for key in options:
        if key not in valid:
            raise PrunelabError(
                f"data_option: unknown option {key!r} for dataset {name!r}; "
                f"valid: {', '.join(valid) or '(none)'}"
            )
    return options


def load_data(
    spec: dict | None,
    data_dir: str | Path | None = None,
    cache: bool = False,
    options: dict | None = None,
) -> datasets.DataBundle:
    """Load the dataset described by ``spec``.

    Args:
        spec: A :attr:`~prunelab.data.DataBundle.spec` (as stored in ``meta.json``:
            ``name``, ``seed``, ``data_dir`` and the loader's options), or a sweep's data
            identity (``name``, ``seed``, ``options``; its report ``label`` is ignored).
        data_dir: Directory to read from instead of the stored one.
        cache: Keep the bundle for later calls in this process (sweep workers load the
            same dataset for every run).
        options: Loader options that override (or add to) the stored ones, e.g.
            ``{"verify_counts": False}``; checked by :func:`check_data_options`.

    Returns:
        The dataset.

    Raises:
        PrunelabError: ``spec`` has no dataset name, or an option is unknown.
    """
    spec = dict(spec or {})
    name = spec.pop("name", None)
    if name is None:
        raise PrunelabError("meta.json has no data spec; cannot reload its dataset")
    seed = spec.pop("seed", 0)
    stored_dir = spec.pop("data_dir", None)
    # a sweep identity nests the loader options; a DataBundle.spec has them flat
    options = {**spec.get("options", spec), **check_data_options(name, options)}
    directory = data_dir or stored_dir or None
    key = stable_hash([name, seed, options, str(directory)])
    if cache and key in _CACHE:
        return _CACHE[key]
    bundle = datasets.load(name, seed=seed, data_dir=directory, **options)
    if cache:
        _CACHE[key] = bundle
    return bundle
