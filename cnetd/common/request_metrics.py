"""Request metrics for every CNET web app: Falcon middleware counting and timing requests by route, and
a single-process service's app that serves its own registry at /metrics."""
from __future__ import annotations

import time
from typing import Any

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest


class RequestMetrics:
    """Falcon middleware: requests, errors and latency by route template (never by raw path, which an
    attacker could vary without bound)."""

    def __init__(self, namespace: str, registry: CollectorRegistry | None = None) -> None:
        labels = ["route", "method"]
        self._requests = Counter(f"{namespace}_requests_total", "HTTP requests answered", [*labels, "code"],
                                 registry=registry)
        self._errors = Counter(f"{namespace}_errors_total", "HTTP requests answered with a 4xx or 5xx status", labels,
                               registry=registry)
        self._seconds = Histogram(f"{namespace}_request_duration_seconds", "Time to answer an HTTP request", labels,
                                  registry=registry)
        # Each series looked up once: labels() validates and locks on every call (a small GET's 2 %).
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        started = req.context.get("metrics_started")
        if started is None:
            return
        key = (req.uri_template or "unmatched", req.method, resp.status_code)
        children = self._children.get(key)
        if children is None:  # a race makes the same children twice: labels() hands out one per labels
            children = self._children[key] = self._children_of(*key)
        requests, errors, seconds = children
        requests.inc()
        if errors is not None:
            errors.inc()
        seconds.observe(time.perf_counter() - started)

    def _children_of(self, route: str, method: str, code: int) -> tuple[Any, Any, Any]:
        """The labelled series one (route, method, status) counts into."""
        return (self._requests.labels(route, method, str(code)),
                self._errors.labels(route, method) if code >= 400 else None, self._seconds.labels(route, method))


class _MetricsPage:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self._registry)


def instrumented_app(namespace: str) -> tuple[falcon.App, CollectorRegistry]:
    """A single-process service's app: its requests timed into its own registry, served at /metrics;
    the registry is for the service's own metrics."""
    registry = CollectorRegistry()
    app = falcon.App(middleware=[RequestMetrics(namespace, registry)])
    app.add_route("/metrics", _MetricsPage(registry))
    return app, registry
