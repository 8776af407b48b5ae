"""The API's authentication: a bearer token on every request but reads the config leaves open."""
from __future__ import annotations

import hmac

import falcon

from cnetd.common.errors import Unauthorized
from cnetd.core.links import link_is_valid, stream_signature_is_valid

ARTIFACTS = "/api/artifacts/"
WORKLOADS, PREDICT = "/api/workloads/", "/predict"


class BearerAuth:
    """Falcon middleware: with a token configured, every request must carry ``Authorization: Bearer <token>``
    (compared in constant time), except reads of ``open_reads`` (exact paths, or prefixes ending in /) and
    reads of an artifact through a link this node signed with its token, and a stream's frames sent to its
    detector with the signature this node made for that stream."""

    READS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, token: str | None, open_reads: tuple[str, ...] = ()) -> None:
        self._expected = f"Bearer {token}".encode() if token else None
        self._token = token or ""
        self._open_paths = {path for path in open_reads if not path.endswith("/") or path == "/"}
        self._open_prefixes = tuple(path for path in open_reads if path.endswith("/") and path != "/")

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._expected is None:
            return
        if req.method in self.READS and (req.path in self._open_paths or req.path.startswith(self._open_prefixes)):
            return
        if req.method in self.READS and req.path.startswith(ARTIFACTS) and link_is_valid(
                self._token, req.path.removeprefix(ARTIFACTS), req.get_param("expires"), req.get_param("signature")):
            return
        if req.method == "POST" and self._is_streams_detector(req):
            return
        given = (req.get_header("Authorization") or "").encode()
        if not hmac.compare_digest(given, self._expected):
            raise Unauthorized("this node needs 'Authorization: Bearer <token>' for this request (reads of "
                               "auth.open_reads excepted); the token is auth.token in its config (or CNET_TOKEN)")

    def _is_streams_detector(self, req: falcon.Request) -> bool:
        if not (req.path.startswith(WORKLOADS) and req.path.endswith(PREDICT)):
            return False
        detector = req.path[len(WORKLOADS):-len(PREDICT)]
        return "/" not in detector and stream_signature_is_valid(
            self._token, req.get_header("X-CNET-Stream"), detector, req.get_header("X-CNET-Stream-Signature"))
