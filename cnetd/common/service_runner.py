"""Runs a Falcon app as a standalone service: one gunicorn worker with threads (requests read whole before a
thread takes them, see ``cnetd.common.http_worker``), logging to one file."""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable

import falcon
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from cnetd.common.access_log import BatchedAccessLog
from cnetd.common.http_worker import DeadlineWorker
from cnetd.common.lifeline import die_with_parent

log = logging.getLogger(__name__)


class _ServiceApplication(BaseApplication):
    def __init__(self, load_app: Callable[[], falcon.App], options: dict[str, Any]) -> None:
        self._load_app = load_app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> falcon.App:
        """In the worker, after the fork: models and files are opened once there. A worker that cannot
        load its app ends at once with gunicorn's boot-error code, so the master halts and the service
        exits non-zero (a plain exit could hang on a lock the fork copied, and the master would wait)."""
        try:
            return self._load_app()
        except Exception:
            log.exception("the service could not load")
            logging.shutdown()
            sys.stderr.flush()
            os._exit(Arbiter.WORKER_BOOT_ERROR)


def service_log_path(log_dir: str, kind: str, port: int) -> str:
    """Where a service of ``kind`` (yolo, opencv, gateway) on ``port`` logs: one file per service."""
    return os.path.join(log_dir, f"{kind}_service_{port}.log")


def _after_fork(arbiter: Arbiter, worker: Any) -> None:
    """A killed master must not leave its worker holding the port (a restart could not bind it); the
    worker's access lines are written out each second."""
    die_with_parent()
    if isinstance(worker.log, BatchedAccessLog):
        worker.log.start_flusher()


def run_service(load_app: Callable[[], falcon.App], host: str, port: int, threads: int, log_file: str,
                access_log: bool = True) -> None:
    """Serve ``load_app()`` on host:port until SIGTERM; one process, so every request shares its state. With
    ``access_log``, a line per request in ``log_file`` beside the errors."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.FileHandler(log_file), logging.StreamHandler()])
    _ServiceApplication(load_app, {
        "bind": f"{host}:{port}", "workers": 1, "worker_class": DeadlineWorker, "threads": threads,
        "timeout": 120, "graceful_timeout": 5, "errorlog": log_file, "loglevel": "info",
        "accesslog": log_file if access_log else None, "logger_class": BatchedAccessLog,
        "control_socket_disable": True,  # gunicorn's default control socket is one path per user, shared by all
        "post_fork": _after_fork,
    }).run()
