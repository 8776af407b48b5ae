"""The register process: this node's heartbeats out, its neighbours' heartbeats in.

Publishes a heartbeat on the mesh endpoint at once on every ledger change, whenever a child's subtree
changes, and every ``heartbeat_period_s``; subscribes to the parent, children and peers in the node table
and records what they announce. Malformed messages are dropped and counted. Each neighbour endpoint has
its own SUB socket, so a heartbeat's sender is known: it counts only for a node registered at the
endpoint it came from (a publisher cannot speak for another node).
"""
from __future__ import annotations

import collections
import logging
import time
from typing import Callable, Iterator, TypeVar

import zmq
from prometheus_client import Counter

from cnetd.register.capabilities import CapabilityProbe
from cnetd.register.discovery import Discovery
from cnetd.core.metrics import (HEARTBEATS_DROPPED, HEARTBEATS_RECEIVED, HEARTBEATS_SENT, NEIGHBOURS_FORGOTTEN,
                           NEIGHBOURS_SKIPPED)
from cnetd.core.node_process import NodeProcess
from ledger import boot_clock
from ledger.nodetable import Role
from mesh import curve
from mesh.bus import bind_bus_subscriber, context
from mesh.liveness import keep_mesh_socket_alive
from mesh.messages import (HEARTBEAT_LIVENESS, HEARTBEAT_TOPIC, LEDGER_CHANGED, NEIGHBOURS_CHANGED, BusEvent,
                           Heartbeat, IncompatibleMessage, MalformedMessage)
from mesh.summary import subtree_summary

log = logging.getLogger("register")
T = TypeVar("T")


class Register:
    def __init__(self, node: NodeProcess) -> None:
        self._node = node
        self._config = node.config
        self._boot_id = node.ledger.identity()["boot_id"]
        self._bus = bind_bus_subscriber(node.config.paths.bus_endpoint)
        # XPUB, verbose: every new subscriber is seen, and gets a heartbeat at once (no slow-joiner wait).
        self._mesh = context().socket(zmq.XPUB)
        self._mesh.setsockopt(zmq.LINGER, 0)
        self._mesh.setsockopt(zmq.XPUB_VERBOSE, 1)
        keep_mesh_socket_alive(self._mesh, node.config.heartbeat_period_s)
        self._keys = node.config.curve_keys
        self._authenticator: curve.ClusterAuthenticator | None = None  # held: its ZAP thread lives with it
        if self._keys is not None:  # CURVE: only holders of the cluster key read or feed heartbeats
            self._authenticator = curve.ClusterAuthenticator(context(), self._keys)
            curve.serve(self._mesh, self._keys)
        self._mesh.bind(node.config.mesh_bind_endpoint)
        self._poller = zmq.Poller()
        self._subscriptions: dict[str, zmq.Socket] = {}  # neighbour mesh endpoint → its SUB socket
        self._senders: dict[str, set[str]] = {}  # endpoint → the node ids registered there
        self._refused_endpoints: set[str] = set()  # entries zmq cannot connect to: skipped, counted once
        self._discovery = Discovery(node.config, node.nodes)
        self._seq = 0
        self.malformed = 0

    # -- outgoing -------------------------------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        ledger, config = self._node.ledger, self._config
        usage = ledger.usage()
        counts = collections.Counter(record.status for record in ledger.workloads() if not record.remote)
        now = boot_clock.now()
        child_subtrees = [neighbour.heartbeat["subtree"] for neighbour in self._node.nodes.all()
                          if neighbour.role == Role.CHILD and neighbour.heartbeat
                          and neighbour.online(config.heartbeat_period_s, HEARTBEAT_LIVENESS, now)]
        self._seq += 1
        capabilities = ledger.capabilities()
        return Heartbeat(node_id=config.node_id, seq=self._seq, boot_id=self._boot_id, api_url=config.api_url,
                         mesh_endpoint=config.mesh_endpoint, capacity=usage.capacity.to_dict(),
                         allocated=usage.allocated.to_dict(), available=usage.available.to_dict(),
                         workloads=dict(counts), subtree=subtree_summary(usage, child_subtrees, capabilities),
                         ledger_version=ledger.version(), gpus=ledger.gpus(),
                         features=capabilities.get("features"), labels=capabilities.get("labels"))

    # -- loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        self._subscribe_known()
        self._discovery.start()
        CapabilityProbe(self._node).start()
        self._poller.register(self._bus, zmq.POLLIN)
        self._poller.register(self._mesh, zmq.POLLIN)
        period_s = self._config.heartbeat_period_s
        next_beat = time.monotonic()
        while True:
            ready = dict(self._poller.poll(max(0.0, next_beat - time.monotonic()) * 1000))
            triggered = False
            if self._bus in ready:
                triggered |= self._drain_bus()
            for endpoint, socket in list(self._subscriptions.items()):
                if socket in ready:
                    triggered |= self._drain_neighbour(endpoint, socket)
            if self._mesh in ready:
                triggered |= self._drain_subscriptions()
            if triggered or time.monotonic() >= next_beat:
                if time.monotonic() >= next_beat:
                    self._forget_silent_children()
                self._mesh.send_multipart(self.heartbeat().encode())
                HEARTBEATS_SENT.inc()
                next_beat = time.monotonic() + period_s

    def _drain_bus(self) -> bool:
        """Consume waiting bus events; True if the ledger changed (one heartbeat answers a burst)."""
        ledger_changed = neighbours_changed = False
        for event in self._waiting(self._bus, BusEvent.decode, "bus"):
            if event.topic == LEDGER_CHANGED:
                ledger_changed = True
            elif event.topic == NEIGHBOURS_CHANGED:
                neighbours_changed = True
        if neighbours_changed:  # one re-read of the table for a burst of registrations
            self._subscribe_known()
        return ledger_changed

    def _drain_neighbour(self, endpoint: str, socket: zmq.Socket) -> bool:
        """Record the heartbeats waiting from ``endpoint``; True if a child's subtree changed (ours changes
        with it)."""
        subtree_changed = False
        stale_after_s = self._config.heartbeat_period_s * HEARTBEAT_LIVENESS
        for beat in self._waiting(socket, Heartbeat.decode, "mesh", HEARTBEATS_DROPPED):
            if beat.node_id not in self._senders.get(endpoint, ()):
                HEARTBEATS_DROPPED.labels("wrong_sender").inc()
                log.warning("dropped a heartbeat in the name of %r from %s, where %s is registered",
                            beat.node_id[:100], endpoint, ", ".join(sorted(self._senders.get(endpoint, ()))) or "nobody")
                continue
            previous = None if beat.node_id == self._config.node_id else \
                self._node.nodes.record_heartbeat(beat.node_id, beat.to_dict(), boot_clock.now(), stale_after_s)
            if previous is None:
                HEARTBEATS_DROPPED.labels("unknown_sender").inc()
                continue  # not a neighbour of ours (an old endpoint, or a misconfigured loop)
            HEARTBEATS_RECEIVED.inc()
            last = previous.heartbeat
            if last is not None and last["boot_id"] == beat.boot_id and beat.seq > last["seq"] + 1:
                HEARTBEATS_DROPPED.labels("lost").inc(beat.seq - last["seq"] - 1)  # PUB/SUB dropped them
            was_online = previous.online(self._config.heartbeat_period_s, HEARTBEAT_LIVENESS)
            if previous.role == Role.CHILD and (not was_online or previous.heartbeat is None
                                                or previous.heartbeat["subtree"] != beat.subtree):
                subtree_changed = True
            registered_with = self._discovery.parent_boot_id
            if previous.role == Role.PARENT and registered_with is not None and beat.boot_id != registered_with:
                self._discovery.reregister()  # the parent restarted: make sure it knows us
        return subtree_changed

    def _drain_subscriptions(self) -> bool:
        """True if someone new subscribed to our heartbeats (XPUB hands us b"\\x01" + topic)."""
        subscribed = False
        while self._mesh.poll(0):
            subscribed |= self._mesh.recv()[:1] == b"\x01"
        return subscribed

    def _subscribe_known(self) -> None:
        senders: dict[str, set[str]] = collections.defaultdict(set)
        for neighbour in self._node.nodes.all():
            if neighbour.mesh_endpoint != self._config.mesh_endpoint and not neighbour.incompatible:
                senders[neighbour.mesh_endpoint].add(neighbour.node_id)
        self._senders = dict(senders)
        for endpoint in set(self._subscriptions) - set(senders):
            socket = self._subscriptions.pop(endpoint)
            self._poller.unregister(socket)
            socket.close()
        for endpoint in set(senders) - set(self._subscriptions) - self._refused_endpoints:
            socket = self._subscriber()
            try:
                socket.connect(endpoint)
            except zmq.ZMQError as exc:  # one bad entry must not stop every heartbeat
                socket.close()
                self._refused_endpoints.add(endpoint)
                NEIGHBOURS_SKIPPED.inc()
                log.warning("skipped a node-table entry: cannot subscribe to %r: %s", endpoint[:200], exc)
                continue
            self._subscriptions[endpoint] = socket
            self._poller.register(socket, zmq.POLLIN)

    def _subscriber(self) -> zmq.Socket:
        socket = context().socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        keep_mesh_socket_alive(socket, self._config.heartbeat_period_s)
        if self._keys is not None:
            curve.join(socket, self._keys)
        socket.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_TOPIC)
        socket.setsockopt(zmq.RCVHWM, 10_000)
        return socket

    def _forget_silent_children(self) -> None:
        """Drop children offline for longer than ``mesh.forget_after_s`` (never heard of: since they registered)."""
        now, forget_after_s = boot_clock.now(), self._config.mesh_forget_after_s
        silent = [neighbour for neighbour in self._node.nodes.all() if neighbour.role == Role.CHILD
                  and now - (neighbour.last_seen or neighbour.added_at or now) > forget_after_s]
        for neighbour in silent:
            self._node.nodes.remove(neighbour.node_id)
            NEIGHBOURS_FORGOTTEN.inc()
            log.info("forgot child %s: offline for more than %g s (mesh.forget_after_s)", neighbour.node_id,
                     forget_after_s)
        if silent:
            self._subscribe_known()

    def _waiting(self, socket: zmq.Socket, decode: Callable[[list[bytes]], T], source: str,
                 dropped_metric: Counter | None = None) -> Iterator[T]:
        """Every message waiting on ``socket``, decoded; malformed ones are dropped, logged and counted (in
        ``dropped_metric`` too, when given: ``incompatible`` for another protocol major, else ``malformed``)."""
        while socket.poll(0):
            try:
                yield decode(socket.recv_multipart())
            except MalformedMessage as exc:
                self.malformed += 1
                if dropped_metric is not None:
                    dropped_metric.labels("incompatible" if isinstance(exc, IncompatibleMessage) else "malformed").inc()
                log.warning("dropped malformed %s message (%d so far): %s", source, self.malformed, exc)
