"""The node API: this node's health and resources, its neighbours, and children registering."""
from __future__ import annotations

import time
from typing import Any

import falcon

from cnetd import __version__
from cnetd.common.protocol import AGENT_HEADER, PROTOCOL_HEADER, PROTOCOL_VERSION, compatible, incompatibility
from cnetd.core import hostinfo
from cnetd.api.base import Resource
from cnetd.api.protocol_check import INCOMPATIBLE_REQUESTS
from cnetd.common.errors import Conflict, IncompatibleVersion, Invalid, NotFound
from cnetd.common.web import read_json, send
from ledger import boot_clock
from ledger.nodetable import Neighbour, Role
from mesh.messages import HEARTBEAT_LIVENESS, MalformedMessage, Registration


class Health(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        identity = self.deps.ledger.identity()
        send(resp, {"status": "ok", "node": self.deps.config.node_id, "version": __version__,
                    "protocol": PROTOCOL_VERSION,
                    "uptime_s": round(time.time() - identity["started_at"], 3), "boot_id": identity["boot_id"],
                    "mesh_endpoint": self.deps.config.mesh_endpoint, "api_url": self.deps.config.api_url,
                    "revision": self.revision()})

    def revision(self) -> str:
        """Moves when what the console shows may have: this node's ledger, or what a neighbour announces
        (ledger, subtree, coming back). Two counters, so a liveness probe stays O(1) however many
        neighbours there are; a neighbour going silent shows at the console's 30 s reload."""
        return f"{self.deps.ledger.version()}-{self.deps.nodes.revision()}"


class NodeResources(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        usage = hostinfo.gpu_usage() if self.deps.config.capacity.gpu else {}
        gpus = [{**gpu, **usage.get(gpu["index"], {})} for gpu in self.deps.ledger.gpus()]
        send(resp, {"node": self.deps.config.node_id, **self.deps.ledger.usage().to_dict(), "gpus": gpus})


def _neighbour_view(neighbour: Neighbour, heartbeat_period_s: float, now: float) -> dict[str, Any]:
    beat = neighbour.heartbeat or {}
    status = "incompatible" if neighbour.incompatible else \
        "online" if neighbour.online(heartbeat_period_s, HEARTBEAT_LIVENESS, now) else "offline"
    return {"id": neighbour.node_id, "role": neighbour.role, "api_url": neighbour.api_url,
            "mesh_endpoint": neighbour.mesh_endpoint, "status": status, "incompatible": neighbour.incompatible,
            "agent": beat.get("agent"), "protocol": beat.get("protocol"),
            "last_seen_s": round(now - neighbour.last_seen, 3) if neighbour.last_seen else None,
            "resources": {kind: beat[kind] for kind in ("capacity", "allocated", "available")} if beat else None,
            "workloads": beat.get("workloads"), "subtree": beat.get("subtree"), "gpus": beat.get("gpus", [])}


class Nodes(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        config, now = self.deps.config, boot_clock.now()
        this_node = {"id": config.node_id, "role": "self", "api_url": config.api_url,
                     "mesh_endpoint": config.mesh_endpoint, "status": "online", "last_seen_s": 0.0,
                     "resources": self.deps.ledger.usage().to_dict(), "gpus": self.deps.ledger.gpus()}
        views: dict[str, list[dict[str, Any]]] = {Role.PARENT: [], Role.CHILD: [], Role.PEER: []}
        for neighbour in sorted(self.deps.nodes.all(), key=lambda neighbour: neighbour.node_id):
            if neighbour.node_id != config.node_id:
                views[neighbour.role].append(_neighbour_view(neighbour, config.heartbeat_period_s, now))
        send(resp, {"self": this_node, "parent": (views[Role.PARENT] or [None])[0],
                    "children": views[Role.CHILD], "peers": views[Role.PEER]})


class NodeRegistration(Resource):
    """POST /api/nodes/register: a child announces itself; the register subscribes to its heartbeats."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            registration = Registration.decode(read_json(req, self.deps.config.api_max_body_bytes))
        except MalformedMessage as exc:
            raise Invalid(str(exc)) from None
        if registration.node_id == self.deps.config.node_id:
            raise Invalid(f"a node cannot register with itself ({registration.node_id})")
        known = self.deps.nodes.get(registration.node_id)
        if known is not None and (known.role != Role.CHILD or (
                (known.api_url, known.mesh_endpoint) != (registration.api_url, registration.mesh_endpoint)
                and known.online(self.deps.config.heartbeat_period_s, HEARTBEAT_LIVENESS))):
            raise Conflict(f"{registration.node_id} is already this node's {known.role}, online at "
                           f"{known.api_url}: a registration cannot take its entry over")
        version = req.get_header(PROTOCOL_HEADER)
        reason = None if compatible(version) else incompatibility(version, req.get_header(AGENT_HEADER))
        # Kept either way, so that cnet nodes and the console show a child of another major as such.
        self.deps.nodes.upsert(Neighbour(registration.node_id, Role.CHILD, registration.api_url,
                                         registration.mesh_endpoint, incompatible=reason))
        self.deps.announce_neighbours()
        if reason is not None:
            INCOMPATIBLE_REQUESTS.inc()
            raise IncompatibleVersion(reason, protocol=(version or "")[:20])
        send(resp, {"registered": registration.node_id, "parent": self.deps.config.node_id,
                    "boot_id": self.deps.ledger.identity()["boot_id"]})


class NodeEntry(Resource):
    """DELETE /api/nodes/{id}: forget a neighbour (a typo'd registration, a node gone for good). A parent or
    peer from this node's config is found again by discovery; a child registers again if it lives."""

    def on_delete(self, req: falcon.Request, resp: falcon.Response, node_id: str) -> None:
        if not self.deps.nodes.remove(node_id):
            raise NotFound(f"no neighbour with id {node_id!r}")
        self.deps.announce_neighbours()
        send(resp, {"id": node_id, "forgotten": True})
