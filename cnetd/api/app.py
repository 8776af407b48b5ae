"""The API application: routes of DESIGN.md §6 over the ledger (reads) and the scheduler (changes)."""
from __future__ import annotations

import time
from typing import Any

import falcon

from cnetd import __version__
from cnetd.api.http import install_error_rendering, read_json, send
from cnetd.errors import Invalid
from cnetd.logtail import tail_lines
from cnetd.node_process import NodeProcess, open_node_process
from cnetd.submission import parse_submission
from mesh.rpc import request

SCHEDULER_TIMEOUT_S = 60.0
LOG_TAIL_DEFAULT, LOG_TAIL_MAX = 200, 10_000


class _NodeResource:
    def __init__(self, node: NodeProcess) -> None:
        self.node = node

    def schedule(self, op: str, **args: Any) -> Any:
        return request(self.node.config.paths.scheduler_endpoint, op, args, SCHEDULER_TIMEOUT_S)


class Health(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        started_at = self.node.ledger.identity().get("started_at", time.time())
        send(resp, {"status": "ok", "node": self.node.config.node_id, "version": __version__,
                    "uptime_s": round(time.time() - started_at, 3)})


class NodeResources(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"node": self.node.config.node_id, **self.node.ledger.usage().to_dict()})


class Nodes(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        config = self.node.config
        this_node = {"id": config.node_id, "api_url": config.api_url, "mesh_endpoint": config.mesh_endpoint,
                     "status": "online", "last_seen_s": 0.0, "resources": self.node.ledger.usage().to_dict()}
        send(resp, {"self": this_node, "parent": None, "children": [], "peers": []})


class Workloads(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status, workload_type = req.get_param("status"), req.get_param("type")
        records = [record.to_dict() for record in self.node.ledger.workloads()
                   if (status is None or record.status == status) and (workload_type is None or record.type == workload_type)]
        send(resp, {"workloads": records, "count": len(records)})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        record = parse_submission(read_json(req, self.node.config.api_max_body_bytes))
        send(resp, self.schedule("submit", workload=record.to_dict()), 201)


class Workload(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        send(resp, self.node.ledger.get(workload_id).to_dict())

    def on_delete(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        send(resp, self.schedule("delete", id=workload_id))


class WorkloadStop(_NodeResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        send(resp, self.schedule("stop", id=workload_id))


class WorkloadLogs(_NodeResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = self.node.ledger.get(workload_id)
        try:
            lines = int(req.get_param("tail") or LOG_TAIL_DEFAULT)
        except ValueError:
            raise Invalid("tail: expected a whole number of lines") from None
        if not 0 <= lines <= LOG_TAIL_MAX:
            raise Invalid(f"tail: expected 0 to {LOG_TAIL_MAX} lines")
        paths = self.node.config.paths
        send(resp, {"id": record.id, "tail": lines,
                    "stdout": tail_lines(paths.workload_log(record.id, "stdout"), lines),
                    "stderr": tail_lines(paths.workload_log(record.id, "stderr"), lines)})


def create_app() -> falcon.App:
    """gunicorn's app factory: runs in each worker after the fork, so LMDB and ZeroMQ open per process."""
    node = open_node_process("api")
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    app.add_route("/api/health", Health(node))
    app.add_route("/api/resources", NodeResources(node))
    app.add_route("/api/nodes", Nodes(node))
    app.add_route("/api/workloads", Workloads(node))
    app.add_route("/api/workloads/{workload_id}", Workload(node))
    app.add_route("/api/workloads/{workload_id}/stop", WorkloadStop(node))
    app.add_route("/api/workloads/{workload_id}/logs", WorkloadLogs(node))
    install_error_rendering(app)
    return app
