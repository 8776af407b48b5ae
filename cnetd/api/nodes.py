"""The node API: this node's health and resources, its neighbours, and children registering."""
from __future__ import annotations

import time
from typing import Any

import falcon

from cnetd import __version__
from cnetd.common.protocol import AGENT_HEADER, PROTOCOL_HEADER, PROTOCOL_VERSION, compatible, incompatibility
from cnetd.core import hostinfo
from cnetd.api.base import Resource
from cnetd.api.limits import CHILDREN_PAGE_DEFAULT
from cnetd.api.paging import page_and_next, page_size, page_start
from cnetd.api.protocol_check import INCOMPATIBLE_REQUESTS
from cnetd.common.errors import Conflict, IncompatibleVersion, Invalid, NotFound
from cnetd.common.web import read_json, send
from ledger import boot_clock
from ledger.nodetable import Neighbour, Role
from mesh.fanin import child_key
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
    """GET /api/nodes: this node, its parent and peers, and one page of its children by id (``limit``, after
    the id ``after``; ``next`` names the page after). ``summary`` counts the children first. Read from the
    node table's index by role: a page costs its own size, however many children there are."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        config, now, nodes = self.deps.config, boot_clock.now(), self.deps.nodes
        limit = page_size(req) or CHILDREN_PAGE_DEFAULT
        after = page_start(req, "one node id (the last of the page before)") or ""
        this_node = {"id": config.node_id, "role": "self", "api_url": config.api_url,
                     "mesh_endpoint": config.mesh_endpoint, "status": "online", "last_seen_s": 0.0,
                     "resources": self.deps.ledger.usage().to_dict(), "gpus": self.deps.ledger.gpus()}
        def views(neighbours: list[Neighbour]) -> list[dict[str, Any]]:
            return [_neighbour_view(neighbour, config.heartbeat_period_s, now) for neighbour in neighbours
                    if neighbour.node_id != config.node_id]
        parent, peers = views(nodes.with_role(Role.PARENT)), views(nodes.with_role(Role.PEER))
        children, following = page_and_next(views(nodes.with_role(Role.CHILD, after, limit + 1)), limit,
                                             lambda child: child["id"])
        send(resp, {"self": this_node, "parent": (parent or [None])[0], "children": children, "peers": peers,
                    "next": following,
                    "summary": {"children": nodes.count(Role.CHILD), "children_online": nodes.children_online(),
                                "peers": len(peers)}})


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
                                         registration.mesh_endpoint, incompatible=reason,
                                         fan_in=registration.fan_in and reason is None))
        self.deps.announce_neighbours()
        if reason is not None:
            INCOMPATIBLE_REQUESTS.inc()
            raise IncompatibleVersion(reason, protocol=(version or "")[:20])
        answer = {"registered": registration.node_id, "parent": self.deps.config.node_id,
                  "boot_id": self.deps.ledger.identity()["boot_id"]}
        if registration.fan_in:  # the child's own key: it signs the heartbeats it sends up with it
            answer["heartbeat_key"] = child_key(self.deps.nodes.fan_in_secret(), registration.node_id).hex()
        send(resp, answer)


class NodeEntry(Resource):
    """DELETE /api/nodes/{id}: forget a neighbour (a typo'd registration, a node gone for good). A parent or
    peer from this node's config is found again by discovery; a child registers again if it lives."""

    def on_delete(self, req: falcon.Request, resp: falcon.Response, node_id: str) -> None:
        if not self.deps.nodes.remove(node_id):
            raise NotFound(f"no neighbour with id {node_id!r}")
        self.deps.announce_neighbours()
        send(resp, {"id": node_id, "forgotten": True})
