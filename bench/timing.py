"""Timing helpers the benchmarks share."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def median_ms(action: Callable[[], Any], count: int) -> float:
    """The median of ``count`` runs of ``action``, in milliseconds."""
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 3)
