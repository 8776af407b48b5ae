"""The node-local event bus: processes PUBlish ledger changes to one ipc:// SUB socket bound by register."""
from __future__ import annotations

import threading

import zmq

from mesh.messages import LEDGER_CHANGED, NEIGHBOURS_CHANGED, BusEvent


MAX_SOCKETS = 16384  # the register holds one SUB socket per neighbour (libzmq's default cap is 1023)
_configured: set[int] = set()


def context() -> zmq.Context:
    """The process's ZeroMQ context, created on first use (that is, after any fork)."""
    instance = zmq.Context.instance()
    if id(instance) not in _configured:  # before its first socket: libzmq reads the cap when it starts
        instance.set(zmq.MAX_SOCKETS, MAX_SOCKETS)
        _configured.add(id(instance))
    return instance


class BusPublisher:
    """Announces this process's ledger commits on the bus; one per process, safe to share between threads."""

    def __init__(self, endpoint: str, sender: str) -> None:
        self._socket = context().socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, 1000)
        self._socket.connect(endpoint)
        self._sender = sender
        self._lock = threading.Lock()  # ZeroMQ sockets are not thread-safe; API workers run threads

    def ledger_changed(self, version: int) -> None:
        self._send(BusEvent(LEDGER_CHANGED, version, self._sender))

    def neighbours_changed(self) -> None:
        self._send(BusEvent(NEIGHBOURS_CHANGED, 0, self._sender))

    def _send(self, event: BusEvent) -> None:
        with self._lock:
            self._socket.send_multipart(event.encode(), flags=zmq.NOBLOCK)

    def close(self) -> None:
        self._socket.close()


def bind_bus_subscriber(endpoint: str) -> zmq.Socket:
    """The receiving end of the bus: a SUB socket bound at ``endpoint``, subscribed to everything."""
    socket = context().socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.bind(endpoint)
    return socket
