"""``python -m cnetd.monitor``: supervisord's event listener, with the health checks in a thread of its own."""
from cnetd.common.http_without_tls import load_http_client_without_tls

load_http_client_without_tls()  # before the imports below bring http.client

import logging  # noqa: E402
import sys  # noqa: E402

from cnetd.common.errors import NodeStopping  # noqa: E402
from cnetd.core.supervisor_rpc import SETTLE_ALL_EVENT  # noqa: E402
from cnetd.core.node_process import open_node_process  # noqa: E402
from cnetd.monitor.eventlistener import events  # noqa: E402
from cnetd.monitor.health import HealthChecker  # noqa: E402
from cnetd.monitor.settling import on_event, settle_all  # noqa: E402

log = logging.getLogger("monitor")


def main() -> None:
    node = open_node_process("monitor")
    supervisor = node.supervisor()
    try:
        settle_all(node.ledger, supervisor)
    except NodeStopping as exc:  # stopped as it started: the node's next run settles
        log.info("%s", exc.message)
        return
    health = HealthChecker(node.ledger, node.config.health_interval_s, node.config.health_start_timeout_s)
    health.start()
    for event in events(sys.stdin, sys.stdout):
        settled = None
        try:
            settled = on_event(event, node.ledger, supervisor)
        except NodeStopping as exc:
            log.info("%s: %s not handled", exc.message, event.name)
        except Exception:  # one bad event must not stop the listener (supervisord would queue behind it)
            log.exception("handling %s failed", event.name)
        if event.name == SETTLE_ALL_EVENT or (settled is not None and settled.health_url):  # a service's program
            health.wake()  # changed state, or every workload was settled: its checks may be due now


main()
