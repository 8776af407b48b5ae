"""``python -m cnetd.monitor``: supervisord's event listener, with the health checks in a thread of its own."""
import logging
import sys

from cnetd.core.node_process import open_node_process
from cnetd.monitor.eventlistener import events
from cnetd.monitor.health import HealthChecker
from cnetd.monitor.settling import on_event, settle_all

log = logging.getLogger("monitor")


def main() -> None:
    node = open_node_process("monitor")
    supervisor = node.supervisor()
    settle_all(node.ledger, supervisor)
    health = HealthChecker(node.ledger, node.config.health_interval_s, node.config.health_start_timeout_s)
    health.start()
    for event in events(sys.stdin, sys.stdout):
        try:
            on_event(event, node.ledger, supervisor)
        except Exception:  # one bad event must not stop the listener (supervisord would queue behind it)
            log.exception("handling %s failed", event.name)
        health.wake()


main()
