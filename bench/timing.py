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


def summary(timings: list[float]) -> dict[str, float]:
    """The median, p90 and p99 of ``timings`` (milliseconds), rounded to the microsecond."""
    ordered = sorted(timings)
    return {"median_ms": round(statistics.median(ordered), 3), "p90_ms": round(ordered[int(len(ordered) * 0.9)], 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3)}
