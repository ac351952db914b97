"""Weight-magnitude distributions of independent training runs: how alike? (paper 004).

Paper 004 compares the weight distributions of independently trained networks with a
total-variation (TV) distance; its argument is that the magnitude profile, which sets
``R(p)``, is a property of the architecture and training recipe rather than of the run.

The TV distance between two *empirical* distributions of continuous values is 1 as soon
as no value is shared, so a binning is part of the definition. We choose and state it:

* **Bins**: shared, log-spaced bins of ``|θ|`` — ``num_bins`` bins between the
  smallest non-zero and the largest ``|θ|`` over *all* the runs compared — plus one bin
  for exact zeros (a pruned or ℓ1-collapsed weight). Log spacing, because trained
  magnitudes span several decades and the small ones are what pruning removes.
* **TV** = ``½ Σ_b |P_a(b) − P_b(b)|`` over those bins, with ``P`` the fraction of each
  run's weights in the bin; ``0`` for identical runs, ``1`` for disjoint supports.
* Beside it, binning-free: the Kolmogorov–Smirnov distance ``sup_x |F_a(x) − F_b(x)|``
  of the exact empirical CDFs of ``|θ|`` (a lower bound of the TV of any binning).
* **Noise floor**: the same TV between two random halves of *one* run's weights, so a
  TV between runs can be read against what finite samples alone give with these bins.

Example:
    >>> a, b = np.array([0.0, 1.0, 2.0, 4.0]), np.array([1.0, 1.0, 3.0, 8.0])
    >>> float(tv_distance(a, b, edges=np.array([1.0, 2.0, 4.0, 8.0])))
    0.25
    >>> float(ks_distance(a, b))
    0.25
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prunelab.errors import PrunelabError

#: Default number of log-spaced bins of the non-zero magnitudes.
DEFAULT_BINS = 100


def _magnitudes(w) -> np.ndarray:
    if hasattr(w, "detach"):  # a torch tensor, without importing torch here
        w = w.detach().cpu().double().numpy()
    m = np.abs(np.asarray(w, dtype=np.float64).reshape(-1))
    if m.size == 0 or not np.all(np.isfinite(m)):
        raise PrunelabError("weights must be a non-empty array of finite numbers")
    return m


def log_bins(runs: Sequence, num_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Shared log-spaced edges ``(num_bins + 1,)`` over the non-zero ``|θ|`` of all runs.

    Args:
        runs: Weight arrays (any shapes; flattened).
        num_bins: Bins between the smallest non-zero and the largest magnitude.

    Raises:
        PrunelabError: Bad ``num_bins`` or no non-zero weight at all.
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise PrunelabError(f"num_bins must be an integer >= 1, got {num_bins!r}")
    mags = [_magnitudes(w) for w in runs]
    nonzero = np.concatenate([m[m > 0] for m in mags])
    if nonzero.size == 0:
        raise PrunelabError("every weight is zero: no magnitudes to bin")
    lo, hi = float(nonzero.min()), float(nonzero.max())
    if lo == hi:  # one distinct value: one bin around it
        lo, hi = lo / 2, hi * 2
    return np.geomspace(lo, hi, num_bins + 1)


def magnitude_histogram(w, edges: np.ndarray) -> np.ndarray:
    """Fractions ``(len(edges),)`` of ``|θ|``: ``[zeros, bin 1, …, bin B]`` (sums to 1).

    Bins are ``[e_i, e_{i+1})`` with the last one closed (NumPy's rule).

    Raises:
        PrunelabError: Edges not increasing and positive, or a non-zero ``|θ|`` outside
            ``[edges[0], edges[-1]]``.
    """
    m = _magnitudes(w)
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not (e[0] > 0 and np.all(np.diff(e) > 0)):
        raise PrunelabError("edges must be an increasing array of >= 2 positive numbers")
    nz = m[m > 0]
    if nz.size and (nz.min() < e[0] or nz.max() > e[-1]):
        raise PrunelabError(
            f"magnitudes span [{nz.min():.3g}, {nz.max():.3g}] outside the edges "
            f"[{e[0]:.3g}, {e[-1]:.3g}]: use log_bins over every run compared"
        )
    counts, _ = np.histogram(nz, bins=e)
    return np.concatenate([[m.size - nz.size], counts]) / m.size


def tv_distance(a, b, *, num_bins: int = DEFAULT_BINS, edges: np.ndarray | None = None) -> float:
    """Total-variation distance of two runs' binned ``|θ|`` distributions (module docstring).

    Args:
        a: Weights of one run.
        b: Weights of the other (any size).
        num_bins: Shared log bins built from both runs when ``edges`` is ``None``.
        edges: Explicit bin edges of the non-zero magnitudes.

    Returns:
        TV in ``[0, 1]``.
    """
    e = log_bins([a, b], num_bins) if edges is None else edges
    return float(0.5 * np.abs(magnitude_histogram(a, e) - magnitude_histogram(b, e)).sum())


def ks_distance(a, b) -> float:
    """Kolmogorov–Smirnov distance ``sup |F_a − F_b|`` of the empirical CDFs of ``|θ|``."""
    ma, mb = np.sort(_magnitudes(a)), np.sort(_magnitudes(b))
    x = np.concatenate([ma, mb])  # the sup is reached at a sample point (right limits)
    fa = np.searchsorted(ma, x, side="right") / ma.size
    fb = np.searchsorted(mb, x, side="right") / mb.size
    return float(np.abs(fa - fb).max())


@dataclass(frozen=True)
class RunComparison:
    """Pairwise distances between the magnitude distributions of independent runs.

    Attributes:
        pairs: ``(i, j)`` run indices, ``i < j``.
        tv: TV per pair (shared bins of all runs).
        ks: KS distance per pair.
        noise_floor: Per run, the TV between two random halves of its own weights.
        edges: The shared bin edges.
        num_bins: ``len(edges) − 1``.
    """

    pairs: list[tuple[int, int]]
    tv: list[float]
    ks: list[float]
    noise_floor: list[float]
    edges: np.ndarray
    num_bins: int

    @staticmethod
    def _mean_sd(v: list[float]) -> tuple[float, float]:
        return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")

    def summary(self) -> dict:
        """``{tv, ks, noise_floor}: (mean, sd over pairs or runs)`` and the counts."""
        return {"tv": self._mean_sd(self.tv), "ks": self._mean_sd(self.ks),
                "noise_floor": self._mean_sd(self.noise_floor), "num_pairs": len(self.pairs),
                "num_runs": len(self.noise_floor), "num_bins": self.num_bins}  # fmt: skip


def compare_runs(runs: Sequence, num_bins: int = DEFAULT_BINS, seed: int = 0) -> RunComparison:
    """TV and KS distances between every pair of runs, with each run's half-split floor.

    Args:
        runs: At least two weight arrays (e.g. the flat prunable set of each seed).
        num_bins: Shared log-spaced bins over all runs.
        seed: Seed of the random half-splits (same seed → same floor).

    Returns:
        :class:`RunComparison`.
    """
    if len(runs) < 2:
        raise PrunelabError(f"compare_runs needs at least 2 runs, got {len(runs)}")
    mags = [_magnitudes(w) for w in runs]
    edges = log_bins(mags, num_bins)
    pairs = list(itertools.combinations(range(len(mags)), 2))
    tv = [tv_distance(mags[i], mags[j], edges=edges) for i, j in pairs]
    ks = [ks_distance(mags[i], mags[j]) for i, j in pairs]
    rng = np.random.default_rng(seed)
    floor = []
    for m in mags:
        perm = rng.permutation(m.size)
        half = m.size // 2
        floor.append(tv_distance(m[perm[:half]], m[perm[half:]], edges=edges))
    return RunComparison(pairs, tv, ks, floor, edges, num_bins)
