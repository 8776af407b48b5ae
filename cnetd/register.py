"""The register process: publishes this node's heartbeat on its mesh endpoint, at once on every ledger change."""
from __future__ import annotations

import collections
import logging
import time

import zmq

from cnetd.node_process import NodeProcess, open_node_process
from mesh.bus import bind_bus_subscriber, context
from mesh.messages import Heartbeat, LedgerChanged, MalformedMessage

log = logging.getLogger("register")


class Register:
    """Turns ledger-change events into triggered heartbeats and keeps a periodic one going for liveness."""

    def __init__(self, node: NodeProcess) -> None:
        self._node = node
        self._bus = bind_bus_subscriber(node.config.paths.bus_endpoint)
        self._mesh = context().socket(zmq.PUB)
        self._mesh.setsockopt(zmq.LINGER, 0)
        self._mesh.bind(node.config.mesh_endpoint)
        self._seq = 0
        self.malformed_events = 0

    def heartbeat(self) -> Heartbeat:
        ledger, config = self._node.ledger, self._node.config
        usage = ledger.usage()
        counts = collections.Counter(record.status for record in ledger.workloads())
        self._seq += 1
        return Heartbeat(node_id=config.node_id, seq=self._seq, api_url=config.api_url,
                         capacity=usage.capacity.to_dict(), allocated=usage.allocated.to_dict(),
                         available=usage.available.to_dict(), workloads=dict(counts),
                         ledger_version=ledger.version())

    def run(self) -> None:
        period_s = self._node.config.heartbeat_period_s
        next_beat = time.monotonic()
        while True:
            wait_ms = max(0.0, next_beat - time.monotonic()) * 1000
            if self._bus.poll(wait_ms):
                self._drain_bus()
            self._mesh.send_multipart(self.heartbeat().encode())
            next_beat = time.monotonic() + period_s

    def _drain_bus(self) -> None:
        """Consume every waiting event: one heartbeat answers a burst of changes."""
        while self._bus.poll(0):
            frames = self._bus.recv_multipart()
            try:
                LedgerChanged.decode(frames)
            except MalformedMessage as exc:
                self.malformed_events += 1
                log.warning("dropped malformed bus message (%d so far): %s", self.malformed_events, exc)


def main() -> None:
    Register(open_node_process("register")).run()


if __name__ == "__main__":
    main()
