"""Test helper: a small Falcon app for the slow-client tests, served by gunicorn with any worker class
(``--config python:tests.support.slow_app tests.support.slow_app:app``): ``GET /health``, ``POST /echo``, which
reads its whole body and answers its length, and ``POST /busy?seconds=S``, which holds its thread for S seconds
(a long prediction). ``SLOW_APP_TIMEOUT_S`` sets the deadline worker's request timeout, and
``SLOW_APP_STALLED_AFTER_S`` when it takes its pool for stalled.

``POST /stall-loop?seconds=S`` makes the worker's event loop stall once for S seconds, after it has handled
the events of one poll and before it closes expired kept-alive connections (gthread's loop calls
``is_parent_alive`` between the two): what a loop busy with a burst of connections does for a moment."""
from __future__ import annotations

import os
import time
from typing import Any

import falcon

from cnetd.common.web import install_error_rendering, read_body, send


class _Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"status": "healthy"})


class _Echo:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"received_bytes": len(read_body(req, 64 << 20))})


class _Busy:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        seconds = req.get_param_as_float("seconds", required=True, min_value=0, max_value=10)
        time.sleep(seconds)
        send(resp, {"busy_s": seconds})


LOOP_STALLS_S: list[float] = []  # asked for by a request thread, taken by the worker's loop


class _StallLoop:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        seconds = req.get_param_as_float("seconds", required=True, min_value=0, max_value=10)
        LOOP_STALLS_S.append(seconds)
        send(resp, {"stall_s": seconds})


def post_worker_init(worker: Any) -> None:
    if "SLOW_APP_TIMEOUT_S" in os.environ:
        worker.timeout_s = float(os.environ["SLOW_APP_TIMEOUT_S"])
    if "SLOW_APP_STALLED_AFTER_S" in os.environ:
        worker.stalled_after_s = float(os.environ["SLOW_APP_STALLED_AFTER_S"])
    parent_alive = worker.is_parent_alive

    def is_parent_alive_after_any_stall() -> bool:
        while LOOP_STALLS_S:
            time.sleep(LOOP_STALLS_S.pop())
        return parent_alive()
    worker.is_parent_alive = is_parent_alive_after_any_stall


app = falcon.App()
app.add_route("/health", _Health())
app.add_route("/echo", _Echo())
app.add_route("/busy", _Busy())
app.add_route("/stall-loop", _StallLoop())
install_error_rendering(app)
