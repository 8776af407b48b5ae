"""Command-line plumbing shared by the inference services: common arguments, and serving a detector."""
from __future__ import annotations

import argparse
import logging
from typing import Callable

import falcon

from cnetd.common.service_runner import run_service, service_log_path
from inference.service import DEFAULT_MAX_IMAGE_BYTES, Detector, create_service_app


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=4, help="request threads sharing the model")
    parser.add_argument("--log-dir", default=".", help="where <kind>_service_PORT.log is written")
    parser.add_argument("--max-image-bytes", type=int, default=DEFAULT_MAX_IMAGE_BYTES)


def serve(kind: str, args: argparse.Namespace, make_detector: Callable[[], Detector]) -> None:
    """Serve ``make_detector()`` on args.host:args.port, logging to <log-dir>/<kind>_service_<port>.log."""
    def load_app() -> falcon.App:
        detector = make_detector()
        logging.getLogger(kind).info("loaded %s; serving on %s:%d", detector.name, args.host, args.port)
        return create_service_app(detector, args.max_image_bytes)

    run_service(load_app, args.host, args.port, args.threads, service_log_path(args.log_dir, kind, args.port))
