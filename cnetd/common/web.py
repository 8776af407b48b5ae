"""The Falcon edges every CNET web app shares (the node's API, the model services, the gateway's JSON side):
JSON in, JSON out, and every error rendered one way."""
from __future__ import annotations

import http
import logging
from typing import Any

import falcon
import orjson

from cnetd.common.request_deadline import ClientTooSlow
from cnetd.common.errors import CnetError, Invalid, PayloadTooLarge, RequestTimeout

log = logging.getLogger("api")


def send(resp: falcon.Response, body: Any, status: int = 200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(body)


def read_body(req: falcon.Request, max_bytes: int) -> bytes:
    """The request's body; 413 past ``max_bytes`` (read no further); a client too slow to send it meets
    ``ClientTooSlow`` (rendered 408)."""
    if req.content_length is not None and req.content_length > max_bytes:
        raise PayloadTooLarge(f"request body of {req.content_length} bytes exceeds the limit of {max_bytes}")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    return raw


def read_json(req: falcon.Request, max_bytes: int) -> Any:
    """The request's JSON body; 413 past ``max_bytes``, 400 when empty or not JSON."""
    return json_of(read_body(req, max_bytes))


def json_of(raw: bytes) -> Any:
    """A body already read, as JSON; 400 when empty or not JSON."""
    if not raw.strip():
        raise Invalid("request body is empty: send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"request body is not valid JSON: {exc}") from None


def render_cnet_error(req: falcon.Request, resp: falcon.Response, error: CnetError, params: dict) -> None:
    send(resp, error.to_dict(), error.status)


def render_too_slow(req: falcon.Request, resp: falcon.Response, error: ClientTooSlow, params: dict) -> None:
    render_cnet_error(req, resp, RequestTimeout(f"the client was too slow sending its request: {error}"), params)


def render_unexpected(req: falcon.Request, resp: falcon.Response, error: Exception, params: dict) -> None:
    log.exception("unhandled error on %s %s", req.method, req.path)
    send(resp, {"error": "internal", "message": f"internal error ({type(error).__name__}); see the log"}, 500)


def serialize_http_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Falcon's own errors (unknown route, wrong method, …) in the same shape as ours."""
    phrase = http.HTTPStatus(error.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps({"error": code, "message": error.description or f"{phrase}: {req.method} {req.path}"})


def install_error_rendering(app: falcon.App) -> None:
    app.add_error_handler(Exception, render_unexpected)
    app.add_error_handler(CnetError, render_cnet_error)
    app.add_error_handler(ClientTooSlow, render_too_slow)
    app.set_error_serializer(serialize_http_error)
