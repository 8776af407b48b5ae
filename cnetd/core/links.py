"""Signed artifact links: ``/api/artifacts/SHA?expires=T&signature=HMAC`` lets the node a deployment was
delegated to (any number of hops away) fetch the model without holding this node's token, for a while.
The key is the node's ``auth.token``; a node without one serves artifacts to anyone, as it does the API."""
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
    if not expires or not signature or not expires.isdigit() or int(expires) < time.time():
        return False
    return hmac.compare_digest(signature, _signature(token, sha256, int(expires)))


def is_artifact_link(url: str) -> bool:
    """Whether ``url`` names a node's artifact (a neighbour's link, signed or not)."""
    return urllib.parse.urlsplit(url).path.startswith(ARTIFACTS_PATH)
