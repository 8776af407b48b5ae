"""Finds this node's neighbours over HTTP: registers with the parent, resolves peers' mesh endpoints.

Runs as a thread of the register process; what it learns goes into the node table and is announced on
the bus (``neighbours.changed``), where the register's loop picks it up and subscribes.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from cnetd.common.protocol import compatible, incompatibility
from cnetd.core.config import NodeConfig
from cnetd.core.counters import NEIGHBOURS_INCOMPATIBLE
from cnetd.common.httpclient import TimedOut, Unreachable, node_headers, call
from ledger.nodetable import Neighbour, NodeTable, Role
from mesh.bus import BusPublisher

log = logging.getLogger("discovery")
TIMEOUT_S = 2.0
RETRY_S = 0.5  # while a neighbour is not yet reachable


class Discovery(threading.Thread):
    def __init__(self, config: NodeConfig, table: NodeTable) -> None:
        super().__init__(name="discovery", daemon=True)
        self._config = config
        self._table = table  # the process's one environment; LMDB environments are shared across threads
        self._reregister = threading.Event()
        self.parent_boot_id: str | None = None  # the parent boot we are registered with
        self.heartbeat_key: bytes | None = None  # what the parent gave to sign our heartbeats sent up (mesh.fanin)
        # Moves on each change this thread writes to the table. The register reads it each turn too: the
        # bus event alone can be lost (a PUB's first messages go before its connection is made).
        self.changes = 0
        self._resolved_peers: set[str] = set()
        self._incompatible: dict[str, str] = {}  # API address → why (another protocol major), told once

    def reregister(self) -> None:
        """The parent restarted (its boot id changed): register again now."""
        self._reregister.set()

    def run(self) -> None:
        publisher = BusPublisher(self._config.paths.bus_endpoint, "discovery")  # a socket of this thread's own
        table = self._table
        while True:
            changed = False
            if self._config.parent_address and (self.parent_boot_id is None or self._reregister.is_set()):
                self._reregister.clear()
                changed |= self._register(table)
            for address in self._config.peer_addresses:
                if address not in self._resolved_peers:
                    changed |= self._resolve_peer(table, address)
            if changed:
                self.changes += 1
                publisher.neighbours_changed()
            # Not reached yet: asked again soon. Of another protocol major: asked each period (it may be upgraded).
            unresolved = ((self._config.parent_address and self.parent_boot_id is None)
                          or len(self._resolved_peers) < len(self._config.peer_addresses)) and not self._incompatible
            self._reregister.wait(RETRY_S if unresolved else self._config.heartbeat_period_s)

    def _health(self, api_url: str) -> dict | None:
        try:
            status, body = call("GET", f"{api_url}/api/health", timeout_s=TIMEOUT_S)
        except (Unreachable, TimedOut) as exc:
            log.info("neighbour not reachable yet: %s", exc)
            return None
        return body if status == 200 and isinstance(body, dict) and "mesh_endpoint" in body else None

    def _compatible(self, table: NodeTable, role: str, api_url: str, health: dict[str, Any]) -> bool:
        """Whether the neighbour at ``api_url`` speaks this node's protocol major; if not, its entry says so
        (shown by ``cnet nodes`` and the console, never used for delegation), once in the log and the metric."""
        version, agent = health.get("protocol"), health.get("version")
        if compatible(version if isinstance(version, str) else None):
            self._incompatible.pop(api_url, None)
            return True
        reason = incompatibility(version if isinstance(version, str) else None, agent if isinstance(agent, str) else None)
        if self._incompatible.get(api_url) != reason:
            self._incompatible[api_url] = reason
            NEIGHBOURS_INCOMPATIBLE.labels(role).inc()
            log.error("%s %s at %s: %s", role, health["node"], api_url, reason)
        table.upsert(Neighbour(health["node"], role, api_url, health["mesh_endpoint"], incompatible=reason))
        return False

    def _register(self, table: NodeTable) -> bool:
        api_url = f"http://{self._config.parent_address}"
        health = self._health(api_url)
        if health is None:
            return False
        if health["node"] == self._config.node_id:
            log.error("parent.address %s is this node itself; not registering", api_url)
            self.parent_boot_id = health["boot_id"]
            return False
        if not self._compatible(table, Role.PARENT, api_url, health):
            return True
        registration = {"node_id": self._config.node_id, "api_url": self._config.api_url,
                        "mesh_endpoint": self._config.mesh_endpoint, "fan_in": True}
        try:
            status, body = call("POST", f"{api_url}/api/nodes/register", registration, timeout_s=TIMEOUT_S,
                                headers=node_headers(self._config.auth_token))
        except (Unreachable, TimedOut) as exc:
            log.info("registration with parent failed: %s", exc)
            return False
        if status != 200:
            log.warning("parent refused registration: %s %s", status, body)
            return False
        # A parent of protocol 1.1 gives no key: it subscribes to our mesh endpoint instead.
        self.heartbeat_key = _key(body.get("heartbeat_key") if isinstance(body, dict) else None)
        self.parent_boot_id = health["boot_id"]  # before the register can see the parent's heartbeats
        table.upsert(Neighbour(health["node"], Role.PARENT, api_url, health["mesh_endpoint"]))
        log.info("registered with parent %s at %s", health["node"], api_url)
        return True

    def _resolve_peer(self, table: NodeTable, address: str) -> bool:
        api_url = f"http://{address}"
        health = self._health(api_url)
        if health is None:
            return False
        if health["node"] == self._config.node_id:
            self._resolved_peers.add(address)
            log.error("peers.addresses lists this node itself (%s); ignoring it", address)
            return False
        if not self._compatible(table, Role.PEER, api_url, health):
            return True
        self._resolved_peers.add(address)
        table.upsert(Neighbour(health["node"], Role.PEER, api_url, health["mesh_endpoint"]))
        log.info("peer %s at %s", health["node"], api_url)
        return True


def _key(value: Any) -> bytes | None:
    """The heartbeat key a registration's answer carries (hex), or None when it carries none."""
    try:
        return bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        log.warning("the parent's heartbeat key is not hex; sending no heartbeats up")
        return None
