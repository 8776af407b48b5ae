"""The floor under an upload: the least a server on this machine can do with a request body.

A thread that accepts one connection on loopback, skips the request's head, then receives the body into one
reused buffer (``recv_into``), optionally takes its SHA-256, writes it to a file in the page cache, and
answers 201: no HTTP parsing beyond the head, no multipart, no threads of its own. The same curl upload that
goes to a node goes to it, so the client's share of the machine is the same; what the node's upload costs
beyond it is CNET's.
"""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

BUFFER_BYTES = 1 << 20
HEAD_END = b"\r\n\r\n"


class BareReceiver:
    """One upload received by the floor server; ``mib_s(source)`` uploads ``source`` to it with curl."""

    def __init__(self, target: Path, hashed: bool) -> None:
        self._target, self._hashed = target, hashed
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.received = 0

    def mib_s(self, source: Path) -> float:
        port = self._listener.getsockname()[1]
        server = threading.Thread(target=self._serve_one)
        server.start()
        started = time.perf_counter()
        try:
            subprocess.run(["curl", "-s", "-o", "/dev/null", "-X", "POST", f"http://127.0.0.1:{port}/",
                            "-F", "type=data", "-F", f"file=@{source}"], check=True, timeout=600)
            elapsed = time.perf_counter() - started  # curl ends with the 201, sent once all is written
        finally:
            server.join(timeout=600)
            self._listener.close()
            self._target.unlink(missing_ok=True)
            os.sync()  # what it left dirty is not written back during the next figure
        assert self.received >= source.stat().st_size, self.received
        return round(source.stat().st_size / 2**20 / elapsed, 1)

    def _serve_one(self) -> None:
        connection, _ = self._listener.accept()
        descriptor = os.open(self._target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            head = b""
            while HEAD_END not in head:
                head += connection.recv(65536)
            head, _, body = head.partition(HEAD_END)
            if b"100-continue" in head.lower():
                connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            digest, buffer = hashlib.sha256(), bytearray(BUFFER_BYTES)
            view = memoryview(buffer)
            self._take(body, digest, descriptor)
            while self.received < length:
                size = connection.recv_into(buffer)
                if not size:
                    break
                self._take(view[:size], digest, descriptor)
            connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        finally:
            os.close(descriptor)
            connection.close()

    def _take(self, piece: bytes | memoryview, digest: Any, descriptor: int) -> None:
        if self._hashed:
            digest.update(piece)
        os.write(descriptor, piece)  # a regular file takes a whole MiB in one write
        self.received += len(piece)
