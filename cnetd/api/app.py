"""The API application: routes of DESIGN.md §6 over the ledger and node table (reads) and the scheduler (changes)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import falcon
from prometheus_client import CONTENT_TYPE_LATEST

from cnetd import __version__, hostinfo
from cnetd.api import openapi, uploads
from cnetd.api.limits import LOG_TAIL_DEFAULT, LOG_TAIL_MAX, PREDICT_MAX_BYTES
from cnetd.api.guard import RequestGuard, known_hosts
from cnetd.api.auth import BearerAuth
from cnetd.common.web import install_error_rendering, read_body, read_json, send
from cnetd.api.remote import RemoteWorkloads
from cnetd.delegation import DELEGATION_BUDGET_S
from cnetd.common.errors import Conflict, DelegationPending, Invalid, NotFound, NotRunning, Unavailable
from cnetd.common.httpclient import TimedOut, Unreachable, call
from cnetd.logtail import tail_lines
from cnetd.common.request_metrics import RequestMetrics
from cnetd.metrics import node_exposition
from cnetd.node_process import NodeProcess, open_node_process
from cnetd.submission import Delegation, parse_delegation, parse_submission
from ledger.catalog import Catalog
from ledger.nodetable import Neighbour, Role
from ledger.records import Status, WorkloadRecord
from mesh.messages import HEARTBEAT_LIVENESS, MalformedMessage, Registration
from mesh.rpc import request
from ui import STATIC_DIR
from workers.base import NodeContext
from cnetd.health import healthy
from workers.registry import EXECUTORS

# A live scheduler answers at once, or after its forwards (DELEGATION_BUDGET_S); a dead one is told by its
# connection within mesh.rpc.CONNECT_TIMEOUT_S.
SCHEDULER_TIMEOUT_S = DELEGATION_BUDGET_S + 10.0
READY_POLL_S, REMOTE_READY_POLL_S = 0.05, 0.2
READY_MARGIN_S = 5.0  # past health.start_timeout_s the health checks have failed it: its status is final
PREDICT_TIMEOUT_S = 60.0
SERVICE_TYPES = ("mlmodel", "opencv")


class _NodeResource:
    def __init__(self, node: NodeProcess, remote: RemoteWorkloads, catalog: Catalog) -> None:
        self.node = node
        self.remote = remote
        self.catalog = catalog
        self.data_root = Path(node.config.data_path)
        self.context = NodeContext.of(node.config)

    def schedule(self, op: str, **args: Any) -> Any:
        return request(self.node.config.paths.scheduler_endpoint, op, args, SCHEDULER_TIMEOUT_S)

    def view(self, record: WorkloadRecord) -> dict[str, Any]:
        if _proxied(record):
            return self.remote.view(record)
        return self.present(record, {} if record.remote else self.facts(record))

    def present(self, record: WorkloadRecord, facts: dict[str, Any]) -> dict[str, Any]:
        """A record as readers see it: with what only its program knows, secrets in its config hidden."""
        executor = EXECUTORS.get(record.type)
        config = executor.shown_config(record.config) if executor else record.config
        return {**record.to_dict(), "config": config, **facts}

    def facts(self, record: WorkloadRecord) -> dict[str, Any]:
        executor = EXECUTORS.get(record.type)  # data records have no executor: uploads run no program
        return executor.facts(record, self.context) if executor else {}


class Health(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        identity = self.node.ledger.identity()
        send(resp, {"status": "ok", "node": self.node.config.node_id, "version": __version__,
                    "uptime_s": round(time.time() - identity["started_at"], 3), "boot_id": identity["boot_id"],
                    "mesh_endpoint": self.node.config.mesh_endpoint, "api_url": self.node.config.api_url,
                    "revision": self.revision()})

    def revision(self) -> str:
        """Moves when what the console shows may have: this node's ledger, or what a neighbour announces
        (ledger, subtree, coming back). Two counters, so a liveness probe stays O(1) however many
        neighbours there are; a neighbour going silent shows at the console's 30 s reload."""
        return f"{self.node.ledger.version()}-{self.node.nodes.revision()}"


class NodeResources(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        usage = hostinfo.gpu_usage() if self.node.config.capacity.gpu else {}
        gpus = [{**gpu, **usage.get(gpu["index"], {})} for gpu in self.node.ledger.gpus()]
        send(resp, {"node": self.node.config.node_id, **self.node.ledger.usage().to_dict(), "gpus": gpus})


def _neighbour_view(neighbour: Neighbour, heartbeat_period_s: float, now: float) -> dict[str, Any]:
    beat = neighbour.heartbeat or {}
    return {"id": neighbour.node_id, "role": neighbour.role, "api_url": neighbour.api_url,
            "mesh_endpoint": neighbour.mesh_endpoint,
            "status": "online" if neighbour.online(heartbeat_period_s, HEARTBEAT_LIVENESS, now) else "offline",
            "last_seen_s": round(now - neighbour.last_seen, 3) if neighbour.last_seen else None,
            "resources": {kind: beat[kind] for kind in ("capacity", "allocated", "available")} if beat else None,
            "workloads": beat.get("workloads"), "subtree": beat.get("subtree"), "gpus": beat.get("gpus", [])}


class Nodes(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        config, now = self.node.config, time.time()
        this_node = {"id": config.node_id, "role": "self", "api_url": config.api_url,
                     "mesh_endpoint": config.mesh_endpoint, "status": "online", "last_seen_s": 0.0,
                     "resources": self.node.ledger.usage().to_dict(), "gpus": self.node.ledger.gpus()}
        views: dict[str, list[dict[str, Any]]] = {Role.PARENT: [], Role.CHILD: [], Role.PEER: []}
        for neighbour in sorted(self.node.nodes.all(), key=lambda neighbour: neighbour.node_id):
            if neighbour.node_id != config.node_id:
                views[neighbour.role].append(_neighbour_view(neighbour, config.heartbeat_period_s, now))
        send(resp, {"self": this_node, "parent": (views[Role.PARENT] or [None])[0],
                    "children": views[Role.CHILD], "peers": views[Role.PEER]})


class NodeRegistration(_NodeResource):
    """POST /api/nodes/register: a child announces itself; the register subscribes to its heartbeats."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            registration = Registration.decode(read_json(req, self.node.config.api_max_body_bytes))
        except MalformedMessage as exc:
            raise Invalid(str(exc)) from None
        if registration.node_id == self.node.config.node_id:
            raise Invalid(f"a node cannot register with itself ({registration.node_id})")
        known = self.node.nodes.get(registration.node_id)
        if known is not None and (known.role != Role.CHILD or (
                (known.api_url, known.mesh_endpoint) != (registration.api_url, registration.mesh_endpoint)
                and known.online(self.node.config.heartbeat_period_s, HEARTBEAT_LIVENESS))):
            raise Conflict(f"{registration.node_id} is already this node's {known.role}, online at "
                           f"{known.api_url}: a registration cannot take its entry over")
        self.node.nodes.upsert(Neighbour(registration.node_id, Role.CHILD, registration.api_url,
                                         registration.mesh_endpoint))
        self.node.publisher.neighbours_changed()
        send(resp, {"registered": registration.node_id, "parent": self.node.config.node_id,
                    "boot_id": self.node.ledger.identity()["boot_id"]})


class NodeEntry(_NodeResource):
    """DELETE /api/nodes/{id}: forget a neighbour (a typo'd registration, a node gone for good). A parent or
    peer from this node's config is found again by discovery; a child registers again if it lives."""

    def on_delete(self, req: falcon.Request, resp: falcon.Response, node_id: str) -> None:
        if not self.node.nodes.remove(node_id):
            raise NotFound(f"no neighbour with id {node_id!r}")
        self.node.publisher.neighbours_changed()
        send(resp, {"id": node_id, "forgotten": True})


class Workloads(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status, workload_type, ids = req.get_param("status"), req.get_param("type"), req.get_param("ids")
        wanted = set(ids.split(",")) if ids else None
        records = [record for record in self.node.ledger.workloads()
                   if (wanted is None or record.id in wanted) and (workload_type is None or record.type == workload_type)]
        remote_views = iter(self.remote.views([record for record in records if _proxied(record)]))
        views = [next(remote_views) if _proxied(record) else self.view(record) for record in records]
        views = [view for view in views if status is None or view["status"] == status]
        send(resp, {"workloads": views, "count": len(views)})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if (req.content_type or "").lower().startswith(falcon.MEDIA_MULTIPART):
            send(resp, uploads.receive(req, self.node.config.node_id, self.data_root, self.catalog, self.schedule,
                                       self.context.workload_user), 201)
            return
        body = read_json(req, self.node.config.api_max_body_bytes)
        # Set by a delegating node only; parse_submission refuses a body that is not an object.
        delegation = parse_delegation(body.pop("delegation")) if isinstance(body, dict) and "delegation" in body \
            else Delegation(visited=[])
        record = parse_submission(body)
        if delegation.settle:
            self._confirm(record.id, delegation.attempt, resp)
            return
        placed = self.schedule("submit", workload=record.to_dict(), visited=delegation.visited,
                               attempt=delegation.attempt, budget_s=delegation.budget_s or DELEGATION_BUDGET_S)
        pointer = WorkloadRecord.from_dict(placed["placed"])
        if not pointer.remote:
            view = self.view(pointer) if delegation.forwarded else self._wait_ready(pointer.id)
        else:
            view = self.remote.as_seen_here(pointer, placed["answer"]) if "answer" in placed else self.view(pointer)
            if not delegation.forwarded:  # a forward is answered at admission; the entry node follows readiness
                view = self._follow_remote(pointer, view)
        send(resp, view, 201)

    def _confirm(self, workload_id: str, attempt: str | None, resp: falcon.Response) -> None:
        """A delegating node asks what became of its forward ``attempt``: 201 with the record, 202 while this
        node settles its own onward forward, 404 when it never arrived (it is now refused if it does)."""
        answer = self.schedule("confirm", id=workload_id, attempt=attempt)
        if "placed" in answer:
            send(resp, self.view(WorkloadRecord.from_dict(answer["placed"])), 201)
        elif answer.get("pending"):
            send(resp, {"id": workload_id, "status": "unknown"}, 202)
        else:
            raise NotFound(f"no workload with id {workload_id!r}; that forward is now refused should it arrive")

    def _ready_deadline(self) -> float:
        return time.monotonic() + self.node.config.health_start_timeout_s + READY_MARGIN_S

    def _follow_remote(self, pointer: WorkloadRecord, view: dict[str, Any]) -> dict[str, Any]:
        """The origin's view of a delegated submission once the target says it is ready (or ended, or the
        wait ran out)."""
        deadline = self._ready_deadline()
        while view["status"] == Status.STARTING and time.monotonic() < deadline:
            time.sleep(REMOTE_READY_POLL_S)
            view = self.remote.view(pointer)
        return view

    def _wait_ready(self, workload_id: str) -> dict[str, Any]:
        """Answer a submission once it is ready: a service's /health answers and its program has told what
        only it knows (a container id); or it ended; or time ran out (the monitor's checks take over)."""
        deadline = self._ready_deadline()
        while True:
            record = self.node.ledger.get(workload_id)
            if record.status == Status.STARTING and record.health_url and record.process_pid is not None \
                    and healthy(record.health_url):
                record = WorkloadRecord.from_dict(self.schedule("mark_healthy", id=workload_id))
            facts = self.facts(record)
            facts_pending = any(value is None for value in facts.values())
            if (record.status != Status.STARTING and not facts_pending) or record.terminal \
                    or time.monotonic() > deadline:
                return self.present(record, facts)
            time.sleep(READY_POLL_S)


def _proxied(record: WorkloadRecord) -> bool:
    """Shown as its next hop sees it: a delegated workload whose delegation is settled (a pointer still
    settling is shown as this node holds it)."""
    return record.remote and not record.settling


def _settled(record: WorkloadRecord) -> WorkloadRecord:
    """An action needs to know where a workload runs: not while its delegation is being settled."""
    if record.settling:
        raise DelegationPending(f"workload {record.id} is being delegated to {record.delegated_to} and its outcome "
                                "is not known yet; try again shortly", node=record.delegated_to)
    return record


class Workload(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        send(resp, self.view(self.node.ledger.get(workload_id)))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = _settled(self.node.ledger.get(workload_id))
        if record.type == "data" and not record.remote:
            send(resp, uploads.delete(workload_id, self.data_root, self.catalog, self.schedule))
            return
        if not record.remote:
            send(resp, self.schedule("delete", id=workload_id))
            return
        status, body = self.remote.act(record, "DELETE")
        if status not in (200, 404):
            send(resp, body, status)
            return
        self.remote.forget(workload_id)
        send(resp, self.schedule("forget", id=workload_id))


class WorkloadStop(_NodeResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = _settled(self.node.ledger.get(workload_id))
        if record.remote:
            status, body = self.remote.act(record, "POST", "/stop")
            send(resp, body, status)
        else:
            send(resp, self.schedule("stop", id=workload_id))


class WorkloadPredict(_NodeResource):
    """POST /api/workloads/{id}/predict: the console's way to a model service, relayed by the node (the
    service may listen where the browser cannot reach, or on another node). The body and query go as-is."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = self.node.ledger.get(workload_id)
        if record.type not in SERVICE_TYPES:
            raise Invalid(f"workload {workload_id} is a {record.type}; "
                          f"predictions need one of {', '.join(SERVICE_TYPES)}")
        body = read_body(req, PREDICT_MAX_BYTES)
        query = f"?{req.query_string}" if req.query_string else ""
        content_type = req.content_type or falcon.MEDIA_JSON
        if record.remote:
            status, answer = self.remote.act(record, "POST", f"/predict{query}", raw=body, content_type=content_type)
        else:
            if record.status != Status.RUNNING or not record.endpoint:
                raise NotRunning(f"workload {workload_id} is {record.status}, not running")
            try:
                status, answer = call("POST", f"{record.endpoint}/predict{query}", raw=body,
                                      headers={"Content-Type": content_type}, timeout_s=PREDICT_TIMEOUT_S)
            except (Unreachable, TimedOut) as exc:
                raise Unavailable(f"workload {workload_id} did not answer: {exc}") from None
        send(resp, answer, status)


class OpenApi(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, openapi.document())


class Metrics(_NodeResource):
    """GET /metrics: every node process's counters and histograms, and the ledger's gauges."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = node_exposition(str(self.node.config.paths.metrics_dir), self.node.config.node_id,
                                    self.node.ledger)


class Console(_NodeResource):
    """GET /: the web console's page; its scripts and styles are static files under /ui/."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-cache"]
        resp.data = (STATIC_DIR / "index.html").read_bytes()


class WorkloadLogs(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = self.node.ledger.get(workload_id)
        raw = req.params.get("tail", str(LOG_TAIL_DEFAULT))  # a list when repeated
        if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and int(raw) <= LOG_TAIL_MAX):
            raise Invalid(f"tail: expected one whole number of lines, 0 to {LOG_TAIL_MAX}")
        lines = int(raw)
        if record.remote:
            status, body = self.remote.act(record, "GET", f"/logs?tail={lines}")
            send(resp, body, status)
            return
        paths = self.node.config.paths
        send(resp, {"id": record.id, "tail": lines,
                    "stdout": tail_lines(paths.workload_log(record.id, "stdout"), lines),
                    "stderr": tail_lines(paths.workload_log(record.id, "stderr"), lines)})


class DataList(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        items = self.catalog.all()
        send(resp, {"data": items, "count": len(items)})


class DataItem(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, data_key: str) -> None:
        send(resp, self._stored(data_key))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, data_key: str) -> None:
        self._stored(data_key)
        send(resp, uploads.delete(data_key, self.data_root, self.catalog, self.schedule))

    def _stored(self, data_key: str) -> dict[str, Any]:
        stored = self.catalog.get(data_key)
        if stored is None:
            raise NotFound(f"no data with key {data_key!r}")
        return stored


ROUTES: tuple[tuple[str, type[_NodeResource]], ...] = (
    ("/api/health", Health), ("/api/resources", NodeResources), ("/api/nodes", Nodes),
    ("/api/nodes/register", NodeRegistration), ("/api/nodes/{node_id}", NodeEntry), ("/api/workloads", Workloads),
    ("/api/workloads/{workload_id}", Workload), ("/api/workloads/{workload_id}/stop", WorkloadStop),
    ("/api/workloads/{workload_id}/logs", WorkloadLogs), ("/api/workloads/{workload_id}/predict", WorkloadPredict),
    ("/api/data", DataList), ("/api/data/{data_key}", DataItem), ("/api/openapi.json", OpenApi),
    ("/metrics", Metrics), ("/", Console),
)


def create_app() -> falcon.App:
    """gunicorn's app factory: runs in each worker after the fork, so LMDB and ZeroMQ open per process."""
    node = open_node_process("api")
    remote = RemoteWorkloads(node.nodes, node.config.heartbeat_period_s, node.config.auth_token)
    catalog = Catalog(node.config.db_path)
    app = falcon.App(middleware=[RequestMetrics("cnet_api"), RequestGuard(known_hosts(node.config), node.config.port),
                                 BearerAuth(node.config.auth_token, node.config.auth_open_reads)])
    app.req_options.strip_url_path_trailing_slash = True
    uploads.allow_directory_uploads(app)
    for route, resource in ROUTES:
        app.add_route(route, resource(node, remote, catalog))
    app.add_static_route("/ui", str(STATIC_DIR))
    install_error_rendering(app)
    return app
