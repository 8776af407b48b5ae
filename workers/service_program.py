"""What every service executor (mlmodel, opencv, datagateway) shares: the service's address and user, its own
dir, and the supervised program that serves it.

A service runs its server as a supervised program on ``service_host:service_port`` (a free port is chosen
when none is given), restarted after a crash at most three times, ready once ``/health`` answers. Like
process workloads, it runs as ``workloads.user`` (or the ``user`` it asks for, within what the node
allows), in its own dir, which holds its log.
"""
from __future__ import annotations

import math
import socket
import sys
from pathlib import Path
from typing import Any

from cnetd.common.errors import Invalid
from cnetd.private_files import make_workload_dir
from ledger.records import WorkloadRecord
from workers.base import NodeContext, ProgramSpec, choose_user
from workers.workload_files import READ, SEARCH, readable_by

SERVICE_FIELDS = ("service_port", "service_host", "user")


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def validate_service_fields(config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
    """``service_host`` (default 127.0.0.1) and ``service_port`` (checked free, or a free one chosen), and
    the ``user`` it runs as."""
    host = config.get("service_host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise Invalid("config.service_host: expected a host name or address")
    port = config.get("service_port")
    if port is None:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    elif not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise Invalid(f"config.service_port: expected a port number 1-65535, got {port!r}")
    elif not _port_is_free(host, port):
        raise Invalid(f"config.service_port: {host}:{port} is already in use on this node")
    user = choose_user(config.get("user"), node)
    if user is not None and not readable_by(Path(sys.executable), user, READ | SEARCH):
        raise Invalid(f"config.user: {user} cannot run this node's Python ({sys.executable}); build the node's "
                      "venv from a Python every user can run (make does, with /usr/bin/python3)")
    return {"service_host": host, "service_port": port, "user": user}


def service_user(record: WorkloadRecord, node: NodeContext) -> str | None:
    return record.config.get("user", node.workload_user)  # records from before services had users: the default


def service_home(record: WorkloadRecord, node: NodeContext) -> Path:
    """The service's own dir (its cwd and log dir), owned by the user it runs as."""
    folder = node.paths.workload_dir(record.id)
    make_workload_dir(folder, service_user(record, node))
    return folder


def service_spec(record: WorkloadRecord, node: NodeContext, module: str, arguments: list[str],
                  min_threads: int = 1) -> ProgramSpec:
    host, port = record.config["service_host"], record.config["service_port"]
    # Compute-bound services get a thread per cpu; I/O-bound ones at least ``min_threads``.
    threads = max(min_threads, math.ceil(record.requirements.cpu))
    home = str(service_home(record, node))
    argv = [sys.executable, "-m", module, *arguments, "--port", str(port), "--host", host,
            "--threads", str(threads), "--log-dir", home]
    public_host = "127.0.0.1" if host == "0.0.0.0" else host
    endpoint = f"http://{public_host}:{port}"
    return ProgramSpec(argv=argv, env={"CNET_WORKLOAD_ID": record.id, "CNET_NODE_ID": node.node_id},
                       cwd=home, restart_policy="always", endpoint=endpoint, health_url=f"{endpoint}/health",
                       user=service_user(record, node))
