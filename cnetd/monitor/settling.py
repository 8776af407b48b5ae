"""What the monitor does with supervisord's events: settle the workload that an event of a program coming to
rest names (its subscription, ``SETTLING_EVENTS``), and every workload on each TICK_5 (which repairs whatever
events were missed)."""
from __future__ import annotations

import contextlib

from cnetd.common.errors import NotFound
from cnetd.common.paths import WORKLOAD_GROUP, workload_id_of
from cnetd.core.supervisor_rpc import SETTLE_ALL_EVENT, STOPPED_STATES, Supervisor
from ledger.records import WorkloadRecord
from ledger.store import Ledger
from cnetd.monitor.eventlistener import Event
from cnetd.core.lifecycle import record_start, settle


def settle_all(ledger: Ledger, supervisor: Supervisor) -> None:
    """Settle every workload against supervisord's current view: repairs whatever events were missed."""
    infos = supervisor.workload_infos()
    for record in ledger.workloads():
        if record.remote or not record.program:
            continue  # delegated (managed where it runs), or data (no program)
        if not record.terminal or record.program in infos:
            with contextlib.suppress(NotFound):  # deleted meanwhile
                settle(ledger, supervisor, record, infos.pop(record.program, None))
    for program, info in infos.items():  # programs whose record was deleted
        if info["statename"] in STOPPED_STATES:
            supervisor.remove(program)


def on_event(event: Event, ledger: Ledger, supervisor: Supervisor) -> WorkloadRecord | None:
    """Settle what ``event`` names; the workload it named, as settled (None: no workload's, or every one's)."""
    if event.name == SETTLE_ALL_EVENT:
        settle_all(ledger, supervisor)
        return None
    if not event.name.startswith("PROCESS_STATE_") or event.payload.get("groupname") != WORKLOAD_GROUP:
        return None
    workload_id = workload_id_of(event.payload.get("processname", ""))
    if workload_id is None:
        return None
    try:
        record = ledger.get(workload_id)
        started_pid = _pid_started(event)
        if started_pid is not None and not record.terminal:
            return record_start(ledger, record, started_pid)
        return settle(ledger, supervisor, record, supervisor.info(record.program))
    except NotFound:
        return None  # deleted (meanwhile): nothing to settle


def _pid_started(event: Event) -> int | None:
    """The pid a RUNNING event names. A live record is settled from it, as from supervisord's view of the
    program (``settle`` takes no more from a RUNNING program than its pid): one question to supervisord fewer
    per start, asked while the scheduler records the same start. A process that ended meanwhile has its own
    event next; an ended record's RUNNING (started again by hand) is settled from supervisord's view."""
    pid = event.payload.get("pid", "")
    return int(pid) if event.name == "PROCESS_STATE_RUNNING" and pid.isdigit() else None
