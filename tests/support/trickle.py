"""Test and bench helper: slow clients (connections trickling an endless request head) and latency probes."""
from __future__ import annotations

import http.client
import socket
import threading
import time

import requests

ENDLESS_HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: "


class Tricklers:
    """``count`` connections that each send one more byte of an endless request head every ``interval_s``;
    ``kept_alive``: each first has a whole request answered, and begins the endless one as soon as it has read
    that answer (while the thread that answered may still wait on the connection for a next request)."""

    def __init__(self, port: int, count: int, interval_s: float, head: bytes = ENDLESS_HEAD,
                 kept_alive: bool = False) -> None:
        self.port, self.count, self.interval_s, self.head = port, count, interval_s, head
        self.kept_alive = kept_alive
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> "Tricklers":
        self.connections = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(self.count)]
        if self.kept_alive:
            for connection in self.connections:
                connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answers_by = time.monotonic() + 2  # a server whose threads the first tricklers took answers no more
        for connection in self.connections:
            if self.kept_alive:
                _read_answer(connection, until=answers_by)
            connection.sendall(self.head[:1])
        self._thread.start()
        return self

    def _trickle(self) -> None:
        sent = 1
        while not self._stop.wait(self.interval_s):
            byte = self.head[sent:sent + 1] or b"a"
            sent += 1
            for connection in self.connections:
                try:
                    connection.send(byte)
                except OSError:
                    pass  # cut by the server's deadline

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.connections:
            connection.close()


def _read_answer(connection: socket.socket, until: float) -> None:
    connection.settimeout(max(0.1, until - time.monotonic()))
    try:
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        answer.read()
    except OSError:
        pass  # not answered in time: it trickles all the same
    connection.settimeout(None)


def probe(url: str, duration_s: float, interval_s: float = 0.2) -> list[float]:
    """Seconds each GET of ``url`` took over ``duration_s`` (inf: no answer within 5 s)."""
    latencies = []
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            ok = requests.get(url, timeout=5).ok
        except requests.RequestException:
            ok = False
        latencies.append(time.monotonic() - started if ok else float("inf"))
        time.sleep(interval_s)
    return latencies


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
