"""Health checks of service workloads, a thread of the monitor process: the one writer of a service's
readiness (starting → running) and of its failed checks.

A service is ``running`` once ``/health`` answers; a starting one is checked every ``STARTING_CHECK_S``
(the monitor's event loop wakes this thread when a program starts), so a submission that waits for it is
answered within that of its service being ready. Checks run in a small pool, so a service that accepts
and then hangs does not hold up the others. A service whose last check failed is checked again within
``RECHECK_AFTER_FAILURE_S`` rather than a whole ``health.interval_s`` (30 s by default): one that failed
once, its cores taken for a moment, is known to be well a second later, and one that hangs is out of its
deployment's rotation a second after its first failure (from its second in a row:
``FAILURES_OUT_OF_ROTATION``). A restart asks more, as Kubernetes' liveness probe asks more than its
readiness (a restart of a service that is only starved of its cores adds a model's load to the starving):
a service that fails ``FAILURES_BEFORE_RESTART`` checks in a row, for as long as that many checks at its
interval take (two intervals after the first), is killed with its whole process group (supervisord gives
each program its own, and a server's workers must not keep the port), so it takes the crash path:
restarted at most three times, then ``failed``. One that is not healthy within ``health.start_timeout_s``
of its (re)start is failed, its resources released, and then killed. Services answer these checks on a
thread of their own, so one busy with requests is not taken for a failing one; one whose threads are all
stuck answers 503 (``cnetd.common.http_worker``).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cnetd.common.httpclient import TimedOut, Unreachable, call
from cnetd.common.logs import workload_fields
from cnetd.core.lifecycle import failed_health_checks, finish, mark_healthy
from ledger.records import TERMINAL_STATUSES, Status, WorkloadRecord
from ledger.store import Ledger

log = logging.getLogger("health")
FAILURES_BEFORE_RESTART = 3
CHECK_TIMEOUT_S = 2.0
STARTING_CHECK_S = 0.05  # a starting service is checked this often, to be marked running at once
RECHECK_AFTER_FAILURE_S = 1.0  # a service whose last check failed is checked again this soon (or at its interval)
IDLE_WAKE_S = 1.0  # with nothing due sooner, the next look at the ledger (a record may have come meanwhile)
CHECK_THREADS = 8


def healthy(url: str) -> bool:
    try:
        status, _ = call("GET", url, timeout_s=CHECK_TIMEOUT_S)
    except (Unreachable, TimedOut):
        return False
    return status == 200


def _check_period_s(record: WorkloadRecord, interval_s: float) -> float:
    """How long after its last check a service is checked again: at once while it starts, within a second
    while its last check failed, else at ``health.interval_s``."""
    if record.status == Status.STARTING:
        return STARTING_CHECK_S
    return min(interval_s, RECHECK_AFTER_FAILURE_S) if record.health_failures else interval_s


def _health_checked(stored: dict[str, Any]) -> bool:
    """A stored record of a service's live process here: a health URL and a pid, not terminal, not ``remote``."""
    return (bool(stored.get("health_url")) and stored.get("process_pid") is not None
            and stored.get("status") not in TERMINAL_STATUSES and stored.get("delegated_to") is None)


class HealthChecker(threading.Thread):
    def __init__(self, ledger: Ledger, interval_s: float, start_timeout_s: float) -> None:
        super().__init__(name="health", daemon=True)
        self._ledger = ledger  # shared with the monitor's thread: LMDB environments are thread-safe
        self._interval_s = interval_s
        self._restart_after_s = (FAILURES_BEFORE_RESTART - 1) * interval_s  # failing this long, at the least
        self._start_timeout_s = start_timeout_s
        self._pool = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="health-check")
        self._wake = threading.Event()
        self._lock = threading.Lock()  # the maps below are shared with the pool's threads
        self._in_flight: set[str] = set()
        self._last_check: dict[str, float] = {}
        self._failing: dict[str, tuple[int, float]] = {}  # failed checks in a row, and when the first was
        self._starting_since: dict[tuple[str, int], float] = {}  # (workload id, pid) first seen starting

    def wake(self) -> None:
        """A program changed state (a service may be starting): look now rather than at the next due check."""
        self._wake.set()

    def run(self) -> None:
        while True:
            try:
                wait_s = self.check_due()
            except Exception:
                log.exception("health round failed")
                wait_s = IDLE_WAKE_S
            self._wake.wait(wait_s)
            self._wake.clear()

    def check_due(self) -> float:
        """Start the checks that are due; how long until the next one is."""
        now, next_due = time.monotonic(), IDLE_WAKE_S
        for record in self._ledger.workloads(where=_health_checked):
            period = _check_period_s(record, self._interval_s)
            with self._lock:
                if record.id in self._in_flight:
                    continue
                due_in = self._last_check.get(record.id, 0.0) + period - now
                if due_in > 0:
                    next_due = min(next_due, due_in)
                    continue
                self._last_check[record.id] = now
                self._in_flight.add(record.id)
            next_due = min(next_due, period)
            self._pool.submit(self._checked, record)
        return next_due

    def _checked(self, record: WorkloadRecord) -> None:
        try:
            self._check(record)
        except Exception:
            log.exception("health check failed to complete", extra=workload_fields(record.id))
        finally:
            with self._lock:
                self._in_flight.discard(record.id)

    def _check(self, record: WorkloadRecord) -> None:
        if healthy(record.health_url):
            with self._lock:
                self._failing.pop(record.id, None)
                self._starting_since.pop((record.id, record.process_pid), None)
            if record.status == Status.STARTING:
                self._ledger.update(record.id, mark_healthy)
            elif record.health_failures:
                self._ledger.update(record.id, failed_health_checks(0))
            return
        if record.status == Status.STARTING:
            # Still loading (a crash while starting is seen by the monitor as an exit), for a while.
            with self._lock:
                since = self._starting_since.setdefault((record.id, record.process_pid), time.monotonic())
            if time.monotonic() - since > self._start_timeout_s:
                self._fail_start(record)
            return
        with self._lock:
            # Counted on from the record's: a monitor that starts again mid-streak keeps the replica out.
            failures, first_at = self._failing.get(record.id, (record.health_failures, time.monotonic()))
            failures += 1
            restart = failures >= FAILURES_BEFORE_RESTART and time.monotonic() - first_at >= self._restart_after_s
            if restart:
                self._failing.pop(record.id, None)
            else:
                self._failing[record.id] = (failures, first_at)
        log.warning("failed its health check (%d in a row)", failures, extra=workload_fields(record.id))
        self._ledger.update(record.id, failed_health_checks(failures))  # from the second: out of its rotation
        if restart:
            log.warning("unhealthy: killing it to restart it", extra=workload_fields(record.id))
            _kill_group(record.process_pid)

    def _fail_start(self, record: WorkloadRecord) -> None:
        message = f"not healthy within {self._start_timeout_s:g} s of its start (health.start_timeout_s)"
        log.warning("%s: failing it", message, extra=workload_fields(record.id))
        self._ledger.update(record.id, finish(Status.FAILED, message=message))  # record, then kill
        with self._lock:
            self._starting_since.pop((record.id, record.process_pid), None)
        _kill_group(record.process_pid)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it exited meanwhile: the monitor has seen that
