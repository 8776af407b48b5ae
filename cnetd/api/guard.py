"""Requests must be meant: Falcon middleware against drive-by and DNS-rebinding requests from web pages.

A web page the operator opens can send "simple" cross-origin requests (text/plain or form bodies, no
preflight), and DNS rebinding lets it read the answers under its own name. So:

- every request must name this node in its Host header: one of its addresses, its configured
  ``api.allowed_hosts``, or loopback names (a rebound name is not among them) → else 421;
- a request that changes something has no text/plain or form body, nor a body without a type: those
  are what a page can send cross-origin without a preflight (any other type is preflighted, and this
  API answers no CORS preflight) → else 415. A body without a type passes with the v2 protocol's
  ``Inference-Header-Content-Length`` header (how Triton's client sends binary tensors): a page cannot
  send a header of its own without a preflight either;
- a request that changes something and carries an Origin must come from a page of this node (the
  console: a known host on the API's port) → else 403. Browsers send Origin on every cross-origin POST,
  so this also covers a multipart form a page could post.

Node-to-node calls and the CLI send no Origin and a JSON body, so they pass.
"""
from __future__ import annotations

import socket
import urllib.parse
from typing import TYPE_CHECKING

import falcon

from cnetd.common.errors import CnetError

if TYPE_CHECKING:
    from cnetd.core.config import NodeConfig

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIMPLE_BODIES = frozenset({"text/plain", "application/x-www-form-urlencoded"})
PREFLIGHTED_HEADER = "Inference-Header-Content-Length"  # not a header a page may send without a preflight
DEFAULT_PORTS = {"http": 80, "https": 443}


class MisdirectedRequest(CnetError):
    status = 421
    code = "misdirected_request"


class UnsupportedMediaType(CnetError):
    status = 415
    code = "unsupported_media_type"


class ForeignOrigin(CnetError):
    status = 403
    code = "foreign_origin"


def _host_name(authority: str) -> str:
    """The host of a Host header or an Origin's authority, without port or IPv6 brackets, lower case."""
    try:
        host = urllib.parse.urlsplit(f"//{authority}").hostname
    except ValueError:
        return ""
    return (host or "").lower()


def known_hosts(config: NodeConfig) -> set[str]:
    """The names this node is reached by: its bind and advertised addresses, ``api.allowed_hosts``, and,
    when it binds every interface, each of this machine's addresses and its host name."""
    names = {config.address, config.advertise_address, *config.api_allowed_hosts}
    if config.address in ("0.0.0.0", "::"):
        import psutil  # only here: 1.2 MiB of the worker's memory that a node on one address does without
        names |= {address.address.split("%")[0] for addresses in psutil.net_if_addrs().values()
                  for address in addresses if address.family in (socket.AF_INET, socket.AF_INET6)}
        names |= {socket.gethostname(), socket.getfqdn()}
    return names


class RequestGuard:
    def __init__(self, known_hosts: set[str], api_port: int) -> None:
        self._known = {host.lower() for host in known_hosts} | LOOPBACK_HOSTS
        self._port = api_port

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        host = _host_name(req.get_header("Host") or "")
        if host not in self._known:
            raise MisdirectedRequest(f"this node does not answer to the name {host[:100]!r} (api.allowed_hosts "
                                     "lists further names it may be reached by)")
        if req.method not in MUTATING:
            return
        content_type = (req.content_type or "").split(";")[0].strip().lower()
        untyped = not content_type and (req.content_length or 0) > 0 and not req.get_header(PREFLIGHTED_HEADER)
        if content_type in SIMPLE_BODIES or untyped:
            raise UnsupportedMediaType(f"a change must be sent as application/json (multipart/form-data for "
                                       f"uploads), not {content_type[:100] or 'an untyped body'!r}")
        origin = req.get_header("Origin")
        if origin is not None and not self._own_page(origin):
            raise ForeignOrigin(f"changes are not accepted from pages of {origin[:100]!r}")

    def _own_page(self, origin: str) -> bool:
        try:
            parts = urllib.parse.urlsplit(origin)
            port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        return parts.scheme in DEFAULT_PORTS and (parts.hostname or "").lower() in self._known and port == self._port
