"""gunicorn settings for the API (``--config python:cnetd.api.gunicorn_hooks``): workers die with their
master, and slow clients meet the node's deadline (``api.client_timeout_s``, ``api.client_min_rate_bytes_s``;
see ``cnetd.common.http_worker``)."""
from __future__ import annotations

import os
from typing import Any

from cnetd.common.http_worker import DeadlineWorker
from cnetd.core.config import NodeConfig
from cnetd.common.lifeline import die_with_parent


def post_fork(server: Any, worker: Any) -> None:
    """A worker dies with its master: one left by a killed master would keep serving a dead node's port."""
    die_with_parent()


def post_worker_init(worker: DeadlineWorker) -> None:
    config = NodeConfig.from_runtime_dir(os.environ["CNET_RUNTIME_DIR"])
    worker.timeout_s = config.api_client_timeout_s
    worker.min_rate_bytes_s = config.api_client_min_rate_bytes_s
