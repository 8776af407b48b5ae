"""The monitor: supervisord event listener that moves workload records as their programs change state."""
from __future__ import annotations

import logging
import sys

from cnetd.common.errors import NotFound
from cnetd.node_process import open_node_process
from cnetd.paths import WORKLOAD_GROUP, workload_id_of
from cnetd.supervisor_rpc import STOPPED_STATES, Supervisor
from ledger.store import Ledger
from cnetd.eventlistener import Event, events
from cnetd.health import HealthChecker
from cnetd.lifecycle import settle

log = logging.getLogger("monitor")
SETTLE_ALL_EVENT = "TICK_5"


def settle_all(ledger: Ledger, supervisor: Supervisor) -> None:
    """Settle every workload against supervisord's current view: repairs whatever events were missed."""
    infos = supervisor.workload_infos()
    for record in ledger.workloads():
        if record.remote or not record.program:
            continue  # delegated (managed where it runs), or data (no program)
        if not record.terminal or record.program in infos:
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
    except NotFound:
        return
    settle(ledger, supervisor, record, supervisor.info(record.program))


def main() -> None:
    node = open_node_process("monitor")
    supervisor = node.supervisor()
    settle_all(node.ledger, supervisor)
    HealthChecker(node.ledger, node.config.health_interval_s, node.config.health_start_timeout_s).start()
    for event in events(sys.stdin, sys.stdout):
        try:
            on_event(event, node.ledger, supervisor)
        except Exception:  # one bad event must not stop the listener (supervisord would queue behind it)
            log.exception("handling %s failed", event.name)


if __name__ == "__main__":
    main()
