"""Runs an inference service: one gunicorn worker with threads, so every request shares one model."""
from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Callable

import falcon
from gunicorn.app.base import BaseApplication

from inference.service import DEFAULT_MAX_IMAGE_BYTES, Detector, create_service_app


class _ServiceApplication(BaseApplication):
    def __init__(self, load_app: Callable[[], falcon.App], options: dict[str, Any]) -> None:
        self._load_app = load_app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> falcon.App:
        return self._load_app()  # in the worker, after the fork: the model is loaded once there


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=4, help="request threads sharing the model")
    parser.add_argument("--log-dir", default=".", help="where <kind>_service_PORT.log is written")
    parser.add_argument("--max-image-bytes", type=int, default=DEFAULT_MAX_IMAGE_BYTES)


def serve(kind: str, args: argparse.Namespace, make_detector: Callable[[], Detector]) -> None:
    """Serve ``make_detector()`` on args.host:args.port, logging to <log-dir>/<kind>_service_<port>.log."""
    log_file = os.path.join(args.log_dir, f"{kind}_service_{args.port}.log")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.FileHandler(log_file), logging.StreamHandler()])

    def load_app() -> falcon.App:
        detector = make_detector()
        logging.getLogger(kind).info("loaded %s; serving on %s:%d", detector.name, args.host, args.port)
        return create_service_app(detector, args.max_image_bytes)

    _ServiceApplication(load_app, {
        "bind": f"{args.host}:{args.port}", "workers": 1, "worker_class": "gthread", "threads": args.threads,
        "timeout": 120, "graceful_timeout": 5, "errorlog": log_file, "accesslog": log_file, "loglevel": "info",
    }).run()
