"""Relaying a request as it is, over kept-alive connections (one per thread and service: http.client's
own): the predict and v2 paths of a service, here or through the next hop. The answer comes back as bytes
with the headers that describe them, so JSON, binary tensors and errors all pass unchanged.

A pool of the standard library's connections, not urllib3's: measured with bench/replicas.py, it takes
about 0.1 ms off each relayed request (urllib3's per-request bookkeeping), which is a tenth of the hop. A
connection is kept by scheme and address: an https next hop is reached over TLS, its certificate checked
(``httpclient.connection_to``), so the cluster's token never crosses the network in the clear.
"""
from __future__ import annotations

import http.client
import threading
import urllib.parse
from dataclasses import dataclass

from cnetd.common.httpclient import TimedOut, Unreachable, connection_to

CONNECT_TIMEOUT_S = 5.0
PASSED_HEADERS = ("Content-Type", "Inference-Header-Content-Length", "X-Cnet-Replica", "X-Cnet-Replica-Node")
_KEPT = threading.local()  # this thread's connections, by (scheme, host:port)


@dataclass(frozen=True)
class Relayed:
    status: int
    headers: dict[str, str]
    data: bytes


class _ClosedMeanwhile(Exception):
    """A kept connection the other side had closed before it read the request."""


def relay(method: str, url: str, body: bytes | None, headers: dict[str, str], timeout_s: float) -> Relayed:
    """Send one request on this thread's kept-alive connection to ``url``'s host; ``Unreachable`` when it
    could not be sent or its answer was lost (``delivered`` says which), ``TimedOut`` when no answer came
    in time. A kept connection found closed is opened again, once."""
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    key = (parts.scheme, parts.netloc)
    try:  # a second try's failures are told as the first's (raised in an except clause, they pass its siblings by)
        try:
            return _send(key, method, target, body, headers, timeout_s, fresh=False)
        except _ClosedMeanwhile:
            return _send(key, method, target, body, headers, timeout_s, fresh=True)
    except TimeoutError as exc:  # socket.timeout is an alias of it
        raise TimedOut(f"{method} {url}: no answer within {timeout_s:g} s") from exc
    except _NotSent as exc:
        raise Unreachable(f"{method} {url}: {exc.__cause__}", delivered=False) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(f"{method} {url}: {exc}", delivered=True) from exc


class _NotSent(Exception):
    """The connection could not be made, or the request not written."""


def _send(key: tuple[str, str], method: str, target: str, body: bytes | None, headers: dict[str, str],
          timeout_s: float, fresh: bool) -> Relayed:
    kept: dict[tuple[str, str], http.client.HTTPConnection] = _KEPT.__dict__.setdefault("connections", {})
    reused = key in kept and not fresh
    try:
        if not reused:
            _drop(key)
            kept[key] = connection_to(*key, timeout_s=CONNECT_TIMEOUT_S)
        connection = kept[key]
        connection.request(method, target, body=body, headers=headers)
    except OSError as exc:
        _drop(key)
        if reused:
            raise _ClosedMeanwhile() from exc
        raise _NotSent() from exc
    try:
        connection.sock.settimeout(timeout_s)
        answer = connection.getresponse()
        data = answer.read()
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
        _drop(key)
        if reused:
            raise _ClosedMeanwhile() from exc  # the server's keep-alive ran out as this request went
        raise
    except BaseException:
        _drop(key)
        raise
    if answer.will_close:
        _drop(key)
    return Relayed(answer.status, {name: answer.headers[name] for name in PASSED_HEADERS if name in answer.headers},
                   data)


def _drop(key: tuple[str, str]) -> None:
    connection = _KEPT.__dict__.get("connections", {}).pop(key, None)
    if connection is not None:
        connection.close()
