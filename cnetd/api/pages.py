"""What the API serves besides resources: /metrics, the OpenAPI document, the console's page."""
from __future__ import annotations

import falcon
from prometheus_client import CONTENT_TYPE_LATEST

from cnetd.api.base import Resource
from cnetd.common.web import send
from cnetd.core.metrics import node_exposition
from ui import STATIC_DIR


class OpenApi(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from cnetd.api import openapi  # here: the document's code is 0.5 MiB that an idle API worker never needs
        send(resp, openapi.document())


class Metrics(Resource):
    """GET /metrics: every node process's counters and histograms, and the ledger's gauges."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = node_exposition(self.deps.config.paths, self.deps.config.node_id,
                                    self.deps.ledger)


class Console(Resource):
    """GET /: the web console's page; its scripts and styles are static files under /ui/."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-cache"]
        resp.data = (STATIC_DIR / "index.html").read_bytes()
