"""Report plots (matplotlib, Agg backend, written atomically as PNG)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers / CI; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from prunelab._io import atomic_write_bytes  # noqa: E402


def save_figure(fig, path: str | Path) -> Path:
    """Render ``fig`` to PNG bytes and write them atomically; closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def accuracy_vs_sparsity(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]],
    path: str | Path,
    title: str = "",
    vlines: Mapping[str, float] | None = None,
    reference: float | None = None,
    ylabel: str = "test accuracy (%)",
) -> Path:
    """Plot one line per criterion: ``name -> (sparsities, means, spreads or None)``.

    Args:
        curves: Per-curve x values (sparsity, fraction removed), y means and optional
            spreads (drawn as a shaded ±band).
        path: PNG destination.
        title: Figure title.
        vlines: Named vertical lines, e.g. predicted limits ``{"gaussian-width": 0.93}``.
        reference: A horizontal reference line (e.g. dense accuracy).
        ylabel: Label of the y axis.

    Returns:
        The PNG path.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, (xs, ys, spread) in curves.items():
        (line,) = ax.plot(xs, ys, marker="o", ms=3, label=name)
        if spread is not None:
            lo = [y - s for y, s in zip(ys, spread, strict=True)]
            hi = [y + s for y, s in zip(ys, spread, strict=True)]
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    if reference is not None:
        ax.axhline(reference, color="grey", lw=0.8, ls=":", label="dense")
    for i, (name, x) in enumerate((vlines or {}).items()):
        ax.axvline(x, color=f"C{(i + 5) % 10}", ls="--", lw=1.2, label=f"{name}: {x:.3f}")
    ax.set_xlabel("sparsity (fraction of prunable weights removed)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
