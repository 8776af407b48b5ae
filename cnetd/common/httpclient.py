"""Minimal JSON-over-HTTP client (stdlib only) for node-to-node calls: registration, delegation, proxying."""
from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from typing import Any

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
    JSON answer or None). HTTP errors are returned, not raised."""
    data = raw if raw is not None else orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return answer.status, _decode(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())
    except urllib.error.URLError as exc:  # urllib wraps what fails while connecting and sending
        raise Unreachable(f"{method} {url}: {exc.reason}", delivered=False) from exc
    except (socket.timeout, TimeoutError) as exc:
        raise TimedOut(f"{method} {url}: no answer within {timeout_s:g} s") from exc
    except (ConnectionError, http.client.HTTPException, OSError) as exc:  # sent; the answer was lost
        raise Unreachable(f"{method} {url}: {exc}", delivered=True) from exc


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
