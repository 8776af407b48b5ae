"""Command-line plumbing shared by the inference services: common arguments, and serving a detector."""
from __future__ import annotations

import argparse
import logging
from typing import Callable

import cv2
import falcon

from cnetd.common.service_runner import run_service, service_log_path
from inference.detector import Detector
from inference.service import DEFAULT_MAX_IMAGE_BYTES, create_service_app


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=2, help="the cores it uses at most (the workload's "
                        "cpu): as many request threads, and inferences on at most as many cores")
    parser.add_argument("--log-dir", default=".", help="where <kind>_service_PORT.log is written")
    parser.add_argument("--access-log", action="store_true", help="a line per request in the log too (off: at "
                        "a model's rates, lines without end in a log nothing rotates, and 1-2%% of the throughput; "
                        "/metrics counts the requests)")
    parser.add_argument("--name", default=None, help="the model's name in the v2 protocol (default: the "
                        "model file's stem, or the cascade's name)")
    parser.add_argument("--max-image-bytes", type=int, default=DEFAULT_MAX_IMAGE_BYTES)


def serve(kind: str, args: argparse.Namespace, make_detector: Callable[[], Detector],
          min_request_threads: int = 0) -> None:
    """Serve ``make_detector()`` on args.host:args.port, logging to <log-dir>/<kind>_service_<port>.log;
    at least ``min_request_threads`` request threads (as many as a batch may hold)."""
    def load_app() -> falcon.App:
        cv2.setNumThreads(1)  # each request decodes and resizes on its own thread: the cores are the lanes'
        detector = make_detector()
        logging.getLogger(kind).info("loaded %s; serving on %s:%d", detector.name, args.host, args.port)
        return create_service_app(detector, args.max_image_bytes)

    threads = max(args.threads, min_request_threads)
    run_service(load_app, args.host, args.port, threads, service_log_path(args.log_dir, kind, args.port),
                access_log=args.access_log)
