"""Step 2 of the spectral limit: SLQ measures of the curvature, one per seed.

:func:`build_measures` runs ``num_seeds`` blocks of Lanczos chains on the operator from
:func:`~prunelab.limits._inputs.measure_limit_inputs` and keeps, per seed, the
:class:`~prunelab.curvature.SpectralMeasure` of the chosen quadrature rule after ``m``
steps, plus the measures behind the diagnostics: the same rule after ``m/2`` steps
(convergence) and the Gauss ``m−1`` / anti-Gauss ``m`` pair (quadrature-error bracket,
see :mod:`prunelab.curvature.quadrature`). One Lanczos run per seed serves them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunelab.curvature import CurvatureOperator, SpectralMeasure, lanczos, quadrature_measure


@dataclass
class SeedMeasures:
    """The spectral measures of every SLQ seed (step 2 of the limit).

    Attributes:
        measures: Per seed, the chosen rule after ``num_iters`` steps.
        halves: Per seed, the chosen rule after ``max(1, num_iters // 2)`` steps.
        brackets: Per seed, ``(Gauss num_iters−1, anti-Gauss num_iters)``; empty when
            ``num_iters < 2``.
        seeds: The SLQ seeds (spawned from the base seed).
        num_iters: Lanczos steps ``m`` after capping at the operator's dimension.
        quadrature: The rule of :attr:`measures` and :attr:`halves`.
    """

    measures: list[SpectralMeasure]
    halves: list[SpectralMeasure]
    brackets: list[tuple[SpectralMeasure, SpectralMeasure]]
    seeds: list[int]
    num_iters: int
    quadrature: str

    @property
    def half_iters(self) -> int:
        """Steps behind :attr:`halves`."""
        return max(1, self.num_iters // 2)


def spawn_seeds(seed: int, num_seeds: int) -> list[int]:
    """``num_seeds`` independent SLQ seeds derived from ``seed`` (NumPy ``SeedSequence``)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(num_seeds)]


def build_measures(
    op: CurvatureOperator,
    num_iters: int,
    num_runs: int,
    num_seeds: int,
    seed: int = 0,
    quadrature: str = "gauss",
) -> SeedMeasures:
    """Step 2 of :func:`~prunelab.limits.predict_limit`: SLQ → SpectralMeasure per seed.

    Args:
        op: Curvature operator (the model behind it in ``eval()`` mode).
        num_iters: Lanczos steps ``m`` per run (capped at ``op.dim``).
        num_runs: Rademacher runs per seed.
        num_seeds: Seeds, spawned from ``seed`` by :func:`spawn_seeds`.
        seed: Base seed.
        quadrature: ``"gauss"`` or ``"averaged"`` (see :func:`~prunelab.curvature.chain_rule`).

    Returns:
        :class:`SeedMeasures`.
    """
    iters = min(num_iters, op.dim)
    seeds = spawn_seeds(seed, num_seeds)
    out = SeedMeasures([], [], [], seeds, iters, quadrature)
    for s in seeds:  # SLQ, keeping the coefficients to also read off m/2 steps
        res = lanczos(op, iters, s, num_runs=num_runs)
        out.measures.append(quadrature_measure(res, iters, quadrature, s))
        out.halves.append(quadrature_measure(res, out.half_iters, quadrature, s))
        if iters >= 2:  # Gauss m-1 and anti-Gauss m: quadrature-error indicator
            gauss = quadrature_measure(res, max(1, iters - 1), "gauss", s)
            out.brackets.append((gauss, quadrature_measure(res, iters, "anti-gauss", s)))
    return out
