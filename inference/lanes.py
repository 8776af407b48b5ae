"""How a service's inferences share the cores its workload declared: never more at once than it has.

A service of ``cores`` keeps one session that uses all of them (``wide``) and ``cores`` sessions of one
thread each (``narrow``). A request alone in the service gets the wide session (the lowest latency one
request can have); requests served together each take a narrow one, one core each, so that ``cores`` of
them run in parallel (what the cores can do at most: a session of one thread wastes nothing on
synchronisation, and they share nothing but memory). Whether a request is alone is counted over the
whole of its serving (``serving()``: reading, decoding, answering), not only its inference, so a busy
service does not take the wide session between two of its requests. The wide session is only taken
when every core is free, so the cores in use never exceed ``cores``.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Generic, Iterator, TypeVar

from inference.statistics import waited_for_cores

Session = TypeVar("Session")


class Lanes(Generic[Session]):
    def __init__(self, wide: Session, narrow: list[Session]) -> None:
        self._wide = wide
        self._free_narrow = list(narrow)
        self._cores = len(narrow)
        self._free_cores = self._cores
        self._waiting = 0
        self._serving = 0
        self._ready = threading.Condition()

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Around the whole of one request."""
        with self._ready:
            self._serving += 1
        try:
            yield
        finally:
            with self._ready:
                self._serving -= 1

    def run(self, work: Callable[[Session], object], whole: bool = False) -> object:
        """``work(session)`` on the session this moment allows (the wide one when it is alone, or when it
        asks for the ``whole`` of the cores: a batch)."""
        waiting_since = time.perf_counter_ns()
        with self._ready:
            self._waiting += 1
            while self._free_cores < (self._cores if whole else 1):
                self._ready.wait()
            self._waiting -= 1
            alone = whole or (self._free_cores == self._cores and not self._waiting and self._serving <= 1)
            taken = self._cores if alone else 1
            session = self._wide if alone else self._free_narrow.pop()
            self._free_cores -= taken
        waited_for_cores(time.perf_counter_ns() - waiting_since)
        try:
            return work(session)
        finally:
            with self._ready:
                self._free_cores += taken
                if not alone:
                    self._free_narrow.append(session)
                self._ready.notify_all()
