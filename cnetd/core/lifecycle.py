"""Workload state transitions: maps what supervisord reports for a program onto the ledger record.

Events are hints; ``settle`` reads the program's current info and moves the record accordingly, so a
missed or repeated event changes nothing. Restarts are decided here (never by supervisord), at most
``RESTART_CAP`` times. supervisorctl stays an operator's tool: a stopped workload keeps its program, and
one started (or restarted) by hand runs again in the ledger, holding its resources again.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Callable

from cnetd.common.errors import InsufficientResources, NotFound
from cnetd.common.logs import workload_fields
from cnetd.core.supervisor_rpc import STOPPED_STATES, Supervisor
from ledger.records import Desired, Status, WorkloadRecord
from ledger.store import Ledger

log = logging.getLogger(__name__)
RESTART_CAP = 3


def mark_started(pid: int) -> Callable[[WorkloadRecord], WorkloadRecord | None]:
    """Its program runs as ``pid``: running, or still starting while a health check has not passed."""
    def change(record: WorkloadRecord) -> WorkloadRecord | None:
        if record.terminal or record.process_pid == pid:
            return None
        status = Status.STARTING if record.health_url else Status.RUNNING
        return dataclasses.replace(record, status=status, process_pid=pid, started_at=record.started_at or time.time())
    return change


def record_start(ledger: Ledger, record: WorkloadRecord, pid: int) -> WorkloadRecord:
    """``record`` with its program running as ``pid``, written only when that changes the record at hand: the
    scheduler and the monitor (a RUNNING event, and TICK_5's settlement of every workload) each record the same
    start, and the one that finds it recorded needs no write transaction."""
    started = mark_started(pid)
    return record if started(record) is None else ledger.update(record.id, started)


def mark_healthy(record: WorkloadRecord) -> WorkloadRecord | None:
    """A service answered its health check."""
    if record.status != Status.STARTING or record.process_pid is None:
        return None
    return dataclasses.replace(record, status=Status.RUNNING)


def failed_health_checks(count: int) -> Callable[[WorkloadRecord], WorkloadRecord | None]:
    """A running service's health checks failed ``count`` times in a row (0: it passed again): from the
    second (``FAILURES_OUT_OF_ROTATION``), a deployment's balancer sends it nothing."""
    def change(record: WorkloadRecord) -> WorkloadRecord | None:
        if record.health_failures == count or (count and record.status != Status.RUNNING):
            return None
        return dataclasses.replace(record, health_failures=count)
    return change


def finish(status: str, exit_code: int | None = None, message: str = "") -> Callable[[WorkloadRecord], WorkloadRecord | None]:
    """Make a record terminal, nothing left to run (the ledger releases its allocation in the same transaction)."""
    def change(record: WorkloadRecord) -> WorkloadRecord | None:
        if record.terminal:
            return None
        return dataclasses.replace(record, status=status, desired=Desired.STOP, exit_code=exit_code, message=message,
                                   process_pid=None, finished_at=time.time())
    return change


def revive(pid: int, health_url: str | None) -> Callable[[WorkloadRecord], WorkloadRecord | None]:
    """A stopped workload's program runs again (started by hand): desired run, as a fresh start."""
    def change(record: WorkloadRecord) -> WorkloadRecord | None:
        if not record.terminal:
            return None
        return dataclasses.replace(record, status=Status.STARTING if health_url else Status.RUNNING,
                                   desired=Desired.RUN, process_pid=pid, exit_code=None, finished_at=None,
                                   message="started again by hand (supervisorctl)")
    return change


def desire(desired: str) -> Callable[[WorkloadRecord], WorkloadRecord | None]:
    def change(record: WorkloadRecord) -> WorkloadRecord | None:
        return None if record.desired == desired else dataclasses.replace(record, desired=desired)
    return change


def mark_deleting(record: WorkloadRecord) -> WorkloadRecord | None:
    """Its delete recorded, before anything of it goes: a stop for one still running, and ``deleting``, which a
    scheduler that ends during the delete finishes when it starts."""
    if record.deleting:
        return None
    return dataclasses.replace(record, deleting=True, desired=record.desired if record.terminal else Desired.STOP)


def needs_a_program_here(record: WorkloadRecord) -> bool:
    """A record that a program of this node's supervisord stands for, or should: what a restart relaunches (or
    ends, its stop recorded). Not one being deleted, finished, elsewhere, on its way there, or a deployment (its
    controller places its replicas)."""
    return not (record.deleting or record.terminal or record.remote or not record.program
                or record.status == Status.DELEGATING or record.deployment is not None and record.status == Status.PENDING)


def without_its_program(record: WorkloadRecord) -> WorkloadRecord | None:
    """Its program runs nowhere now (the node started again, its supervisord with it): stopped if its stop was
    recorded, else starting, which its relaunch makes true. Recorded before anyone can read it as running."""
    if record.desired == Desired.STOP:
        return finish(Status.STOPPED, message="stopped")(record)
    relaunching = dataclasses.replace(record, status=Status.STARTING, process_pid=None,
                                      message="relaunching after a restart")
    return None if relaunching == record else relaunching  # marked so already (by the launcher, at a node's start)


def _count_restart(exit_code: int) -> Callable[[WorkloadRecord], WorkloadRecord | None]:
    """A restart counted, unless the record as stored now no longer wants one (a stop recorded since it was read,
    say): decided in the ledger's write, so that a stop and a restart never both win."""
    def change(record: WorkloadRecord) -> WorkloadRecord | None:
        if record.terminal or not _wants_restart(record, exit_code):
            return None
        return dataclasses.replace(record, status=Status.STARTING, restarts=record.restarts + 1,
                                   exit_code=exit_code, process_pid=None, health_failures=0)
    return change


def _wants_restart(record: WorkloadRecord, exit_code: int) -> bool:
    if record.desired != Desired.RUN or record.restarts >= RESTART_CAP:
        return False
    return record.restart_policy == "always" or (record.restart_policy == "on-failure" and exit_code != 0)


def _exit_message(record: WorkloadRecord, exit_code: int) -> str:
    text = "killed by a signal" if exit_code < 0 else f"exited with code {exit_code}"
    return f"{text} after {record.restarts} restart(s)" if record.restarts else text


def settle(ledger: Ledger, supervisor: Supervisor, record: WorkloadRecord,
           info: dict[str, Any] | None) -> WorkloadRecord:
    """Bring ``record`` in line with its program's process ``info`` (None: supervisord has no such program)."""
    if record.terminal:
        if info is not None and info["statename"] == "RUNNING":
            if _started_after_it_ended(record, info):
                return _started_by_hand(ledger, supervisor, record, info)
            return record  # the process it ended with, failed before its kill (health.start_timeout_s): its exit settles it
        if info is not None and info["statename"] in STOPPED_STATES and record.status != Status.STOPPED:
            supervisor.remove(record.program)  # a stopped one stays, for an operator's supervisorctl start
        return record
    if info is None:
        # Not started yet, or the node restarted: the scheduler (re)creates programs of running workloads.
        if record.desired == Desired.STOP:
            return ledger.update(record.id, finish(Status.STOPPED, message="stopped before it ran"))
        return record
    state = info["statename"]
    if state == "RUNNING":
        return record_start(ledger, record, info["pid"])
    if state == "EXITED":
        return _settle_exit(ledger, supervisor, record, int(info["exitstatus"]))
    if state == "FATAL":
        settled = ledger.update(record.id, finish(Status.FAILED, message=f"could not start: {info['spawnerr']}"))
    elif state == "STOPPED" and (record.desired == Desired.STOP or not supervisor.shutting_down()):
        # Stopped by the user, or by an operator through supervisorctl; a node shutdown keeps it desired.
        # Its program stays (stopped) until the workload is deleted.
        return ledger.update(record.id, finish(Status.STOPPED, message="stopped"))
    else:
        return record  # STARTING, BACKOFF, STOPPING, or stopped by a node shutdown: a later event settles it
    supervisor.remove(record.program)
    return settled


def _settle_exit(ledger: Ledger, supervisor: Supervisor, record: WorkloadRecord, exit_code: int) -> WorkloadRecord:
    if _wants_restart(record, exit_code):
        restarted = ledger.update(record.id, _count_restart(exit_code))
        if restarted.restarts > record.restarts:
            log.info("restarting (restart %d of %d)", restarted.restarts, RESTART_CAP, extra=workload_fields(record.id))
            supervisor.restart(record.program)
            if not _still_wanted(ledger, record.id):  # a stop or delete came while it started, and found it exited
                supervisor.stop(record.program)  # that wins; the program's STOPPED settles (or removes) it
            return restarted
        record = restarted  # as it is now: its stop recorded since it was read (or it settled meanwhile)
    status = Status.COMPLETED if exit_code == 0 else Status.FAILED
    settled = ledger.update(record.id, finish(status, exit_code, _exit_message(record, exit_code)))
    supervisor.remove(record.program)
    return settled


def _still_wanted(ledger: Ledger, workload_id: str) -> bool:
    try:
        return ledger.get(workload_id).desired == Desired.RUN
    except NotFound:
        return False


def _started_after_it_ended(record: WorkloadRecord, info: dict[str, Any]) -> bool:
    """Whether the running process began after the record ended; supervisord's ``start`` is whole seconds."""
    return record.finished_at is None or info["start"] >= math.floor(record.finished_at)


def _started_by_hand(ledger: Ledger, supervisor: Supervisor, record: WorkloadRecord,
                     info: dict[str, Any]) -> WorkloadRecord:
    try:
        revived = ledger.readmit(record.id, revive(info["pid"], record.health_url))
    except InsufficientResources as exc:
        log.warning("started by hand, but %s: stopping it", exc.message, extra=workload_fields(record.id))
        supervisor.stop(record.program)
        return record
    log.info("started by hand: running again", extra=workload_fields(record.id))
    return revived
