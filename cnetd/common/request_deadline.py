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


def bytes_for_a_thread(buffered: bytes | bytearray, searched_from: int = 0) -> int | None:
    """How many bytes of the request in ``buffered`` must have arrived before a thread can take it without
    waiting on its client: the head and any small body (0: at once, for what is the thread's to read: a
    body too large to hold here, chunked, or sent only after a ``100 Continue``; a malformed head too, which
    the parser answers 400). None while the head is still arriving; ``searched_from`` skips what an earlier
    call searched, so bytes arriving one by one are not searched again and again."""
    end = buffered.find(HEAD_END, searched_from)
    if end < 0:
        return 0 if len(buffered) >= MAX_HEAD_BYTES else None
    lengths = []
    for line in bytes(buffered[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in (b"transfer-encoding", b"expect"):
            return 0
        if name == b"content-length":
            lengths.append(value.strip())
    if len(lengths) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
        return 0  # no body, or a malformed length
    body_bytes = int(lengths[0])
    return 0 if body_bytes > MAX_BUFFERED_BODY_BYTES else end + len(HEAD_END) + body_bytes
