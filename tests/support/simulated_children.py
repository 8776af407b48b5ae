"""Simulated children for the fan-in test and benchmark: thousands of children of one real parent, each a
ZeroMQ socket in a helper process speaking the heartbeat protocol as a node of protocol 1.2 does.

Each child registers with the parent (POST /api/nodes/register, ``fan_in``), takes the key the parent gives it,
connects one XSUB socket to the parent's mesh endpoint (subscribing to the parent's heartbeats, as a real child
does) and sends a signed heartbeat up every period, until stopped. A helper holds up to ``PER_HELPER`` children,
its ZeroMQ context's socket limit and its descriptor limit raised to match (libzmq allows 1,023 sockets per
context by default).
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import resource
import time

import zmq

from cnetd.common.httpclient import call, node_headers
from mesh.fanin import SUBSCRIBE, signed
from mesh.liveness import UPLINK_INTERVAL_PERIODS, keep_mesh_socket_alive
from mesh.messages import HEARTBEAT_TOPIC
from tests.support.heartbeats import heartbeat

PER_HELPER = 1000
GIB = 2**30
RESOURCES = {"cpu": 4.0, "memory": 8 * GIB, "gpu": 0, "storage": 0}


def _helper(first: int, count: int, parent_url: str, token: str | None, period_s: float,
            registered: multiprocessing.Queue, stop: multiprocessing.synchronize.Event) -> None:
    try:
        children, context = _register(first, count, parent_url, token, period_s)
    except (AssertionError, OSError, zmq.ZMQError) as exc:
        registered.put(f"helper of children {first}..: {type(exc).__name__}: {exc}")
        return
    registered.put(count)
    while not stop.is_set():
        tick = time.monotonic()
        for socket, frames in children:  # an idle child's heartbeat, signed once: the helpers' CPU is the parent's too
            socket.send_multipart(frames, flags=zmq.NOBLOCK)
            _discard_waiting(socket)
        stop.wait(max(0.0, period_s - (time.monotonic() - tick)))
    for socket, _ in children:
        socket.close()
    context.term()


def _discard_waiting(socket: zmq.Socket) -> None:
    """Read what the parent published, as a child does: a connection whose messages wait unread stops being
    read at all, ZMTP pings included, and the parent's liveness check then ends it."""
    while True:
        try:
            socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return


def _register(first: int, count: int, parent_url: str, token: str | None,
              period_s: float) -> tuple[list, zmq.Context]:
    context = zmq.Context()
    context.set(zmq.MAX_SOCKETS, count + 64)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 3 * count + 256)), hard))
    status, health = call("GET", f"{parent_url}/api/health", timeout_s=30)
    assert status == 200, health
    children = []
    for index in range(first, first + count):
        node_id, port = f"sim-{index:05d}", 20000 + index  # a port nobody listens on: the parent never calls it
        registration = {"node_id": node_id, "api_url": f"http://127.0.0.1:{port}",
                        "mesh_endpoint": f"tcp://127.0.0.1:{port}", "fan_in": True}
        status, answer = call("POST", f"{parent_url}/api/nodes/register", registration, timeout_s=30,
                              headers=node_headers(token))
        assert status == 200, answer
        socket = context.socket(zmq.XSUB)
        socket.setsockopt(zmq.LINGER, 0)
        keep_mesh_socket_alive(socket, period_s, UPLINK_INTERVAL_PERIODS)  # what a child's uplink does
        # Read once a period here, not at once as a child does: room for a period's bursts, so that input never
        # stops (libzmq 4.3's restart of a stopped input can abort under this load, zeromq/libzmq#3937).
        socket.setsockopt(zmq.RCVHWM, 100_000)
        socket.send(SUBSCRIBE + HEARTBEAT_TOPIC)
        socket.connect(health["mesh_endpoint"])
        key = bytes.fromhex(answer["heartbeat_key"])
        children.append((socket, signed(heartbeat(node_id, RESOURCES, api_url=registration["api_url"],
                                                    mesh_endpoint=registration["mesh_endpoint"]).encode(), key)))
    return children, context


class SimulatedChildren:
    """``count`` children of the node at ``parent_url``, from entering until leaving (their sockets closed)."""

    def __init__(self, parent_url: str, count: int, period_s: float, token: str | None = None) -> None:
        self.count = count
        self._registered: multiprocessing.Queue = multiprocessing.Queue()
        self._stop = multiprocessing.Event()
        helpers = max(1, -(-count // PER_HELPER))
        per_helper = -(-count // helpers)
        self._helpers = [multiprocessing.Process(target=_helper, daemon=True, args=(
            first, min(per_helper, count - first), parent_url, token, period_s, self._registered, self._stop))
            for first in range(0, count, per_helper)]

    def __enter__(self) -> SimulatedChildren:
        for helper in self._helpers:
            helper.start()
        return self

    def wait_registered(self, timeout_s: float = 300.0) -> int:
        """Block until every helper has registered its children; how many registered."""
        counts = [self._registered.get(timeout=timeout_s) for _ in self._helpers]
        failures = [count for count in counts if isinstance(count, str)]
        assert not failures, failures
        return sum(counts)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for helper in self._helpers:
            helper.join(timeout=10)
            if helper.is_alive():
                helper.kill()
                helper.join()
