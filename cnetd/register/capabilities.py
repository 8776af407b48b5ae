"""What this node can run, probed again and again (a container engine may come or go), in a thread of the
register: the ledger keeps it for the scheduler's placement here, and the heartbeat carries it to neighbours."""
from __future__ import annotations

import logging
import threading
import time

from cnetd.core.capabilities import capabilities
from cnetd.core.node_process import NodeProcess

log = logging.getLogger("capabilities")
PROBE_INTERVAL_S = 30.0


class CapabilityProbe(threading.Thread):
    def __init__(self, node: NodeProcess) -> None:
        super().__init__(name="capabilities", daemon=True)
        self._node = node

    def run(self) -> None:
        while True:
            time.sleep(PROBE_INTERVAL_S)
            try:
                found = capabilities(self._node.config)
                if self._node.ledger.set_capabilities(found):
                    log.info("this node now offers %s", ", ".join(found["features"]) or "nothing")
            except Exception:
                log.exception("probing what this node offers failed")
