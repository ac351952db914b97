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
    logy: bool = False,
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
        logy: Logarithmic y axis (losses spanning orders of magnitude).

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
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("sparsity (fraction of prunable weights removed)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def scatter(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    xlabel: str,
    ylabel: str,
    title: str = "",
    diagonal: bool = False,
    symlog: bool = False,
) -> Path:
    """Scatter plot, one colour per series: ``name -> (xs, ys)``.

    Args:
        series: Points per named series.
        path: PNG destination.
        xlabel: Label of the x axis.
        ylabel: Label of the y axis.
        title: Figure title.
        diagonal: Draw the line ``y = x`` (prediction vs measurement).
        symlog: Symmetric-log axes (values spanning orders of magnitude and signs).

    Returns:
        The PNG path.
    """
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    every: list[float] = []
    markers = "os^Dv<>"
    for i, (name, (xs, ys)) in enumerate(series.items()):
        # distinct markers, later series smaller: coinciding points stay visible
        size = max(10, 30 - 5 * i)
        ax.scatter(xs, ys, s=size, alpha=0.8, marker=markers[i % len(markers)], label=name)
        every += [*xs, *ys]
    if diagonal and every:
        lo, hi = min(every), max(every)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="y = x")
    if symlog:
        finite = [abs(v) for v in every if v]
        thresh = min(finite) if finite else 1.0
        ax.set_xscale("symlog", linthresh=thresh)
        ax.set_yscale("symlog", linthresh=thresh)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def spectral_density(
    grid: Sequence[float], density: Sequence[float], path: str | Path, title: str = ""
) -> Path:
    """Smoothed spectral density of a curvature matrix (log y axis, density floored)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    floor = max(max(density, default=1.0) * 1e-8, 1e-300)
    ax.semilogy(grid, [max(d, floor) for d in density], lw=1.2)
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density (Gaussian-smoothed SLQ)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def histogram(
    edges: Sequence[float],
    counts: Sequence[int],
    path: str | Path,
    title: str = "",
    xlabel: str = "|weight|",
) -> Path:
    """A histogram from precomputed bin ``edges`` (``len(counts) + 1``) and ``counts`` (log y)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    bins = [(a, b - a, c) for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True) if c > 0]
    ax.bar(
        [x for x, _, _ in bins],
        [c for _, _, c in bins],
        width=[w for _, w, _ in bins],
        align="edge",
        alpha=0.8,
    )  # empty bins are left out: log(0) has no bar
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def grouped_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    path: str | Path,
    ylabel: str,
    title: str = "",
) -> Path:
    """Bars per category (e.g. layer), one bar per series (e.g. criterion)."""
    n = max(len(series), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(categories) * n**0.5 + 3), 4.0))
    for i, (name, values) in enumerate(series.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(categories))]
        ax.bar(xs, values, width=width, label=name)
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def line_plot(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    xlabel: str,
    ylabel: str,
    title: str = "",
) -> Path:
    """Plain line plot of named ``(x, y)`` curves."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
