"""A stream's events and snapshots over HTTP.

``GET /api/workloads/{id}/events`` is Server-Sent Events (``text/event-stream``, whatever ``Accept`` says):
``?last=N`` first replays the last N kept events (``Last-Event-ID`` resumes after an event instead), then it
follows the stream's event file, or ends there with ``?follow=false``. Each event's ``id:`` is its ``seq``
and its ``data:`` one JSON object.

A follower holds one of the API process's request threads, so they are bounded: at most ``MAX_FOLLOWERS`` per
API process at once (one more is answered 503 with Retry-After), each connection ends after
``FOLLOW_MAX_S`` (an EventSource, or ``cnet events -f``, reconnects with Last-Event-ID and misses nothing the
stream keeps), a client that closes its end is seen within a poll (its socket reads end-of-file; a comment
line every ``KEEPALIVE_S`` finds one that vanished), and a stopping API or a deleted stream ends them at once. ``GET /api/workloads/{id}/snapshots/{name}`` serves a kept snapshot (``latest``: the newest).
A delegated stream's are read through its next hop.
"""
from __future__ import annotations

import http.client
import re
import select
import socket
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Generator, Iterator

import falcon
import orjson

from cnetd.api.base import Resource, settled
from cnetd.common.errors import Invalid, NotFound, Unavailable
from cnetd.common.event_log import EVENTS_FILE, EventTail, last_events
from cnetd.common.http_worker import STOPPING
from cnetd.core.remote import RemoteWorkloads
from ledger.records import WorkloadRecord
from workers.stream import MAX_KEEP_EVENTS, STREAM_TYPE

MAX_FOLLOWERS = 4
FOLLOW_MAX_S = 300.0
KEEPALIVE_S = 5.0
POLL_S = 0.2
RETRY_MS = 1000
_SNAPSHOT_NAME = re.compile(r"^(latest|[0-9]{1,12}\.jpg)$")
_followers = threading.BoundedSemaphore(MAX_FOLLOWERS)


def _stream(resource: Resource, workload_id: str) -> WorkloadRecord:
    record = resource.workload(workload_id)
    if record.type != STREAM_TYPE:
        raise NotFound(f"workload {workload_id} is a {record.type} workload; only streams have events")
    return settled(record)


def _whole_number(raw: Any, name: str, high: int) -> int | None:
    if raw is None:
        return None
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 12 and int(raw) <= high):
        raise Invalid(f"{name}: expected one whole number from 0 to {high}")
    return int(raw)


def _sse(event: dict[str, Any]) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (event["seq"], orjson.dumps(event))


class _Following:
    """The response's body: holds a follower's place until the server closes it (also when never started)."""

    def __init__(self, chunks: Generator[bytes, None, None]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        try:
            self._chunks.close()
        finally:
            _followers.release()


def _client_gone(client: socket.socket | None) -> bool:
    """Whether the client closed its end (it reads as end-of-file), seen without writing to it."""
    if client is None:
        return False
    try:
        if not select.select([client], [], [], 0)[0]:
            return False
        return client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


def _local_events(path: Path, last: int, after: int | None, follow: bool,
                  client: socket.socket | None) -> Iterator[bytes]:
    yield b"retry: %d\n\n" % RETRY_MS
    if after is None:  # one read: the last ``last`` events, or the last one to follow from
        kept = last_events(path, max(last, 1))
        after = (kept[0]["seq"] - 1 if last else kept[-1]["seq"]) if kept else 0
    tail = EventTail(path, after)
    for event in tail.poll():
        yield _sse(event)
    if not follow:
        return
    ends, quiet_since = time.monotonic() + FOLLOW_MAX_S, time.monotonic()
    while time.monotonic() < ends and not STOPPING.wait(POLL_S) and not _client_gone(client):
        if not path.parent.exists():  # the stream was deleted
            return
        fresh = tail.poll()
        for event in fresh:
            yield _sse(event)
        if fresh:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_S:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()


def _remote_events(remote: RemoteWorkloads, record: WorkloadRecord, query: str,
                   last_event_id: str | None) -> Iterator[bytes]:
    """The next hop's event stream, passed through as it comes (503 when it cannot be opened)."""
    url = urllib.parse.urlsplit(remote.workload_url(record, f"/events?{query}"))
    connection = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=KEEPALIVE_S * 3)
    try:
        connection.request("GET", f"{url.path}?{url.query}", headers={
            **remote.headers, **({"Last-Event-ID": last_event_id} if last_event_id else {})})
        answer = connection.getresponse()
    except OSError as exc:
        connection.close()
        raise Unavailable(f"workload {record.id} runs on {record.delegated_to}: {exc}", node=record.delegated_to) \
            from None
    if answer.status != 200:
        connection.close()
        raise Unavailable(f"workload {record.id} runs on {record.delegated_to}, which answered {answer.status} for "
                          "its events", node=record.delegated_to)

    def chunks() -> Iterator[bytes]:
        try:
            while not STOPPING.is_set() and (chunk := answer.read1(65536)):
                yield chunk
        except OSError:
            return  # the next hop went away: the client reconnects
        finally:
            connection.close()
    return chunks()


class WorkloadEvents(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = _stream(self, workload_id)
        last = _whole_number(req.get_param("last"), "last", MAX_KEEP_EVENTS) or 0
        after = _whole_number(req.get_header("Last-Event-ID"), "Last-Event-ID", 2**53)
        follow = req.get_param_as_bool("follow", default=True)
        if not _followers.acquire(blocking=False):
            resp.set_header("Retry-After", "5")
            raise Unavailable(f"this API process already serves {MAX_FOLLOWERS} event followers; try again shortly",
                              followers=MAX_FOLLOWERS)
        try:
            if record.remote:
                query = urllib.parse.urlencode({"last": last, "follow": str(follow).lower()})
                chunks = _remote_events(self.deps.remote, record, query, req.get_header("Last-Event-ID"))
            else:
                chunks = _local_events(self.deps.config.paths.workload_dir(record.id) / EVENTS_FILE, last, after, follow,
                                       req.env.get("gunicorn.socket"))
        except BaseException:
            _followers.release()
            raise
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = _Following(chunks)


class WorkloadSnapshot(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str, name: str) -> None:
        record = _stream(self, workload_id)
        if not _SNAPSHOT_NAME.fullmatch(name):
            raise Invalid("name: expected latest or a snapshot's file name (NNNNNNNNNN.jpg)")
        if record.remote:
            relayed = self.deps.remote.relay(record, "GET", f"/snapshots/{name}", None, {})
            resp.status = falcon.code_to_http_status(relayed.status)
            resp.content_type = relayed.headers.get("Content-Type", "application/octet-stream")
            resp.data = relayed.data
            return
        folder = self.deps.config.paths.workload_dir(record.id)
        if name == "latest":  # the names count up
            name = max((path.name for path in (folder / "snapshots").glob("*.jpg")), default="")
        try:
            data = (folder / "snapshots" / name).read_bytes() if name else None
        except OSError:
            data = None
        if data is None:
            raise NotFound(f"stream {record.id} has no snapshot {name or 'yet'} (snapshots are kept with "
                           "config.snapshot, the last 50)")
        resp.content_type = "image/jpeg"
        resp.set_header("Cache-Control", "no-cache")
        resp.data = data
