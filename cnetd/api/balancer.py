"""The balancer of a deployment's endpoint, one per API process: which replica gets the next request.

Least outstanding requests first (ties go to the replica picked longest ago, so one client's requests go
round all of them, and a replica back in rotation gets its share, not a burst); a replica that could not be reached is ejected for ``EJECT_S`` (the controller and the
health checks decide for longer). Only replicas in rotation are offered to it.
"""
from __future__ import annotations

import collections
import contextlib
import threading
import time
from typing import Iterator

from ledger.records import WorkloadRecord

EJECT_S = 2.0
ATTEMPTS = 2  # a request whose replica cannot be reached is tried once on another


class Balancer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outstanding: collections.Counter[str] = collections.Counter()
        self._picked: dict[str, int] = {}  # replica id → the number of the request last sent to it
        self._picks = 0
        self._ejected_until: dict[str, float] = {}

    def order(self, replicas: list[WorkloadRecord]) -> list[WorkloadRecord]:
        """The replicas to try, best first, at most ``ATTEMPTS`` (ejected ones after all the others)."""
        now = time.monotonic()
        with self._lock:
            ranked = sorted(replicas, key=lambda replica: (self._ejected_until.get(replica.id, 0.0) > now,
                                                           self._outstanding[replica.id],
                                                           self._picked.get(replica.id, -1)))
        return ranked[:ATTEMPTS]

    @contextlib.contextmanager
    def sending(self, replica_id: str) -> Iterator[None]:
        with self._lock:
            self._outstanding[replica_id] += 1
            self._picks += 1
            self._picked[replica_id] = self._picks
        try:
            yield
        finally:
            with self._lock:
                self._outstanding[replica_id] -= 1

    def eject(self, replica_id: str) -> None:
        with self._lock:
            self._ejected_until[replica_id] = time.monotonic() + EJECT_S
