"""What the monitor does with supervisord's events: settle the workload that an event of a program coming to
rest names (its subscription, ``SETTLING_EVENTS``), and every workload on each TICK_5 (which repairs whatever
events were missed)."""
from __future__ import annotations

import contextlib

from cnetd.common.errors import NotFound
from cnetd.common.paths import WORKLOAD_GROUP, workload_id_of
from cnetd.core.supervisor_rpc import SETTLE_ALL_EVENT, STOPPED_STATES, Supervisor
from ledger.store import Ledger
from cnetd.monitor.eventlistener import Event
from cnetd.core.lifecycle import settle


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


def on_event(event: Event, ledger: Ledger, supervisor: Supervisor) -> None:
    if event.name == SETTLE_ALL_EVENT:
        settle_all(ledger, supervisor)
        return
    if not event.name.startswith("PROCESS_STATE_") or event.payload.get("groupname") != WORKLOAD_GROUP:
        return
    workload_id = workload_id_of(event.payload.get("processname", ""))
    if workload_id is None:
        return
    try:
        record = ledger.get(workload_id)
        settle(ledger, supervisor, record, supervisor.info(record.program))
    except NotFound:
        return  # deleted (meanwhile): nothing to settle
