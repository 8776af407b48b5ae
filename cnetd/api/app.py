"""The API application: the routes of DESIGN.md §6, one module per resource family, over the ledger and node
table (reads) and the scheduler (changes). ``create_app(deps)`` builds it from its dependencies;
``gunicorn_app()`` is gunicorn's factory, which opens them in each worker."""
from __future__ import annotations


import falcon

from cnetd.api import uploads
from cnetd.api.auth import BearerAuth
from cnetd.api.base import ApiDeps, Resource
from cnetd.api.data import DataItem, DataList
from cnetd.api.guard import RequestGuard, known_hosts
from cnetd.api.models import ArtifactFile, Model, Models
from cnetd.api.nodes import Health, NodeEntry, NodeRegistration, NodeResources, Nodes
from cnetd.api.pages import Console, Metrics, OpenApi
from cnetd.api.predict import WorkloadPredict
from cnetd.api.protocol_check import ProtocolCheck
from cnetd.api.v2 import V2_ROUTES
from cnetd.api.events import WorkloadEvents, WorkloadSnapshot
from cnetd.core.remote import RemoteWorkloads
from cnetd.api.workloads import (Workload, WorkloadLogs, WorkloadLogStream, WorkloadPromote, WorkloadRollback,
                                 Workloads, WorkloadStop)
from cnetd.common.request_metrics import RequestMetrics
from cnetd.common.web import install_error_rendering
from cnetd.core.channel import scheduler_channel
from cnetd.core.node_process import open_node_process
from ledger.catalog import Catalog
from ui import STATIC_DIR

ROUTES: tuple[tuple[str, type[Resource]], ...] = (
    ("/api/health", Health), ("/api/resources", NodeResources), ("/api/nodes", Nodes),
    ("/api/nodes/register", NodeRegistration), ("/api/nodes/{node_id}", NodeEntry), ("/api/workloads", Workloads),
    ("/api/workloads/{workload_id}", Workload), ("/api/workloads/{workload_id}/stop", WorkloadStop),
    ("/api/workloads/{workload_id}/logs", WorkloadLogs), ("/api/workloads/{workload_id}/logs/{stream}", WorkloadLogStream),
    ("/api/workloads/{workload_id}/predict", WorkloadPredict), *V2_ROUTES,
    ("/api/workloads/{workload_id}/events", WorkloadEvents), ("/api/workloads/{workload_id}/snapshots/{name}", WorkloadSnapshot),
    ("/api/workloads/{workload_id}/promote", WorkloadPromote), ("/api/workloads/{workload_id}/rollback", WorkloadRollback),
    ("/api/data", DataList), ("/api/data/{data_key}", DataItem), ("/api/models", Models),
    ("/api/models/{sha256}", Model), ("/api/artifacts/{sha256}", ArtifactFile), ("/api/openapi.json", OpenApi),
    ("/metrics", Metrics), ("/", Console),
)


def create_app(deps: ApiDeps) -> falcon.App:
    config = deps.config
    app = falcon.App(middleware=[RequestMetrics("cnet_api"), RequestGuard(known_hosts(config), config.port),
                                 ProtocolCheck(), BearerAuth(config.auth_token, config.auth_open_reads)])
    app.req_options.strip_url_path_trailing_slash = True
    uploads.allow_directory_uploads(app)
    for route, resource in ROUTES:
        app.add_route(route, resource(deps))
    app.add_static_route("/ui", str(STATIC_DIR))
    install_error_rendering(app)
    return app


def gunicorn_app() -> falcon.App:
    """gunicorn's app factory: runs in each worker after the fork, so LMDB and ZeroMQ open per process."""
    node = open_node_process("api")
    schedule = scheduler_channel(node.config.paths.scheduler_endpoint, node.config.health_start_timeout_s)
    return create_app(ApiDeps(
        config=node.config, ledger=node.ledger, nodes=node.nodes, schedule=schedule,
        announce_neighbours=node.publisher.neighbours_changed,
        remote=RemoteWorkloads(node.nodes, node.config.heartbeat_period_s, node.config.auth_token),
        catalog=Catalog(node.config.db_path)))
