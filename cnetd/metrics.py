"""Prometheus metrics for nodes and services.

Node processes (api workers, register, scheduler) write counters and histograms into prometheus_client's
multiprocess files under the runtime dir (``PROMETHEUS_MULTIPROC_DIR``, set by supervisord for them only),
so /metrics sums every gunicorn worker and process; the ledger's gauges are read at scrape time. A service
is one process and keeps its own registry.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Iterator

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

from ledger.records import RESOURCE_KINDS
from ledger.store import Ledger

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

HEARTBEATS_SENT = Counter("cnet_heartbeats_sent_total", "Heartbeats this node published on its mesh endpoint")
HEARTBEATS_RECEIVED = Counter("cnet_heartbeats_received_total", "Neighbour heartbeats recorded in the node table")
HEARTBEATS_DROPPED = Counter("cnet_heartbeats_dropped_total",
                             "Heartbeats not recorded: malformed, from an unknown sender, or lost in transit (seq gaps)",
                             ["reason"])
NEIGHBOURS_SKIPPED = Counter("cnet_neighbour_entries_skipped_total",
                             "Node-table entries the register could not subscribe to (a bad mesh endpoint)")
NEIGHBOURS_FORGOTTEN = Counter("cnet_neighbours_forgotten_total",
                               "Children dropped from the node table after mesh.forget_after_s offline")
DELEGATIONS = Counter("cnet_delegations_total",
                      "Forwards of a workload to a neighbour, and submissions that fell back or found no node",
                      ["outcome"])


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

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        started = req.context.get("metrics_started")
        if started is None:
            return
        route, method, code = req.uri_template or "unmatched", req.method, resp.status_code
        self._requests.labels(route, method, str(code)).inc()
        if code >= 400:
            self._errors.labels(route, method).inc()
        self._seconds.labels(route, method).observe(time.perf_counter() - started)


class _LedgerCollector:
    """The node's resources and workloads as the ledger holds them, read when scraped."""

    def __init__(self, node_id: str, ledger: Ledger) -> None:
        self._node_id = node_id
        self._ledger = ledger

    def collect(self) -> Iterator[Metric]:
        usage = self._ledger.usage()
        for name, amounts, help_text in (("capacity", usage.capacity, "What this node offers"),
                                         ("allocated", usage.allocated, "What its workloads hold")):
            family = GaugeMetricFamily(f"cnet_node_{name}", f"{help_text} (cpu in cores, memory and storage in "
                                       "bytes, gpu in devices)", labels=["node", "resource"])
            for kind in RESOURCE_KINDS:
                family.add_metric([self._node_id, kind], getattr(amounts, kind))
            yield family
        counts = collections.Counter((record.type, "delegated" if record.remote else record.status)
                                     for record in self._ledger.workloads())
        family = GaugeMetricFamily("cnet_workloads", "Workloads in this node's ledger by type and state "
                                   "(delegated: running on another node)", labels=["type", "state"])
        for (workload_type, state), count in sorted(counts.items()):
            family.add_metric([workload_type, state], count)
        yield family


def node_exposition(multiprocess_dir: str, node_id: str, ledger: Ledger) -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    registry.register(_LedgerCollector(node_id, ledger))
    return generate_latest(registry)


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
