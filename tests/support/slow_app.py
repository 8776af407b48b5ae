"""Test helper: a small Falcon app for the slow-client tests, served by gunicorn with any worker class
(``--config python:tests.support.slow_app tests.support.slow_app:app``): ``GET /health``, and ``POST /echo``, which reads its
whole body and answers its length. ``SLOW_APP_TIMEOUT_S`` sets the deadline worker's request timeout."""
from __future__ import annotations

import os
from typing import Any

import falcon

from cnetd.common.web import install_error_rendering, read_body, send


class _Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"status": "healthy"})


class _Echo:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"received_bytes": len(read_body(req, 64 << 20))})


def post_worker_init(worker: Any) -> None:
    if "SLOW_APP_TIMEOUT_S" in os.environ:
        worker.timeout_s = float(os.environ["SLOW_APP_TIMEOUT_S"])


app = falcon.App()
app.add_route("/health", _Health())
app.add_route("/echo", _Echo())
install_error_rendering(app)
