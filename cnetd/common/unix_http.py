"""HTTP over a unix socket with the standard library: the connection supervisord's XML-RPC and a container
engine's API are reached through (``http.client`` knows only TCP)."""
from __future__ import annotations

import http.client
import socket


class UnixHTTPConnection(http.client.HTTPConnection):
    """An ``HTTPConnection`` to the server listening on ``socket_path``; ``timeout_s`` bounds each socket
    operation (None: blocking)."""

    def __init__(self, socket_path: str, timeout_s: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout_s)
        self._socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._socket_path)
