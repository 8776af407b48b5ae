"""Command-line plumbing shared by the inference services: common arguments, and serving a detector."""
from __future__ import annotations

import argparse
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import falcon
import numpy as np

from cnetd.common.service_runner import run_service, service_log_path
from inference.detector import Detector
from inference.imaging import decode_image
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
    parser.add_argument("--warmup-image", default=None, help="an image the service predicts on before it takes "
                        "traffic (default: a synthetic one of the model's input size)")


def serve(kind: str, args: argparse.Namespace, make_detector: Callable[[], Detector],
          min_request_threads: int = 0) -> None:
    """Serve ``make_detector()`` on args.host:args.port, logging to <log-dir>/<kind>_service_<port>.log;
    at least ``min_request_threads`` request threads (as many as a batch may hold)."""
    def load_app() -> falcon.App:
        cv2.setNumThreads(1)  # each request decodes and resizes on its own thread: the cores are the lanes'
        detector = make_detector()
        warmed_ms = warm_up(detector, args.warmup_image, args.threads)
        logging.getLogger(kind).info("loaded %s, warmed up in %.0f ms; serving on %s:%d", detector.name, warmed_ms,
                                     args.host, args.port)
        return create_service_app(detector, args.max_image_bytes)

    threads = max(args.threads, min_request_threads)
    run_service(load_app, args.host, args.port, threads, service_log_path(args.log_dir, kind, args.port),
                access_log=args.access_log)


WARMUP_ROUNDS = 2  # a first run of a session allocates and plans; the second runs as every later one


def warm_up(detector: Detector, image_path: str | None, cores: int) -> float:
    """Real inference before the service takes any traffic (its /health answers only after), so that its
    first requests run as fast as the rest: the supplied image, or a synthetic one (random pixels, so that
    nothing is skipped), predicted ``cores`` at once (every session of the service's lanes runs), twice.
    An image that does not decode fails the start. The statistics count from after it. Milliseconds taken."""
    started = time.perf_counter()
    if image_path is not None:
        image = decode_image(Path(image_path).read_bytes())
    else:
        image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)

    def predict(_: int) -> None:
        with detector.serving():
            detector.detect(image, {})
    with ThreadPoolExecutor(max(1, cores)) as pool:
        for _ in range(WARMUP_ROUNDS):
            list(pool.map(predict, range(max(1, cores))))
    detector.statistics.reset()
    return (time.perf_counter() - started) * 1000
