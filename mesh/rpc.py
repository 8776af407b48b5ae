"""Request/reply between node processes over ipc:// (API → scheduler): JSON requests, JSON replies or errors.

The server answers one request at a time in its own thread, so every decision it makes is serial. A
handler that must wait on something slow (an HTTP forward to another node) returns a ``Deferred``: its
``work`` runs in a pool thread, and its ``then`` turns the work's outcome into the reply back in the
server's thread, which meanwhile goes on answering others. The client tells a dead server from a busy
one by the connection itself: no connection within ``CONNECT_TIMEOUT_S`` (nothing was delivered), or
the connection dropping while it waits (delivered; the outcome is unknown).

Each client thread keeps its connection to an endpoint (``_Channel``) from one request to the next, and
drops it after any request that got no reply, so a reply that comes late is never taken for the next
request's. A fresh socket per request, with its connection and the monitor that watches it, was a fifth of
the API worker's CPU under submissions (py-spy).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import orjson
import zmq

from cnetd.common.metric_files import Counter
from cnetd.common.errors import CnetError, Invalid, SchedulerUnavailable, error_from_dict
from mesh.bus import context

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], Any]
INTERNAL_ERRORS = Counter("cnet_rpc_internal_errors_total",
                          "Requests between a node's processes that failed on a bug (answered 500, logged with "
                          "their traceback)")
CONNECT_TIMEOUT_S = 5.0  # a live server's socket accepts at once; past this it is down or restarting
WORKER_THREADS = 16


class _Channel:
    """One thread's REQ socket to one endpoint, kept between requests, with the monitor that tells when its
    connection drops. ZeroMQ connects it again by itself after the server restarts."""

    def __init__(self, endpoint: str) -> None:
        self.socket = context().socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a server that is not there
        self.monitor = self.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.socket.connect(endpoint)

    def forget_past_disconnections(self) -> None:
        """Drops seen before this request (a restart it has connected again after) say nothing of it. Called once
        the socket is connected: the drop that preceded that connection was reported before it."""
        while self.monitor.poll(0):
            self.monitor.recv_multipart()

    def close(self) -> None:
        """The monitor stops before either socket closes. A socket whose monitor's reader is gone, and whose
        connection then drops (a closed socket still being reaped counts), blocks ZeroMQ's I/O thread for good
        on that event: every socket of the process would then stall."""
        if self.socket.closed:
            return
        self.socket.disable_monitor()
        self.monitor.close()
        self.socket.close()

    def __del__(self) -> None:
        """A thread that ends with its channels open (its thread-local ones go with it) closes them in order."""
        if "monitor" in self.__dict__:  # else making it failed before it had a monitor to stop
            self.close()


_CHANNELS = threading.local()  # this thread's channels, by endpoint


def request(endpoint: str, op: str, args: dict[str, Any], timeout_s: float) -> Any:
    """Send one request and wait up to ``timeout_s`` for its reply, on this thread's channel to ``endpoint``.
    Raises ``SchedulerUnavailable`` (``delivered`` says whether the request may have been acted on) when the
    server is down, dies meanwhile, or does not answer in time."""
    channels: dict[str, _Channel] = _CHANNELS.__dict__.setdefault("by_endpoint", {})
    channel = channels.get(endpoint)
    if channel is None:
        channel = channels[endpoint] = _Channel(endpoint)
    try:
        if not channel.socket.poll(int(CONNECT_TIMEOUT_S * 1000), zmq.POLLOUT):
            raise SchedulerUnavailable(f"the scheduler is not running (no answer to {op!r} within "
                                       f"{CONNECT_TIMEOUT_S:g} s); try again shortly", delivered=False)
        channel.forget_past_disconnections()
        channel.socket.send(orjson.dumps({"op": op, "args": args}))
        reply = _await_reply(channel.socket, channel.monitor, op, timeout_s)
    except BaseException:
        del channels[endpoint]  # a REQ socket whose request got no reply takes no other
        channel.close()
        raise
    if "error" in reply:
        raise error_from_dict(reply["error"])
    return reply["result"]


def _await_reply(socket: zmq.Socket, monitor: zmq.Socket, op: str, timeout_s: float) -> dict[str, Any]:
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    deadline = time.monotonic() + timeout_s
    while (left_s := deadline - time.monotonic()) > 0:
        ready = dict(poller.poll(int(left_s * 1000) + 1))
        if socket in ready:
            return orjson.loads(socket.recv())
        if monitor in ready:
            monitor.recv_multipart()
            raise SchedulerUnavailable(f"the scheduler ended while handling {op!r}; its outcome is not known",
                                       delivered=True)
    raise SchedulerUnavailable(f"the scheduler did not answer {op!r} within {timeout_s:g} s", delivered=True)


class Arguments(dict):
    """A request's arguments: one that is missing is the caller's mistake (a 400), not the handler's bug."""

    def __missing__(self, name: str) -> Any:
        raise Invalid(f"malformed request: argument {name!r} is missing")


def parse_request(payload: bytes, handlers: dict[str, Handler]) -> tuple[str, Arguments]:
    """A request's op and arguments; ``Invalid`` for anything that is not one of ``handlers``'s."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"malformed request: not JSON ({exc})") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise Invalid("malformed request: expected an object with an op")
    if message["op"] not in handlers:
        raise Invalid(f"malformed request: unknown op {message['op'][:64]!r} "
                               f"(known: {', '.join(sorted(handlers))})")
    args = message.get("args", {})
    if not isinstance(args, dict):
        raise Invalid("malformed request: args must be an object")
    return message["op"], Arguments(args)


@dataclass
class Deferred:
    """A reply that needs slow work first: ``work()`` runs in a pool thread, then ``then(outcome)`` runs in
    the server's thread and gives the reply (or raises the error to answer)."""

    work: Callable[[], Any]
    then: Callable[[Any], Any]


class RpcServer:
    """Serves requests on a bound ROUTER socket, dispatching on the request's ``op``; ``tick`` runs in the
    same thread every ``tick_interval_s`` (periodic settling)."""

    def __init__(self, endpoint: str, handlers: dict[str, Handler]) -> None:
        self.socket = context().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self._handlers = handlers
        self._pool = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="rpc-work")
        self._done_endpoint = f"inproc://rpc-done-{id(self)}"
        self._done = context().socket(zmq.PULL)
        self._done.bind(self._done_endpoint)
        self._senders = threading.local()  # one PUSH per pool thread: sockets are not thread-safe
        self._pending: dict[int, tuple[bytes, Deferred]] = {}  # touched by the server's thread only
        self._results: dict[int, tuple[str, Any]] = {}  # written by a pool thread before it signals the key
        self._next_key = 0

    def run(self, tick: Callable[[], None], tick_interval_s: float) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self._done, zmq.POLLIN)
        next_tick = time.monotonic()
        while True:
            ready = dict(poller.poll(max(0.0, next_tick - time.monotonic()) * 1000))
            if self.socket in ready:
                self.serve_one()
            if self._done in ready:
                self._complete_one()
            if time.monotonic() >= next_tick:
                self._guarded(tick)
                next_tick = time.monotonic() + tick_interval_s

    def serve_one(self) -> None:
        """Answer (or start the work of) one request that is waiting on the socket."""
        identity, _, payload = self.socket.recv_multipart()
        outcome = self._dispatch(lambda: self._call(payload))
        if isinstance(outcome, Deferred):
            self._start(identity, outcome)
        else:
            self._reply(identity, outcome)

    def submit_background(self, work: Callable[[], Any]) -> None:
        """Run ``work`` in a pool thread with no one waiting for it (its errors are logged)."""
        self._pool.submit(self._guarded, work)

    def _call(self, payload: bytes) -> Any:
        op, args = parse_request(payload, self._handlers)
        return self._handlers[op](args)

    def _start(self, identity: bytes, deferred: Deferred) -> None:
        key, self._next_key = self._next_key, self._next_key + 1
        self._pending[key] = (identity, deferred)
        self._pool.submit(self._work, key, deferred.work)

    def _work(self, key: int, work: Callable[[], Any]) -> None:
        try:
            outcome: Any = ("ok", work())
        except Exception as exc:  # handed to the server's thread, which answers with it
            outcome = ("raised", exc)
        sender = getattr(self._senders, "socket", None)
        if sender is None:
            sender = self._senders.socket = context().socket(zmq.PUSH)
            sender.setsockopt(zmq.LINGER, 0)
            sender.connect(self._done_endpoint)
        self._results[key] = outcome
        sender.send(str(key).encode())

    def _complete_one(self) -> None:
        key = int(self._done.recv())
        identity, deferred = self._pending.pop(key)
        kind, value = self._results.pop(key)

        def then() -> Any:
            if kind == "raised":
                raise value
            return deferred.then(value)
        outcome = self._dispatch(then)
        if isinstance(outcome, Deferred):  # its continuation needs slow work of its own
            self._start(identity, outcome)
        else:
            self._reply(identity, outcome)

    def _reply(self, identity: bytes, body: dict[str, Any]) -> None:
        self.socket.send_multipart([identity, b"", orjson.dumps(body)])

    @staticmethod
    def _dispatch(handle: Callable[[], Any]) -> Any:
        """The reply to a request: its result, the error it raised (a malformed request is a 400 naming what
        is wrong), or, for a bug, a 500 that is logged with its traceback and counted."""
        try:
            result = handle()
            return result if isinstance(result, Deferred) else {"result": result}
        except CnetError as exc:
            return {"error": exc.to_dict()}
        except Exception as exc:  # a handler bug must answer, not strand the caller
            log.exception("request failed: a bug")
            INTERNAL_ERRORS.inc()
            return {"error": CnetError(f"internal error ({type(exc).__name__}); see the log").to_dict()}

    @staticmethod
    def _guarded(work: Callable[[], Any]) -> None:
        try:
            work()
        except Exception:
            log.exception("background work failed")
