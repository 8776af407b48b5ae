"""gunicorn settings for the API (``--config python:cnetd.api.gunicorn_hooks``): slow clients cannot hold it.

gunicorn's threads block on a connection once its first byte arrives; a client that then stalls
(half-sent headers or body, or never reading the answer) would keep a thread forever. A kernel receive and
send timeout on the listening sockets, inherited by every accepted connection, ends such a connection
after ``api.client_timeout_s`` without progress; a slow but steady upload is unaffected.
"""
from __future__ import annotations

import logging
import os
import socket
import struct
from typing import Any

from cnetd.config import NodeConfig
from cnetd.lifeline import die_with_parent


def _timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))


class _StalledClients(logging.Filter):
    """gunicorn logs a timed-out connection with a traceback; one line says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], BlockingIOError):
            record.msg, record.args = "closed a connection that stalled mid-request (api.client_timeout_s)", ()
            record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.INFO, "INFO"
        return True


def _client_timeout_s() -> float:
    return NodeConfig.from_runtime_dir(os.environ["CNET_RUNTIME_DIR"]).api_client_timeout_s


def post_fork(server: Any, worker: Any) -> None:
    """A worker dies with its master: one left by a killed master would keep serving a dead node's port."""
    die_with_parent()


def post_worker_init(worker: Any) -> None:
    worker.log.error_log.addFilter(_StalledClients())


def when_ready(server: Any) -> None:
    timeout_s = _client_timeout_s()
    for listener in server.LISTENERS:
        listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout_s))
        listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(timeout_s))
