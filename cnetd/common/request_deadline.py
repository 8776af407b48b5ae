"""The rule a request's arrival must keep, and how to tell a request has arrived; no server in here.

A request must arrive within ``timeout_s`` of its start, extended by one second per ``min_rate_bytes_s``
bytes received (Apache mod_reqtimeout's rule): a large upload at a steady pace goes on, a trickle does not.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 64 * 1024  # a head not complete by then goes to a thread, whose parser enforces gunicorn's limits
MAX_BUFFERED_BODY_BYTES = 256 * 1024  # bodies up to this size arrive before a thread takes them
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MIN_RATE_BYTES_S = 16 * 1024


class ClientTooSlow(TimeoutError):
    """The request did not arrive by its deadline (raised where the application reads the body)."""


@dataclass
class Arrival:
    """How much of one request has arrived, and so by when the rest must."""

    started: float
    timeout_s: float
    min_rate_bytes_s: float
    received: int = 0

    def remaining_s(self) -> float:
        deadline = self.started + self.timeout_s + self.received / self.min_rate_bytes_s
        return deadline - time.monotonic()


def ready_for_a_thread(buffered: bytes) -> bool:
    """Whether a thread can take the request in ``buffered`` without waiting on its client: the head and
    any small body are in, or what is still to come is the thread's to read (too large to hold here,
    chunked, or sent only after a ``100 Continue``). A malformed head is ready too: the parser answers 400."""
    end = buffered.find(HEAD_END)
    if end < 0:
        return len(buffered) >= MAX_HEAD_BYTES
    lengths = []
    for line in buffered[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in (b"transfer-encoding", b"expect"):
            return True
        if name == b"content-length":
            lengths.append(value.strip())
    if not lengths:
        return True
    if len(lengths) > 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
        return True
    body_bytes = int(lengths[0])
    return body_bytes > MAX_BUFFERED_BODY_BYTES or len(buffered) - end - len(HEAD_END) >= body_bytes
