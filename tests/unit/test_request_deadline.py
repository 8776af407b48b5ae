"""The arrival rule alone (no server): when a buffered request is ready for a thread, and how its deadline
grows with what has arrived."""
from __future__ import annotations

import time

import pytest

from cnetd.common.request_deadline import MAX_BUFFERED_BODY_BYTES, MAX_HEAD_BYTES, Arrival, bytes_for_a_thread

HEAD = b"POST /x HTTP/1.1\r\nHost: h\r\n"


@pytest.mark.parametrize("buffered, ready", [
    (b"GET /health HTTP/1.1\r\nHost: h\r\n", False),  # head still arriving
    (b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n", True),
    (HEAD + b"Content-Length: 5\r\n\r\nabc", False),  # a small body still arriving
    (HEAD + b"content-length: 5\r\n\r\nabcde", True),
    (HEAD + b"Content-Length: %d\r\n\r\n" % (MAX_BUFFERED_BODY_BYTES + 1), True),  # the thread reads it
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n", True),
    (HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", True),  # the client waits for 100 Continue
    (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", True),  # malformed: the parser answers 400
    (HEAD + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", True),
    (HEAD + b"X-Pad: " + b"a" * MAX_HEAD_BYTES, True),  # too long to hold: the parser enforces its limits
])
def test_ready_for_a_thread(buffered: bytes, ready: bool) -> None:
    needed = bytes_for_a_thread(buffered)
    assert (needed is not None and len(buffered) >= needed) == ready


def test_a_head_arriving_byte_by_byte_is_found_searching_only_what_is_new() -> None:
    head, buffered, needed = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", bytearray(), None
    for byte in head:
        searched_from = max(0, len(buffered) - 3)  # as the worker does: the end may straddle old and new
        buffered.append(byte)
        needed = bytes_for_a_thread(buffered, searched_from)
        if needed is not None:
            break
    assert len(buffered) == len(head) and needed == 0  # found at its last byte: no body, a thread takes it


def test_the_deadline_grows_by_a_second_per_min_rate_bytes() -> None:
    arrival = Arrival(time.monotonic(), timeout_s=2, min_rate_bytes_s=1000)
    assert 1.5 < arrival.remaining_s() <= 2
    arrival.received = 3000
    assert 4.5 < arrival.remaining_s() <= 5
    arrival.started -= 10
    assert arrival.remaining_s() < 0
