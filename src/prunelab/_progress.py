"""Progress bars for long library work, off unless the caller asks for them.

The library never decides to draw on its own: every long-running function takes a
``progress: bool`` (default ``False``) that the CLI sets when stderr is a terminal and
``--json`` is off. Progress is how a run is watched, never what it computes, so it is
kept out of every settings dataclass and run identity.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int | None, desc: str, enabled: bool, unit: str = "step") -> tqdm:
    """A tqdm bar on stderr that draws nothing unless ``enabled``.

    Args:
        total: Expected number of updates (``None`` if unknown).
        desc: Label shown left of the bar.
        enabled: Draw it; with ``False`` updates are free no-ops.
        unit: Name of one update.

    Example:
        >>> with progress_bar(3, "work", enabled=False) as bar:
        ...     bar.update()
        >>> bar.disable
        True
    """
    return tqdm(
        total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, leave=False
    )
