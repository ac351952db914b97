"""Clocks, load averages and the statistics of interleaved repetitions.

One *sample* is a contestant's operation called ``n`` times in a row (``n`` calibrated
once so that a sample lasts at least :data:`MIN_SAMPLE_S`, which lifts millisecond
operations above timer and scheduler noise); its time is the mean per call. Ratios are
formed within a repetition (where every contestant ran within seconds of the others,
under the same load) and their median over repetitions is reported.
"""

from __future__ import annotations

import math
import os
import statistics
import time

#: Shortest sample (seconds of wall clock): calls are repeated until it is reached.
MIN_SAMPLE_S = 0.25
#: Most calls in one sample.
MAX_CALLS = 50


def load() -> float:
    """The 1-minute load average of the machine (``os.getloadavg()[0]``)."""
    return round(os.getloadavg()[0], 2)


def clock(fn, calls: int = 1) -> tuple[float, float, object]:
    """Run ``fn`` ``calls`` times.

    Returns:
        ``(wall seconds per call, process CPU seconds per call, last result)``.
    """
    w0, c0 = time.perf_counter(), time.process_time()
    out = None
    for _ in range(calls):
        out = fn()
    return (time.perf_counter() - w0) / calls, (time.process_time() - c0) / calls, out


def calls_for(seconds_per_call: float) -> int:
    """How many calls make one sample of at least :data:`MIN_SAMPLE_S`."""
    if seconds_per_call <= 0:
        return MAX_CALLS
    return max(1, min(MAX_CALLS, math.ceil(MIN_SAMPLE_S / seconds_per_call)))


def median(xs: list[float]) -> float:
    """Median, ``nan`` for an empty list."""
    return statistics.median(xs) if xs else math.nan


def median_ratio(num: list[float], den: list[float]) -> float:
    """Median over repetitions of ``num[i] / den[i]`` (pairs with a missing side skipped)."""
    pairs = [a / b for a, b in zip(num, den, strict=True) if a is not None and b]
    return median(pairs)
