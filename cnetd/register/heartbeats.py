"""The register process: this node's heartbeats out, its neighbours' heartbeats in.

Publishes a heartbeat on the mesh endpoint at once on every ledger change, whenever a child's subtree
changes, and every ``heartbeat_period_s``, and records what its neighbours announce. Malformed messages are
dropped and counted. Heartbeats come in two ways, and each way knows its sender:

- Children send theirs up (``mesh.fanin``), over the connection each holds to this node's mesh endpoint:
  they all arrive on the one XPUB socket, each signed with its sender's key. This node connects one XSUB
  socket to its own parent the same way: the parent's heartbeats come down it, and ours go up.
- Peers, and children of protocol 1.1 (which send nothing up), are subscribed to: a SUB socket per mesh
  endpoint, whose heartbeats count only for a node registered at that endpoint.

A parent's work per period grows with its children's heartbeats, not with a pass over its node table: they
are recorded in one transaction per burst, the subtree summary is made from what this process keeps of
them, and the table is read again only when neighbours change (at most every ``RESCAN_S``) or to forget
the silent.
"""
from __future__ import annotations

import collections
import logging
import time
from typing import Callable, Iterator, NamedTuple, TypeVar

import zmq

from cnetd.common.metric_files import Counter
from cnetd.register.capabilities import CapabilityProbe
from cnetd.register.discovery import Discovery
from cnetd.core.counters import (HEARTBEATS_DROPPED, HEARTBEATS_RECEIVED, HEARTBEATS_SENT, NEIGHBOURS_FORGOTTEN,
                            NEIGHBOURS_SKIPPED)
from cnetd.core.node_process import NodeProcess
from ledger import boot_clock
from ledger.nodetable import Role
from mesh import curve
from mesh.bus import bind_bus_subscriber, context
from mesh.fanin import SUBSCRIBE, is_subscription, signed, verified
from mesh.liveness import (PUBLISHER_INTERVAL_PERIODS, PUBLISHER_UNACKNOWLEDGED_PERIODS, UPLINK_INTERVAL_PERIODS,
                           ZMTP_INTERVAL_PERIODS, keep_mesh_socket_alive)
from mesh.messages import (HEARTBEAT_LIVENESS, HEARTBEAT_TOPIC, LEDGER_CHANGED, MAX_MESSAGE_BYTES, NEIGHBOURS_CHANGED,
                           BusEvent, Heartbeat, MalformedMessage)
from mesh.summary import subtree_summary

log = logging.getLogger("register")
T = TypeVar("T")
RESCAN_S = 0.5  # the node table is read again at most this often while registrations arrive
CALM_FACTOR = 10  # after a heartbeat that took t, the next triggered one waits 10 t (small trees: microseconds)
MESH_BACKLOG = 4096  # connections waiting to be accepted: thousands of children reconnect at once after a restart
DRAIN_MAX = 10_000  # messages taken from one socket per turn of the loop
FORGET_CHECKS = 20  # silent children are looked for this many times per mesh.forget_after_s (at most each period)
Received = tuple[Heartbeat, bytes]  # a heartbeat, and its message's JSON as it came (what the node table keeps)


class Heard(NamedTuple):
    """What this process keeps of a neighbour's last heartbeat: enough to tell lost ones, a changed subtree,
    and what consoles show, without reading the node table per heartbeat."""

    at: float  # boot_clock stamp of its arrival
    role: str
    boot_id: str
    seq: int
    ledger_version: int
    subtree: dict

    @classmethod
    def of(cls, beat: Heartbeat, role: str, at: float) -> Heard:
        return cls(at, role, beat.boot_id, beat.seq, beat.ledger_version, beat.subtree)


def subtree_moved(last: Heard | None, beat: Heartbeat, now: float, stale_after_s: float) -> bool:
    """Whether ``beat`` changes its sender's part of a summary: a new subtree, or the sender back after
    ``stale_after_s`` of silence (or heard for the first time)."""
    return last is None or now - last.at >= stale_after_s or last.subtree != beat.subtree


def shows_change(last: Heard | None, beat: Heartbeat, now: float, stale_after_s: float) -> bool:
    """Whether ``beat`` changes what consoles show of its sender: its subtree as above, or its ledger version.
    Seq and times do not."""
    return subtree_moved(last, beat, now, stale_after_s) or (last is not None and last.ledger_version != beat.ledger_version)


class Register:
    def __init__(self, node: NodeProcess) -> None:
        self._node = node
        self._config = node.config
        self._boot_id = node.ledger.identity()["boot_id"]
        self._secret = node.nodes.fan_in_secret()
        self._bus = bind_bus_subscriber(node.config.paths.bus_endpoint)
        # XPUB, verbose: every new subscriber is seen, and gets a heartbeat at once (no slow-joiner wait);
        # children's heartbeats sent up arrive here too.
        self._mesh = context().socket(zmq.XPUB)
        self._mesh.setsockopt(zmq.LINGER, 0)
        self._mesh.setsockopt(zmq.XPUB_VERBOSE, 1)
        self._mesh.setsockopt(zmq.BACKLOG, MESH_BACKLOG)
        # Anyone who reaches the mesh port can send up (a signature is checked on what arrives): a frame larger
        # than any message ends its sender's connection at the frame's header, before ZeroMQ holds any of it (a
        # child's uplink connects again). Not on the SUB sockets: libzmq ends a connecting socket's session for
        # good on such a frame, and the neighbours they hear registered with the cluster's token.
        self._mesh.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        keep_mesh_socket_alive(self._mesh, node.config.heartbeat_period_s, PUBLISHER_INTERVAL_PERIODS,
                               PUBLISHER_UNACKNOWLEDGED_PERIODS)
        self._keys = node.config.curve_keys
        self._authenticator: curve.ClusterAuthenticator | None = None  # held: its ZAP thread lives with it
        if self._keys is not None:  # CURVE: only holders of the cluster key read or feed heartbeats
            self._authenticator = curve.ClusterAuthenticator(context(), self._keys)
            curve.serve(self._mesh, self._keys)
        self._mesh.bind(node.config.mesh_bind_endpoint)
        self._poller = zmq.Poller()
        self._subscriptions: dict[str, zmq.Socket] = {}  # neighbour mesh endpoint → its SUB (the parent's: XSUB)
        self._senders: dict[str, set[str]] = {}  # endpoint → the node ids registered there
        self._uplink: str | None = None  # the parent's mesh endpoint, where our heartbeats go up
        self._uplink_events: zmq.Socket | None = None  # its monitor: each (re)connection sends a heartbeat up
        self._uplink_heard = time.monotonic()  # the parent's last heartbeat (or the uplink's making)
        self._refused_endpoints: set[str] = set()  # entries zmq cannot connect to: skipped, counted once
        self._heard: dict[str, Heard] = {}  # neighbour id → its last heartbeat, as far as this process needs it
        self._rescan_due, self._rescanned_at = False, 0.0
        self._online_told: int | None = None
        self._forget_every_s = max(self._config.heartbeat_period_s, self._config.mesh_forget_after_s / FORGET_CHECKS)
        self._discovery = Discovery(node.config, node.nodes)
        self._discovery_changes = 0
        self._seq = 0
        self.malformed = 0

    # -- outgoing -------------------------------------------------------------------------------

    def heartbeat(self, child_subtrees: list[dict]) -> Heartbeat:
        """This node's heartbeat, its subtree summed over ``child_subtrees`` (its online children's)."""
        ledger, config = self._node.ledger, self._config
        usage = ledger.usage()
        self._seq += 1
        capabilities = ledger.capabilities()
        return Heartbeat(node_id=config.node_id, seq=self._seq, boot_id=self._boot_id, api_url=config.api_url,
                         mesh_endpoint=config.mesh_endpoint, capacity=usage.capacity.to_dict(),
                         allocated=usage.allocated.to_dict(), available=usage.available.to_dict(),
                         workloads=ledger.status_counts(), subtree=subtree_summary(usage, child_subtrees, capabilities),
                         ledger_version=ledger.version(), gpus=ledger.gpus(),
                         features=capabilities.get("features"), labels=capabilities.get("labels"))

    def _send(self) -> None:
        """Publish a heartbeat to subscribers, and send it up to the parent when it gave us a key."""
        fresh = self._fresh_subtrees()
        frames = self.heartbeat(fresh).encode()
        self._mesh.send_multipart(frames)
        key, uplink = self._discovery.heartbeat_key, self._subscriptions.get(self._uplink or "")
        if key is not None and uplink is not None:
            uplink.send_multipart(signed(frames, key), flags=zmq.NOBLOCK)  # XSUB drops, never blocks, when full
        HEARTBEATS_SENT.inc()
        online = len(fresh)
        if online != self._online_told:  # for /api/nodes' summary, which reads no heartbeat
            self._node.nodes.set_children_online(online)
            self._online_told = online

    def _fresh_subtrees(self) -> list[dict]:
        """The subtrees of the children heard from within the liveness window."""
        fresh_since = boot_clock.now() - self._config.heartbeat_period_s * HEARTBEAT_LIVENESS
        return [heard.subtree for heard in self._heard.values() if heard.role == Role.CHILD and heard.at > fresh_since]

    # -- loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        self._subscribe_known()
        self._discovery.start()
        CapabilityProbe(self._node).start()
        self._poller.register(self._bus, zmq.POLLIN)
        self._poller.register(self._mesh, zmq.POLLIN)
        period_s = self._config.heartbeat_period_s
        next_beat = next_forget = calm_until = time.monotonic()
        triggered = False  # a change to announce: sent once the last heartbeat's calm has passed
        while True:
            wake_at = min(next_beat, calm_until) if triggered else next_beat
            wake_at = min(wake_at, self._rescanned_at + RESCAN_S) if self._rescan_due else wake_at
            ready = dict(self._poller.poll(max(0.0, wake_at - time.monotonic()) * 1000))
            if self._bus in ready:
                triggered |= self._drain_bus()
            for endpoint, socket in list(self._subscriptions.items()):
                if socket in ready:
                    triggered |= self._drain_neighbour(endpoint, socket)
            if self._mesh in ready:
                triggered |= self._drain_mesh()
            if self._uplink_events is not None and self._uplink_events in ready:
                triggered |= self._drain_uplink_events()
            if self._discovery.changes != self._discovery_changes:  # registered, or a peer found
                self._discovery_changes, self._rescan_due = self._discovery.changes, True
            if self._uplink_silent():
                self._close_subscription(self._uplink or "")  # connected again by the rescan below
                self._rescan_due, self._rescanned_at = True, 0.0
            if self._rescan_due and time.monotonic() >= self._rescanned_at + RESCAN_S:
                self._subscribe_known()
                triggered = True  # registered again (a new key, a parent that forgot us): tell it at once
            if time.monotonic() >= next_forget:
                self._forget_silent_children()
                next_forget = time.monotonic() + self._forget_every_s
            if (triggered and time.monotonic() >= calm_until) or time.monotonic() >= next_beat:
                started = time.monotonic()
                self._send()
                # A heartbeat costs more with more children (their summary, a send to each): triggered ones
                # wait CALM_FACTOR times that, so they take at most about a tenth of the process's time.
                calm_until = time.monotonic() + CALM_FACTOR * (time.monotonic() - started)
                next_beat, triggered = time.monotonic() + period_s, False

    def _drain_bus(self) -> bool:
        """Consume waiting bus events; True if the ledger changed (one heartbeat answers a burst). Neighbours
        changed: the table is read again (once for a burst of registrations, at most every RESCAN_S)."""
        ledger_changed = False
        for event in self._waiting(self._bus, BusEvent.decode, "bus"):
            if event.topic == LEDGER_CHANGED:
                ledger_changed = True
            elif event.topic == NEIGHBOURS_CHANGED:
                self._rescan_due = True
        return ledger_changed

    def _drain_neighbour(self, endpoint: str, socket: zmq.Socket) -> bool:
        """Record the heartbeats waiting from ``endpoint``, each from a node registered there; True if a
        child's subtree changed (ours changes with it)."""
        accepted: list[Received] = []
        for beat, payload in self._waiting(socket, _received, "mesh", HEARTBEATS_DROPPED):
            if beat.node_id in self._senders.get(endpoint, ()):
                accepted.append((beat, payload))
                continue
            HEARTBEATS_DROPPED.labels("wrong_sender").inc()
            log.warning("dropped a heartbeat in the name of %r from %s, where %s is registered",
                        beat.node_id[:100], endpoint, ", ".join(sorted(self._senders.get(endpoint, ()))) or "nobody")
        return self._record(accepted, sent_up=False)

    def _drain_mesh(self) -> bool:
        """Take what waits on the mesh socket: new subscribers (True: they get a heartbeat now), and
        children's heartbeats sent up, each signed with its sender's key (True if a child's subtree changed)."""
        subscribed, sent_up = False, []
        for taken in self._waiting(self._mesh, self._sent_up, "mesh", HEARTBEATS_DROPPED):
            if isinstance(taken, bool):
                subscribed |= taken
            else:
                sent_up.append(taken)
        return self._record(sent_up, sent_up=True) or subscribed

    def _sent_up(self, frames: list[bytes]) -> Received | bool:
        """What came on the mesh socket: a subscription (True: a new subscriber), or a child's heartbeat,
        verified (``WrongSender``, a ``MalformedMessage``, otherwise)."""
        if is_subscription(frames):
            return frames[0][:1] == SUBSCRIBE
        return verified(frames, self._secret), frames[1]

    def _record(self, received: list[Received], sent_up: bool) -> bool:
        """Store accepted heartbeats in one transaction; True if a child's subtree changed. One sent up counts
        only for a child that registered to send up (a node of another role has no business sending up)."""
        if not received:
            return False
        now, stale_after_s = boot_clock.now(), self._config.heartbeat_period_s * HEARTBEAT_LIVENESS
        received = [(beat, payload) for beat, payload in received if beat.node_id != self._config.node_id]
        news = {beat.node_id for beat, _ in received
                if shows_change(self._heard.get(beat.node_id), beat, now, stale_after_s)}
        roles = self._node.nodes.record_heartbeats(
            [(beat.node_id, payload) for beat, payload in received], now, news,
            accept=(lambda known: known.get("role") == Role.CHILD and known.get("fan_in") is True) if sent_up else None)
        subtree_changed, counted = False, 0
        for (beat, _), role in zip(received, roles):
            if role is None:
                HEARTBEATS_DROPPED.labels("unknown_sender").inc()
                continue  # not a neighbour of ours (an old endpoint, or a misconfigured loop)
            counted += 1
            last = self._heard.get(beat.node_id)
            if last is not None and last.boot_id == beat.boot_id and beat.seq > last.seq + 1:
                HEARTBEATS_DROPPED.labels("lost").inc(beat.seq - last.seq - 1)  # PUB/SUB dropped them
            if role == Role.CHILD:
                subtree_changed |= subtree_moved(last, beat, now, stale_after_s)
            self._heard[beat.node_id] = Heard.of(beat, role, now)
            if role == Role.PARENT:
                self._uplink_heard = time.monotonic()
                registered_with = self._discovery.parent_boot_id
                if registered_with is not None and beat.boot_id != registered_with:
                    self._discovery.reregister()  # the parent restarted: make sure it knows us
        HEARTBEATS_RECEIVED.inc(counted)  # once for a burst: each inc writes the metrics file
        return subtree_changed

    def _subscribe_known(self) -> None:
        """Read the node table: subscribe to the neighbours that do not send up (closing what is gone), and
        take the children's last heartbeats (after a restart of this process, the summary needs them)."""
        self._rescan_due, self._rescanned_at = False, time.monotonic()
        senders: dict[str, set[str]] = collections.defaultdict(set)
        heard: dict[str, Heard] = {}
        self._uplink = None
        for neighbour in self._node.nodes.all():
            beat = neighbour.heartbeat
            if neighbour.last_seen is not None and beat:
                heard[neighbour.node_id] = Heard(neighbour.last_seen, neighbour.role, beat["boot_id"], beat["seq"],
                                                 beat["ledger_version"], beat["subtree"])
            if neighbour.mesh_endpoint == self._config.mesh_endpoint or neighbour.incompatible or neighbour.fan_in:
                continue
            senders[neighbour.mesh_endpoint].add(neighbour.node_id)
            if neighbour.role == Role.PARENT:
                self._uplink = neighbour.mesh_endpoint
        self._heard = heard
        self._senders = dict(senders)
        for endpoint in set(self._subscriptions) - set(senders):
            self._close_subscription(endpoint)
        for endpoint in set(senders) - set(self._subscriptions) - self._refused_endpoints:
            socket = self._subscriber(zmq.XSUB if endpoint == self._uplink else zmq.SUB)
            if socket.type == zmq.XSUB:
                self._watch_uplink(socket)
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

    def _close_subscription(self, endpoint: str) -> None:
        socket = self._subscriptions.pop(endpoint, None)
        if socket is None:
            return
        self._poller.unregister(socket)
        if socket.type == zmq.XSUB:
            self._unwatch_uplink(socket)
        socket.close()

    def _uplink_silent(self) -> bool:
        """The parent has not been heard for the liveness window: its connection may be half-open (a
        partition), which the uplink's lack of ZMTP pings would not notice; it is made anew."""
        silent_for = time.monotonic() - self._uplink_heard
        return self._uplink in self._subscriptions and silent_for > self._config.heartbeat_period_s * HEARTBEAT_LIVENESS

    def _watch_uplink(self, socket: zmq.Socket) -> None:
        """Watch the parent connection: a heartbeat goes up on each handshake, as the parent's XPUB sends
        one down on each subscription (a parent back from a restart or a partition hears from us at once)."""
        self._uplink_events = socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._uplink_heard = time.monotonic()
        self._poller.register(self._uplink_events, zmq.POLLIN)

    def _unwatch_uplink(self, socket: zmq.Socket) -> None:
        if self._uplink_events is not None:
            self._poller.unregister(self._uplink_events)
            socket.disable_monitor()
            self._uplink_events.close()
            self._uplink_events = None

    def _drain_uplink_events(self) -> bool:
        """True if the parent connection was (re)made since the last look."""
        events = self._uplink_events
        made = False
        while events is not None and events.poll(0):
            events.recv_multipart()
            made = True
        return made

    def _subscriber(self, kind: int) -> zmq.Socket:
        """A SUB socket for a neighbour's heartbeats; XSUB for the parent's, which also carries ours up."""
        socket = context().socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        keep_mesh_socket_alive(socket, self._config.heartbeat_period_s,
                               UPLINK_INTERVAL_PERIODS if kind == zmq.XSUB else ZMTP_INTERVAL_PERIODS)
        if self._keys is not None:
            curve.join(socket, self._keys)
        socket.setsockopt(zmq.RCVHWM, 10_000)
        if kind == zmq.XSUB:
            socket.send(SUBSCRIBE + HEARTBEAT_TOPIC)  # kept by the socket, sent again on each reconnect
        else:
            socket.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_TOPIC)
        return socket

    def _forget_silent_children(self) -> None:
        """Drop children offline for longer than ``mesh.forget_after_s`` (never heard of: since they registered)."""
        forget_after_s = self._config.mesh_forget_after_s
        silent = self._node.nodes.silent(Role.CHILD, since=boot_clock.now() - forget_after_s)
        for node_id in silent:
            self._node.nodes.remove(node_id)
            self._heard.pop(node_id, None)
            NEIGHBOURS_FORGOTTEN.inc()
            log.info("forgot child %s: offline for more than %g s (mesh.forget_after_s)", node_id, forget_after_s)
        if silent:
            self._subscribe_known()

    def _waiting(self, socket: zmq.Socket, decode: Callable[[list[bytes]], T], source: str,
                 dropped_metric: Counter | None = None) -> Iterator[T]:
        """Every message waiting on ``socket``, decoded; malformed ones are dropped, logged and counted (in
        ``dropped_metric`` too, when given, under the exception's ``reason``: ``incompatible`` for another
        protocol major, ``wrong_sender`` for a heartbeat sent up in another's name, else ``malformed``)."""
        for _ in range(DRAIN_MAX):  # then the loop goes round: our own heartbeats wait for no flood
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                yield decode(frames)
            except MalformedMessage as exc:
                self.malformed += 1
                if dropped_metric is not None:
                    dropped_metric.labels(exc.reason).inc()
                log.warning("dropped %s %s message (%d so far): %s", exc.reason.replace("_", " "), source,
                            self.malformed, exc)


def _received(frames: list[bytes]) -> Received:
    return Heartbeat.decode(frames), frames[1]
