"""What every service executor (mlmodel, opencv, datagateway) shares: the service's address and user, its own
dir, and the supervised program that serves it.

A service runs its server as a supervised program on ``service_host:service_port`` (a free port is chosen
when none is given), restarted after a crash at most three times, ready once ``/health`` answers. Like
process workloads, it runs as ``workloads.user`` (or the ``user`` it asks for, within what the node
allows), in its own dir, which holds its log.
"""
from __future__ import annotations

import errno
import math
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

from cnetd.common.errors import Conflict, Invalid, Unprocessable
from cnetd.common.private_files import make_workload_dir
from ledger.records import WorkloadRecord
from workers.base import HOST_PATTERN, USER_SCHEMA, NodeContext, ProgramSpec, choose_user, port_number
from workers.workload_files import READ, SEARCH, readable_by, readable_copy

SERVICE_FIELDS = ("service_port", "service_host", "user")
WARMUP_FIELDS = ("warmup_image",)  # a model service's: what it predicts on before it takes traffic
WARMUP_SCHEMAS = {"warmup_image": {"type": ["string", "null"], "minLength": 1, "description":
                                   "an image on this node the service predicts on before it takes traffic "
                                   "(default: a synthetic one)"}}
SERVICE_SCHEMAS = {"service_host": {"type": "string", "pattern": HOST_PATTERN, "description": "default 127.0.0.1"},
                   "service_port": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535,
                                    "description": "default: a free port"},
                   "user": USER_SCHEMA}


def _bound_port(host: str, port: int) -> int:
    """The port a listener on ``host:port`` gets (``port`` 0: a free one); Conflict when it is taken, and
    Unprocessable when this node has no such address."""
    with socket.socket() as probe:
        # As the service's server binds: a port its last run left in TIME_WAIT is free, one listened on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror:
            raise Unprocessable(f"config.service_host: {host!r} is not an address of this node") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Conflict(f"config.service_port: {host}:{port} is already in use on this node") from None
            raise Unprocessable(f"config.service_host: cannot listen on {host}:{port} ({exc.strerror})") from None
        return probe.getsockname()[1]


def _first_unprivileged_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def validate_service_fields(config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
    """``service_host`` (default 127.0.0.1) and ``service_port`` (checked free, or a free one chosen), and
    the ``user`` it runs as."""
    host = config.get("service_host", "127.0.0.1")
    if not isinstance(host, str) or not re.fullmatch(HOST_PATTERN, host):
        raise Invalid("config.service_host: expected a host name or IPv4 address")
    asked = config.get("service_port")
    if asked is not None and port_number(asked) is None:
        raise Invalid(f"config.service_port: expected a port number 1-65535, got {asked!r}")
    port = _bound_port(host, 0 if asked is None else port_number(asked))
    user = choose_user(config.get("user"), node)
    privileged = user == "root" or (user is None and os.geteuid() == 0)
    if not privileged and port < _first_unprivileged_port():
        raise Unprocessable(f"config.service_port: {port} is a privileged port and the service runs as "
                            f"{user or 'the node user'}; choose a port from {_first_unprivileged_port()}")
    if user is not None and not readable_by(Path(sys.executable), user, READ | SEARCH):
        raise Unprocessable(f"config.user: {user} cannot run this node's Python ({sys.executable}); build the node's "
                            "venv from a Python every user can run (make does, with /usr/bin/python3)")
    return {"service_host": host, "service_port": port, "user": user}


def with_free_port(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with another free port: the one chosen at validation may have been taken since (a model's
    fetch came between, its own connection on an ephemeral port among them)."""
    return {**config, "service_port": _bound_port(config["service_host"], 0)}


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


def validate_warmup(config: dict[str, Any]) -> dict[str, Any]:
    """``warmup_image``, when given: a file on this node (whether it decodes is the service's to find out)."""
    path = config.get("warmup_image")
    if path is None:
        return {}
    if not isinstance(path, str) or not path:
        raise Invalid("config.warmup_image: expected the path of an image on this node")
    if not os.path.isfile(path):
        raise Unprocessable(f"config.warmup_image: {path!r} is not a file on this node")
    return {"warmup_image": path}


def warmup_arguments(record: WorkloadRecord, node: NodeContext) -> list[str]:
    """The service's warm-up image, copied where its user can read it, as its command line takes it."""
    path = record.config.get("warmup_image")
    if path is None:
        return []
    return ["--warmup-image", readable_copy(path, service_home(record, node), "warmup" + Path(path).suffix,
                                            service_user(record, node))]
