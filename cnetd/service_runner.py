"""Runs a Falcon app as a standalone service: one gunicorn worker with threads, logging to one file."""
from __future__ import annotations

import logging
from typing import Any, Callable

import falcon
from gunicorn.app.base import BaseApplication


class _ServiceApplication(BaseApplication):
    def __init__(self, load_app: Callable[[], falcon.App], options: dict[str, Any]) -> None:
        self._load_app = load_app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> falcon.App:
        return self._load_app()  # in the worker, after the fork: models and files are opened once there


def run_service(load_app: Callable[[], falcon.App], host: str, port: int, threads: int, log_file: str) -> None:
    """Serve ``load_app()`` on host:port until SIGTERM; one process, so every request shares its state."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.FileHandler(log_file), logging.StreamHandler()])
    _ServiceApplication(load_app, {
        "bind": f"{host}:{port}", "workers": 1, "worker_class": "gthread", "threads": threads,
        "timeout": 120, "graceful_timeout": 5, "errorlog": log_file, "accesslog": log_file, "loglevel": "info",
    }).run()
