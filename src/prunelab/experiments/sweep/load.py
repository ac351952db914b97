"""Reading a sweep config: TOML → typed :class:`SweepConfig` → validated → grid checked."""

from __future__ import annotations

import tomllib
from pathlib import Path

from prunelab.errors import PrunelabError
from prunelab.experiments.sweep.config import SweepConfig
from prunelab.experiments.sweep.grid import expand
from prunelab.experiments.sweep.validate import validate
from prunelab.schema.toml import build


def parse_config(text: str, source: str = "config") -> SweepConfig:
    """Parse and validate TOML text into a :class:`SweepConfig`.

    Args:
        text: The TOML document.
        source: Name used in the message of a TOML syntax error.

    Returns:
        The validated config.

    Raises:
        PrunelabError: Invalid TOML, unknown keys, wrong types or values, each naming the key.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PrunelabError(f"{source}: invalid TOML: {exc}") from None
    if isinstance(raw.get("data"), dict):  # a single [data] table is a list of one
        raw["data"] = [raw["data"]]
    config = build(SweepConfig, raw)
    validate(config)
    expand(config)  # settings that only fail in combination (e.g. IMP's rewind_epoch)
    return config


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a TOML sweep config file (see :func:`parse_config`)."""
    path = Path(path)
    if not path.is_file():
        raise PrunelabError(f"config file {str(path)!r} does not exist")
    return parse_config(path.read_text(encoding="utf-8"), str(path))
