"""Minimal JSON-over-HTTP client (stdlib only) for node-to-node and node-local calls: registration,
delegation, proxying, health checks.

These calls never go through the proxy an environment names (``http_proxy``, ``HTTPS_PROXY``...): a node's
neighbours and its own services are reached directly, and the cluster's token never reaches a proxy.
``urllib.request`` would honour those variables, even for 127.0.0.1; ``http.client`` does not read them."""
from __future__ import annotations

import http.client
import socket
from typing import Any
from urllib.parse import urlsplit

import orjson

from cnetd.common.protocol import protocol_headers


class Unreachable(Exception):
    """The other node could not be reached (connection refused, reset, DNS). ``delivered`` is False when the
    request cannot have been acted on (it was never wholly sent), True when it was sent and the answer lost."""

    def __init__(self, message: str, delivered: bool) -> None:
        super().__init__(message)
        self.delivered = delivered


class TimedOut(Exception):
    """The other node accepted the request but did not answer in time: it may have acted on it."""


def node_headers(token: str | None) -> dict[str, str]:
    """What a node sends to another node of its cluster: the cluster's token (when it has one) and the
    protocol it speaks."""
    return {**protocol_headers(), **({"Authorization": f"Bearer {token}"} if token else {})}


def call(method: str, url: str, body: Any = None, timeout_s: float = 5.0,
         headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
    """Send one request with a JSON ``body`` (or ``raw`` bytes, typed by ``headers``); return (status, decoded
    JSON answer or None). HTTP errors are returned, not raised. A URL that is not http(s) raises ValueError."""
    data = raw if raw is not None else orjson.dumps(body) if body is not None else None
    target = urlsplit(url)
    connection = connection_to(target.scheme, target.netloc, timeout_s)
    path = (target.path or "/") + (f"?{target.query}" if target.query else "")
    try:
        try:
            connection.request(method, path, body=data,
                               headers={"Content-Type": "application/json", **(headers or {})})
        except OSError as exc:  # refused, unresolved, reset or timed out before the request was wholly sent
            raise Unreachable(f"{method} {url}: {exc}", delivered=False) from exc
        try:
            answer = connection.getresponse()
            return answer.status, _decode(answer.read())
        except (socket.timeout, TimeoutError) as exc:
            raise TimedOut(f"{method} {url}: no answer within {timeout_s:g} s") from exc
        except (http.client.HTTPException, OSError) as exc:  # sent; the answer was lost
            raise Unreachable(f"{method} {url}: {exc}", delivered=True) from exc
    finally:
        connection.close()


class TLSConnection(http.client.HTTPConnection):
    """HTTPS with the system's CAs and host name checks, as ``http.client.HTTPSConnection`` with its default
    context, which the node's daemons lack (``cnetd.common.http_without_tls``): ``ssl`` loads on first use."""

    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        import ssl
        super().connect()
        self.sock = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self.host)


def connection_to(scheme: str, netloc: str, timeout_s: float) -> http.client.HTTPConnection:
    """A connection (not opened yet) to ``netloc`` over ``scheme``: http, or https with its certificate
    checked; any other scheme raises ValueError."""
    if scheme == "http":
        return http.client.HTTPConnection(netloc, timeout=timeout_s)
    if scheme == "https":
        return TLSConnection(netloc, timeout=timeout_s)
    raise ValueError(f"not an http(s) URL: {scheme}://{netloc}")


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
