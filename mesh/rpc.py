"""Request/reply between node processes over ipc:// (API → scheduler): JSON requests, JSON replies or errors."""
from __future__ import annotations

import logging
from typing import Any, Callable

import orjson
import zmq

from cnetd.errors import CnetError, Unavailable, error_from_dict
from mesh.bus import context

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], Any]


def request(endpoint: str, op: str, args: dict[str, Any], timeout_s: float) -> Any:
    """Send one request and wait for its reply; a fresh REQ socket per call so a lost reply strands nothing."""
    socket = context().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(endpoint)
        socket.send(orjson.dumps({"op": op, "args": args}))
        if not socket.poll(int(timeout_s * 1000)):
            raise Unavailable(f"the scheduler did not answer {op!r} within {timeout_s:g} s")
        reply = orjson.loads(socket.recv())
    finally:
        socket.close()
    if "error" in reply:
        raise error_from_dict(reply["error"])
    return reply["result"]


class RpcServer:
    """Serves requests one at a time on a bound ROUTER socket, dispatching on the request's ``op``."""

    def __init__(self, endpoint: str, handlers: dict[str, Handler]) -> None:
        self.socket = context().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self._handlers = handlers

    def serve_one(self) -> None:
        """Answer one request that is waiting on the socket."""
        identity, _, payload = self.socket.recv_multipart()
        self.socket.send_multipart([identity, b"", orjson.dumps(self._dispatch(payload))])

    def _dispatch(self, payload: bytes) -> dict[str, Any]:
        try:
            message = orjson.loads(payload)
            handler = self._handlers[message["op"]]
            return {"result": handler(message.get("args", {}))}
        except CnetError as exc:
            return {"error": exc.to_dict()}
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return {"error": CnetError(f"malformed request: {exc}").to_dict()}
        except Exception as exc:  # a handler bug must answer, not strand the caller
            log.exception("request failed")
            return {"error": CnetError(f"internal error: {exc}").to_dict()}
