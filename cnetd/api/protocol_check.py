"""Nodes of another protocol major are refused, at every request (Falcon middleware): a node-to-node request
says its protocol in ``X-CNET-Protocol`` (``cnetd.common.protocol``), and one of another major gets a 409
naming both versions. Users' requests (the CLI, the console) say nothing and pass; every answer carries
this node's protocol and agent version."""
from __future__ import annotations

from typing import Any

import falcon
from prometheus_client import Counter

from cnetd.common.errors import IncompatibleVersion
from cnetd.common.protocol import AGENT_HEADER, PROTOCOL_HEADER, compatible, incompatibility, protocol_headers

INCOMPATIBLE_REQUESTS = Counter("cnet_incompatible_requests_total",
                                "Requests from nodes of another protocol major, refused with 409")


REGISTRATION = "/api/nodes/register"  # refuses on its own, keeping the child's entry marked incompatible


class ProtocolCheck:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        version = req.get_header(PROTOCOL_HEADER)
        if version is not None and not compatible(version) and req.path != REGISTRATION:
            INCOMPATIBLE_REQUESTS.inc()
            raise IncompatibleVersion(incompatibility(version, req.get_header(AGENT_HEADER)),
                                      protocol=version[:20])

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        resp.set_headers(protocol_headers())
