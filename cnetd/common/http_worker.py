"""gunicorn's threaded worker, made safe against slow clients: a thread takes a request only once it has
arrived, and every request must arrive by a deadline.

Stock ``gthread`` hands a connection to a thread at its first byte; a client that then trickles its headers
(one byte every few seconds restarts any receive timeout) holds that thread for as long as it likes, and a
few dozen such clients starve the server. Here the worker's event loop reads each request's head, and a
body small enough to hold in memory, without blocking; only then does a thread take it. A larger body (or
a chunked one, or one behind ``Expect: 100-continue``) is read by the thread under the same deadline.

A thread that has answered on a kept-alive connection waits up to ``linger_s`` (10 ms) for the client's next
request, and serves it too if it arrives whole and no other request waits for a thread: a client sending
requests back to back skips the event loop's round trip (two thread hand-offs, four epoll calls, a pipe
write and read), about a fifth of a small GET's CPU. A next request that arrives only in part goes to the
event loop, under its deadline, as any other.

A health check (``GET`` or ``HEAD`` of ``HEALTH_PATHS``) does not queue behind the requests that wait for a
thread: a thread of its own answers them, one at a time. A service with one thread (a replica of half a core)
busy with predictions is still well, and says so: it is the balancer's to send it fewer, not the health
checks' to take it out of rotation or restart it. Triton answers its health endpoints the same way. A service
whose threads are all stuck is not: once requests have waited ``stalled_after_s`` (gunicorn's ``timeout``,
120 s for services) with none taken, the event loop answers its health checks 503 itself.

The deadline is Apache mod_reqtimeout's rule: ``timeout_s`` from the request's start (a new connection's
accept, a kept-alive connection's next byte), extended by one second per ``min_rate`` bytes received, so a
large upload at a steady pace goes on and a trickle does not. A request still arriving at its deadline is
answered 408 (from the event loop) or raises ``ClientTooSlow`` where the application reads its body. Time a
complete request waits for a free thread does not count against its client.

Used by the node's API (``--worker-class cnetd.common.http_worker.DeadlineWorker``) and every service that
``service_runner`` starts; the timeout is set on the worker in ``post_worker_init``.
"""
from __future__ import annotations

import errno
import logging
import select
import selectors
import socket
import struct
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Callable

import gunicorn.http.wsgi
import gunicorn.util
import orjson
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import ThreadWorker, TConn

from cnetd.common.http_response import HeadWithFirstBytes, http_date_once_a_second
from cnetd.common.request_deadline import (DEFAULT_MIN_RATE_BYTES_S, DEFAULT_TIMEOUT_S, HEAD_END, Arrival,
                                           ClientTooSlow, bytes_for_a_thread)

RECV_BYTES = 64 * 1024
HEALTH_PATHS = frozenset({b"/health", b"/v2/health/live", b"/v2/health/ready"})  # services' and KServe v2's
_PARTLY_ARRIVED = object()  # what a thread answers when a connection's next request began but is not all in


class DeadlineUnreader(SocketUnreader):
    """gunicorn's socket reader, each receive bounded by what is left of the request's deadline."""

    def __init__(self, sock: socket.socket, arrival: Arrival) -> None:
        super().__init__(sock)
        self.arrival = arrival

    def chunk(self, size_hint: int | None = None) -> bytes:
        remaining = self.arrival.remaining_s()
        if remaining <= 0:
            raise ClientTooSlow("the request did not arrive in time")
        self.sock.settimeout(remaining)
        try:
            data = super().chunk(size_hint)
        except TimeoutError:
            raise ClientTooSlow("the request did not arrive in time") from None
        finally:
            self.sock.settimeout(None)
        self.arrival.received += len(data)
        return data


class _Conn(TConn):
    """A connection and the request arriving on it: bytes read ahead of the parser, and their deadline."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.buffered = bytearray()
        self.needed: int | None = None  # what the buffer must hold before a thread takes it (None: head not in)
        self.arrival: Arrival | None = None
        self.dispatched_at = 0.0


def _timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))


def json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """An answer from the server itself (a request line too long, a malformed header, a request past its
    deadline) in the shape of every CNET error; it replaces gunicorn's HTML page (``gunicorn.util.write_error``)."""
    body = orjson.dumps({"error": reason.lower().replace(" ", "_").replace("-", "_"), "message": mesg or reason})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    gunicorn.util.write_nonblock(sock, head.encode("latin1") + body)


def asks_for_health(buffered: bytes | bytearray) -> bool:
    """The request whose head ``buffered`` holds is a GET or HEAD of one of ``HEALTH_PATHS`` (any query aside)."""
    method, _, rest = bytes(buffered[:buffered.find(b"\r\n")]).partition(b" ")
    target = rest.partition(b" ")[0].partition(b"?")[0]
    return method in (b"GET", b"HEAD") and target in HEALTH_PATHS


def _request_waiting(sock: socket.socket) -> bool:
    """Bytes from the client are waiting on an idle connection (not its end: that reads as none)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # BlockingIOError (nothing yet) or a reset: nothing to serve
        return False


class _SlowClientLines(logging.Filter):
    """gunicorn logs a connection cut for slowness with a traceback; one line says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (ClientTooSlow, BlockingIOError)):
            record.msg, record.args = "closed a connection whose client was too slow: %s", (record.exc_info[1],)
            record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.INFO, "INFO"
        return True


STOPPING = threading.Event()  # set when this worker begins its graceful stop: long answers (event streams) end


class DeadlineWorker(ThreadWorker):
    """``gthread`` with requests read in the event loop (see the module's docstring)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    min_rate_bytes_s: float = DEFAULT_MIN_RATE_BYTES_S
    drain_on_stop: Callable[[], bool] = staticmethod(lambda: False)  # see _cap_keepalive
    linger_s: float = 0.01
    stalled_after_s: float | None = None  # see the module's docstring; None: gunicorn's timeout

    def init_process(self) -> None:
        gunicorn.util.write_error = json_error
        gunicorn.http.wsgi.Response = HeadWithFirstBytes  # what gunicorn's wsgi.create makes for HTTP/1
        gunicorn.util.http_date = http_date_once_a_second
        self._waiting: set[_Conn] = set()
        self._queued: deque[None] = deque()  # one entry per request handed to the pool and not yet taken
        self._queue_moved_at = time.monotonic()  # when a thread last took a request, or the queue last began
        self._health_pool = ThreadPoolExecutor(1, thread_name_prefix="health")  # health checks: see the docstring
        self.log.error_log.addFilter(_SlowClientLines())
        super().init_process()

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        # A client that stops reading its answer: each send may wait this long, then the connection ends.
        client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(self.timeout_s))
        self._await_request(_Conn(self.cfg, client_sock, client_addr, listener.getsockname()))

    def on_client_socket_readable(self, conn: _Conn, client: socket.socket) -> None:
        """A kept-alive connection's next request begins."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_request(conn)

    def enqueue_req(self, conn: _Conn) -> None:
        """gunicorn calls this when the parser already holds the start of a next (pipelined) request."""
        conn.buffered[:0] = conn.parser.unreader.take_buffered()
        self._await_request(conn)

    def _await_request(self, conn: _Conn) -> None:
        self._begin_request(conn)
        if self._has_arrived(conn):
            self._dispatch(conn)
            return
        self._wait_for_rest(conn)

    def _begin_request(self, conn: _Conn) -> None:
        """The request whose bytes the connection's buffer holds begins now: its deadline starts."""
        conn.arrival = Arrival(time.monotonic(), self.timeout_s, self.min_rate_bytes_s, len(conn.buffered))
        conn.needed = None

    def _wait_for_rest(self, conn: _Conn) -> None:
        """On the event loop: the request arrives here, read without blocking, until a thread can take it."""
        conn.sock.setblocking(False)
        self._waiting.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_request_bytes, conn))

    def _on_request_bytes(self, conn: _Conn, client: socket.socket) -> None:
        try:
            data = client.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._stop_waiting(conn)
            self.nr_conns -= 1
            conn.close()
            return
        searched_from = max(0, len(conn.buffered) - len(HEAD_END) + 1)
        conn.buffered += data
        conn.arrival.received += len(data)
        if self._has_arrived(conn, searched_from):
            self._stop_waiting(conn)
            self._dispatch(conn)

    @staticmethod
    def _has_arrived(conn: _Conn, searched_from: int = 0) -> bool:
        if conn.needed is None:
            conn.needed = bytes_for_a_thread(conn.buffered, searched_from)
        return conn.needed is not None and len(conn.buffered) >= conn.needed

    def _stop_waiting(self, conn: _Conn) -> None:
        self._waiting.discard(conn)
        self.poller.unregister(conn.sock)

    def _dispatch(self, conn: _Conn) -> None:
        conn.data_ready = True
        conn.dispatched_at = time.monotonic()
        if asks_for_health(conn.buffered):
            self._check_health(conn)
            return
        if not self._queued:
            self._queue_moved_at = conn.dispatched_at
        self._queued.append(None)
        super().enqueue_req(conn)

    def _check_health(self, conn: _Conn) -> None:
        """On the event loop: a health check goes to the health thread, or is answered 503 here when the pool
        has stalled (requests waiting, none taken for ``stalled_after_s``)."""
        stalled_after_s = self.stalled_after_s or self.cfg.timeout
        waited_s = time.monotonic() - self._queue_moved_at
        if self._queued and waited_s > stalled_after_s:
            self._answer_and_close(conn, 503, "Service Unavailable", f"stalled: {len(self._queued)} request(s) "
                                   f"have waited {waited_s:.0f} s and no thread has taken one")
            return
        answered = self._health_pool.submit(self._serve, conn)
        answered.add_done_callback(lambda future: self.method_queue.defer(self.finish_request, conn, future))

    def finish_request(self, conn: _Conn, fs: Future) -> None:
        """On the event loop: a next request a thread found begun waits here for the rest of it. A connection
        a thread hands back to be kept alive once the worker stops goes as the idle ones did at the stop
        (``_cap_keepalive``): gunicorn kept it 2 s, and a node stopped just after a request waited for that."""
        if fs.cancelled() or fs.result() is not _PARTLY_ARRIVED:
            super().finish_request(conn, fs)
            if not self.alive and not self.drain_on_stop():
                self._close_idle_kept_alive()
            return
        self._wait_for_rest(conn)

    def murder_pending(self) -> None:
        """Called by gunicorn's loop about once a second: also end the requests past their deadline."""
        super().murder_pending()
        for conn in [conn for conn in self._waiting if conn.arrival.remaining_s() <= 0]:
            self._stop_waiting(conn)
            self.log.info("closed a connection from %s whose request did not arrive in time", conn.client)
            self._answer_and_close(conn, 408, "Request Timeout",
                                   f"the request did not arrive within {self.timeout_s:g} s")

    def _answer_and_close(self, conn: _Conn, status_int: int, reason: str, mesg: str) -> None:
        """On the event loop: answer a request with the server's own error, and close its connection."""
        try:
            json_error(conn.sock, status_int, reason, mesg)
        except OSError:
            pass
        self.nr_conns -= 1
        conn.close()

    def murder_keepalived(self, force: bool = False) -> None:
        """gunicorn closes a kept-alive connection once its keep-alive has run out, also one whose client's
        next request arrived after the loop last polled (while it accepted a burst of connections, say): that
        request then gets no answer, and its client cannot tell whether it was taken (a POST is not retried).
        An expired connection whose next request has begun is served instead; the rest are closed."""
        now = time.monotonic()
        while self.keepalived_conns and (force or self.keepalived_conns[0].timeout <= now):
            conn = self.keepalived_conns.popleft()
            self.poller.unregister(conn.sock)
            if not force and _request_waiting(conn.sock):
                self._await_request(conn)
            else:
                self.nr_conns -= 1
                conn.close()

    def _cap_keepalive(self, deadline: float) -> None:
        """At a graceful stop, gunicorn keeps idle kept-alive connections up to 2 s more, to answer a request
        that might still come on one; a node or service stop waited on them every time. Idle ones, and
        accepted ones whose request has not begun, are closed now; requests under way still finish.

        When another server takes over the socket (a reload: ``drain_on_stop``), they are kept as gunicorn
        keeps them: a client that sends on one gets its answer, with ``Connection: close``, where a close
        now would race its request (a POST it cannot know was not taken)."""
        STOPPING.set()
        if self.drain_on_stop():
            super()._cap_keepalive(deadline)
            return
        self._close_idle_kept_alive()
        for conn in [conn for conn in self._waiting if not conn.buffered]:
            self._stop_waiting(conn)
            self.nr_conns -= 1
            conn.close()

    def _close_idle_kept_alive(self) -> None:
        """Kept-alive connections whose next request has begun are served; the others are closed now."""
        super()._cap_keepalive(time.monotonic())
        self.murder_keepalived()

    def handle(self, conn: _Conn) -> object:
        """In a thread: serve the request, then the connection's next ones while they follow (see the module's
        docstring)."""
        self._queued.popleft()
        self._queue_moved_at = time.monotonic()
        outcome = self._serve(conn)
        while outcome is True and self._next_request_begins(conn):
            if not self._has_arrived(conn):
                return _PARTLY_ARRIVED
            conn.dispatched_at = time.monotonic()
            outcome = self._serve(conn)
        return outcome

    def _next_request_begins(self, conn: _Conn) -> bool:
        """Bytes of the connection's next request came within ``linger_s`` (now in its buffer, their deadline
        started), while no request waits for a thread and the worker is not stopping."""
        if self._queued or not self.alive or conn.parser.unreader.buf.getvalue():  # the last: pipelined, read already
            return False
        readable = select.poll()
        readable.register(conn.sock, select.POLLIN)
        if not readable.poll(self.linger_s * 1000):
            return False
        try:
            data = conn.sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
        except OSError:  # a reset: the event loop finds it closed
            return False
        if not data:
            return False
        conn.buffered += data
        self._begin_request(conn)
        return True

    def _serve(self, conn: _Conn) -> object:
        """Hand the parser what was read ahead of it, under the request's deadline."""
        conn.arrival.started += time.monotonic() - conn.dispatched_at  # queued for a thread: not the client's time
        conn.init()  # gunicorn's handle makes the socket blocking
        if isinstance(conn.parser.unreader, DeadlineUnreader):
            conn.parser.unreader.arrival = conn.arrival
        else:
            conn.parser.unreader = DeadlineUnreader(conn.sock, conn.arrival)
        conn.parser.unreader.unread(bytes(conn.buffered))
        conn.buffered.clear()
        return super().handle(conn)
