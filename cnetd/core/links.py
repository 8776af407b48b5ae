"""Signed artifact links: ``/api/artifacts/SHA?expires=T&signature=HMAC`` lets the node a deployment was
delegated to (any number of hops away) fetch the model without holding this node's token, for a while.
The key is the node's ``auth.token``; a node without one serves artifacts to anyone, as it does the API.

A stream's signature works the same way for its detector: ``POST /api/workloads/DETECTOR/predict`` with
``X-CNET-Stream: ID`` and ``X-CNET-Stream-Signature: HMAC`` is let through for as long as the token is the same,
and for nothing else."""
from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse

LINK_LIFETIME_S = 3600.0
ARTIFACTS_PATH = "/api/artifacts/"


def _signature(token: str, sha256: str, expires: int) -> str:
    return hmac.new(token.encode(), f"artifact:{sha256}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_link(api_url: str, token: str | None, sha256: str, now: float | None = None) -> str:
    base = f"{api_url}{ARTIFACTS_PATH}{sha256}"
    if token is None:
        return base
    expires = int((now or time.time()) + LINK_LIFETIME_S)
    return f"{base}?expires={expires}&signature={_signature(token, sha256, expires)}"


def link_is_valid(token: str, sha256: str, expires: str | None, signature: str | None) -> bool:
    if not (expires and signature and expires.isascii() and expires.isdigit() and len(expires) <= 12):
        return False  # ASCII digits, as every number a request gives is read: '²' is a digit to isdigit, and no int
    return int(expires) >= time.time() and _same(signature, _signature(token, sha256, int(expires)))


def stream_signature(token: str | None, stream_id: str, detector: str) -> str:
    """What lets stream ``stream_id`` send frames to ``detector`` through this node ('' without a token)."""
    if token is None:
        return ""
    return hmac.new(token.encode(), f"stream:{stream_id}:{detector}".encode(), hashlib.sha256).hexdigest()


def stream_signature_is_valid(token: str, stream_id: str | None, detector: str, signature: str | None) -> bool:
    if not stream_id or not signature:
        return False
    return _same(signature, stream_signature(token, stream_id, detector))


def _same(given: str, expected: str) -> bool:
    """Compared in constant time as bytes: ``compare_digest`` refuses str beyond ASCII, which anyone may send."""
    return hmac.compare_digest(given.encode(), expected.encode())


def is_artifact_link(url: str) -> bool:
    """Whether ``url`` names a node's artifact (a neighbour's link, signed or not)."""
    return urllib.parse.urlsplit(url).path.startswith(ARTIFACTS_PATH)
