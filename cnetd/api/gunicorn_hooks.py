"""gunicorn settings for the API (``--config python:cnetd.api.gunicorn_hooks``): workers die with their
master, and slow clients meet the node's deadline (``api.client_timeout_s``, ``api.client_min_rate_bytes_s``;
see ``cnetd.common.http_worker``).

The master reads only its runtime dir's paths: the node's config (and what it imports, psutil and zmq among
them, about 2.5 MiB) is the worker's, which serves the app."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from cnetd.common.heap import keep_freed_blocks
from cnetd.common.lifeline import die_with_parent
from cnetd.common.paths import RUNTIME_DIR_ENV, RuntimePaths
from cnetd.core.api_socket import handover_path, serve_handover

if TYPE_CHECKING:
    from cnetd.common.http_worker import DeadlineWorker


def when_ready(server: Any) -> None:
    """The master hands its listening socket to the next api program that asks (a reload's)."""
    serve_handover(server.LISTENERS[0].sock, RuntimePaths.of_this_node().api_handover_dir)


def on_exit(server: Any) -> None:
    handover_path(RuntimePaths.of_this_node().api_handover_dir, os.getpid()).unlink(missing_ok=True)


def post_fork(server: Any, worker: Any) -> None:
    """A worker dies with its master: one left by a killed master would keep serving a dead node's port."""
    die_with_parent()


def child_exit(server: Any, worker: Any) -> None:
    """A worker that ended holds no requests: its live gauges (a deployment's ongoing requests) go. Imported
    here: the master serves no metrics, and prometheus_client's exposition costs it about 3 MiB idle."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker: DeadlineWorker) -> None:
    """Deadlines from the config; a stop during a reload drains kept-alive connections rather than closing
    them; freed blocks kept for reuse (``cnetd.common.heap``); and the worker says it serves
    (``ready/api.<master pid>``: what a reload waits for)."""
    from cnetd.core.config import NodeConfig
    config = NodeConfig.from_runtime_dir(os.environ[RUNTIME_DIR_ENV])
    worker.timeout_s = config.api_client_timeout_s
    worker.min_rate_bytes_s = config.api_client_min_rate_bytes_s
    paths = config.paths
    worker.drain_on_stop = paths.reload_marker.exists
    keep_freed_blocks()  # uploads move their bodies in 1 MiB pieces; each upload hands them back at its end
    (paths.ready_dir / f"api.{os.getppid()}").touch()
