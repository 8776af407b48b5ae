"""The monitor's health checks of a running service, driven round by round against a real ledger and a real
HTTP server: a service whose check failed is checked again within a second, not at its next interval (30 s by
default), so one failure from a busy moment is cleared at once; one that keeps failing leaves the rotation at
its second failure, and is restarted once it has failed for two intervals, no sooner; a monitor started again in
the middle of a streak counts on from the record's count."""
from __future__ import annotations

import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import pytest

from cnetd.core.deployment_state import in_rotation
from cnetd.core.lifecycle import failed_health_checks, mark_healthy, mark_started
from cnetd.monitor.health import FAILURES_BEFORE_RESTART, RECHECK_AFTER_FAILURE_S, HealthChecker
from ledger.records import Resources, Status, WorkloadRecord
from ledger.store import Ledger

INTERVAL_S = 30.0  # health.interval_s's default: no second check of a well service comes within a test


class HealthAnswers:
    """A /health that fails its first ``failing`` requests (500) and answers 200 after."""

    def __init__(self, failing: int) -> None:
        self.failing, self.asked = failing, 0
        answers = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answers.asked += 1
                self.send_response(500 if answers.asked <= answers.failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ledger(tmp_path) -> Iterator[Ledger]:
    store = Ledger(str(tmp_path / "ledger"))
    store.set_node({"node_id": "n"}, Resources(cpu=4.0))
    yield store
    store.close()


@pytest.fixture
def service_process() -> Iterator[subprocess.Popen]:
    """The service's process, in a process group of its own (a restart kills the group)."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def running_service(ledger: Ledger, health_url: str, pid: int) -> None:
    ledger.admit(WorkloadRecord(id="s", type="opencv", name="s", config={}, requirements=Resources(cpu=1.0),
                                program="workloads:wl-s", health_url=health_url))
    ledger.update("s", mark_started(pid))
    ledger.update("s", mark_healthy)
    assert ledger.get("s").status == Status.RUNNING


def rounds_until(checker: HealthChecker, done: Callable[[], bool], timeout_s: float) -> float:
    """Run the checker's rounds (as its thread does, each when the last said the next check is due) until
    ``done``; how long that took."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < timeout_s, f"not done within {timeout_s} s"
        time.sleep(min(checker.check_due(), 0.05))
    return time.monotonic() - started


def test_one_failed_check_is_checked_again_within_a_second_and_cleared(ledger: Ledger,
                                                                       service_process: subprocess.Popen) -> None:
    answers = HealthAnswers(failing=1)
    try:
        running_service(ledger, answers.url, service_process.pid)
        checker = HealthChecker(ledger, INTERVAL_S, start_timeout_s=120)
        rounds_until(checker, lambda: ledger.get("s").health_failures == 1, timeout_s=10)
        assert in_rotation(Status.RUNNING, 1, retired=False)  # one failure: still sent requests
        cleared_s = rounds_until(checker, lambda: ledger.get("s").health_failures == 0, timeout_s=10)
        assert cleared_s < INTERVAL_S / 3, cleared_s  # within RECHECK_AFTER_FAILURE_S and a round, not 30 s
        assert answers.asked == 2 and service_process.poll() is None
    finally:
        answers.close()


def test_a_service_that_keeps_failing_is_out_at_once_and_restarted_after_two_intervals(
        ledger: Ledger, service_process: subprocess.Popen) -> None:
    interval_s = 4.0  # short enough for a test, and a recheck (1 s) well within half of it
    answers = HealthAnswers(failing=10**6)
    try:
        running_service(ledger, answers.url, service_process.pid)
        checker = HealthChecker(ledger, interval_s, start_timeout_s=120)
        rounds_until(checker, lambda: ledger.get("s").health_failures == 1, timeout_s=10)
        out_s = rounds_until(checker, lambda: not in_rotation(Status.RUNNING, ledger.get("s").health_failures, False),
                             timeout_s=10)
        assert out_s < interval_s / 2, out_s  # rechecked within a second: out long before its interval came round
        restarted_s = out_s + rounds_until(checker, lambda: service_process.poll() is not None, timeout_s=20)
        # Killed (its exit is then the crash path's) once failing for as long as three checks at its interval
        # take, and not before: a service starved of its cores for a few seconds is not restarted for it.
        failing_s = (FAILURES_BEFORE_RESTART - 1) * interval_s
        assert failing_s - RECHECK_AFTER_FAILURE_S <= restarted_s < failing_s + 5, restarted_s
        assert answers.asked >= FAILURES_BEFORE_RESTART and ledger.get("s").health_failures == answers.asked
    finally:
        answers.close()


def test_a_monitor_started_again_mid_streak_counts_on_and_keeps_the_replica_out(
        ledger: Ledger, service_process: subprocess.Popen) -> None:
    answers = HealthAnswers(failing=10**6)
    try:
        running_service(ledger, answers.url, service_process.pid)
        ledger.update("s", failed_health_checks(2))  # as the monitor before this one left it: out of rotation
        checker = HealthChecker(ledger, INTERVAL_S, start_timeout_s=120)
        rounds_until(checker, lambda: answers.asked == 1 and ledger.get("s").health_failures != 2, timeout_s=10)
        assert ledger.get("s").health_failures == 3  # not 1, which would put a failing replica back in rotation
        assert service_process.poll() is None  # and no restart until it has failed for two intervals here
    finally:
        answers.close()
