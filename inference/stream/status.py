"""What a running stream reports of itself: its state and last error, its counters and its capture-to-event
latency histogram, in ``status.json`` in its dir (replaced whole each second and on every change of state), which
the node shows with the record and on ``/metrics``."""
from __future__ import annotations

import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
LATENCY_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COUNTERS = ("frames_read", "frames_sampled", "frames_skipped_motion", "frames_sent", "frames_failed",
            "frames_dropped", "events", "reconnects")
_RATE_WINDOW_S = 10.0


class StreamStatus:
    def __init__(self, folder: Path) -> None:
        self._path = folder / STATUS_FILE
        self.state = "connecting"
        self.last_error: str | None = None
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.latency_buckets = [0] * len(LATENCY_BUCKETS_S)
        self.latency_sum_s = 0.0
        self.last_snapshot: str | None = None
        self.last_event_at: float | None = None
        self.publishers: dict[str, dict[str, int]] = {}
        self._sampled_at: deque[float] = deque()
        self._written_at = 0.0

    def change(self, state: str, error: str | None = None) -> None:
        self.state = state
        if error is not None:
            self.last_error = error
        self.write()

    def sampled(self) -> None:
        now = time.monotonic()
        self.counts["frames_sampled"] += 1
        self._sampled_at.append(now)
        while self._sampled_at and self._sampled_at[0] < now - _RATE_WINDOW_S:
            self._sampled_at.popleft()

    def event(self, latency_s: float, snapshot: str | None) -> None:
        self.counts["events"] += 1
        self.latency_sum_s += latency_s
        for index, bound in enumerate(LATENCY_BUCKETS_S):
            if latency_s <= bound:
                self.latency_buckets[index] += 1
        self.last_event_at = time.time()
        if snapshot is not None:
            self.last_snapshot = snapshot

    def write_now_and_then(self) -> None:
        if time.monotonic() - self._written_at >= 1.0:
            self.write()

    def write(self) -> None:
        self._written_at = time.monotonic()
        window = min(_RATE_WINDOW_S, max(1e-3, self._written_at - self._sampled_at[0])) if self._sampled_at else 1.0
        status: dict[str, Any] = {
            "state": self.state, "last_error": self.last_error, "updated_at": time.time(), **self.counts,
            "sampled_fps": round(len(self._sampled_at) / window, 2) if self._sampled_at else 0.0,
            "last_snapshot": self.last_snapshot, "last_event_at": self.last_event_at, "publishers": self.publishers,
            "latency": {"buckets": dict(zip(map(str, LATENCY_BUCKETS_S), self.latency_buckets)),
                        "count": self.counts["events"], "sum_s": round(self.latency_sum_s, 6)}}
        partial = self._path.with_suffix(".partial")
        partial.write_text(json.dumps(status), encoding="utf-8")
        os.replace(partial, self._path)


def read_status(folder: Path) -> dict[str, Any] | None:
    """A stream's last reported status (None before its program wrote one)."""
    try:
        return json.loads((folder / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
