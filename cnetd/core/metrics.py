"""Prometheus metrics of a node, served by the API: its processes' counters and the ledger's gauges.

Node processes write counters and histograms into prometheus_client's multiprocess files under the runtime
dir (``PROMETHEUS_MULTIPROC_DIR``, set by supervisord for them only): the API's workers through
prometheus_client (the metrics below), the register and the scheduler through ``cnetd.common.metric_files``
(``cnetd.core.counters``). /metrics sums every file; the ledger's gauges are read at scrape time. Request
metrics, shared with the services (one process each, with their own registry), are in
``cnetd.common.request_metrics``.
"""
from __future__ import annotations

import collections
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from cnetd.core.counters import ONGOING_METRIC
from cnetd.core.deployment_spec import DeploymentSpec
from cnetd.common.paths import RuntimePaths
from cnetd.core.deployment_state import STARTING_STATUSES, in_rotation
from inference.stream.status import COUNTERS as STREAM_COUNTERS, LATENCY_BUCKETS_S, read_status
from ledger.records import RESOURCE_KINDS, WorkloadRecord
from ledger.store import Ledger
from workers.stream import STREAM_TYPE

DEPLOYMENT_ONGOING = Gauge(ONGOING_METRIC,
                           "Requests in flight through a deployment's endpoint now (held while it starts from zero "
                           "included): the autoscaler's signal before its window's average", ["deployment"],
                           multiprocess_mode="livesum")
COLD_STARTS = Histogram("cnet_deployment_cold_start_seconds",
                        "How long a request was held for a deployment at zero replicas (or none in rotation) "
                        "until one could serve it", buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 30, 60))
BALANCED = Counter("cnet_balanced_requests_total",
                   "Predictions the balancer relayed to a replica: answered, retried on another, or failed",
                   ["outcome"])


class _LedgerCollector:
    """The node's resources and workloads as the ledger holds them, read when scraped."""

    def __init__(self, node_id: str, ledger: Ledger, paths: RuntimePaths) -> None:
        self._node_id = node_id
        self._ledger = ledger
        self._paths = paths

    def collect(self) -> Iterator[Metric]:
        usage = self._ledger.usage()
        for name, amounts, help_text in (("capacity", usage.capacity, "What this node offers"),
                                         ("allocated", usage.allocated, "What its workloads hold")):
            family = GaugeMetricFamily(f"cnet_node_{name}", f"{help_text} (cpu in cores, memory and storage in "
                                       "bytes, gpu in devices)", labels=["node", "resource"])
            for kind in RESOURCE_KINDS:
                family.add_metric([self._node_id, kind], getattr(amounts, kind))
            yield family
        records = self._ledger.workloads()
        counts = collections.Counter((record.type, "delegated" if record.remote else record.status)
                                     for record in records)
        family = GaugeMetricFamily("cnet_workloads", "Workloads in this node's ledger by type and state "
                                   "(delegated: running on another node)", labels=["type", "state"])
        for (workload_type, state), count in sorted(counts.items()):
            family.add_metric([workload_type, state], count)
        yield family
        yield from _deployment_families(records)
        yield from _stream_families([record for record in records if record.type == STREAM_TYPE and not record.remote
                                     and not record.terminal], self._paths)


def _deployment_families(records: list[WorkloadRecord]) -> Iterator[Metric]:
    """Each deployment's replicas by state (desired: the count it wants now, autoscaled or not; healthy: in
    rotation; starting; draining), and an autoscaled one's signal and whether it is resource-limited."""
    replicas = GaugeMetricFamily("cnet_deployment_replicas", "A deployment's replicas: desired (the count it "
                                 "wants now), healthy (in rotation), starting, draining", labels=["deployment", "state"])
    signal = GaugeMetricFamily("cnet_deployment_autoscale_signal", "An autoscaled deployment's ongoing requests, "
                               "averaged over its metrics window", labels=["deployment"])
    limited = GaugeMetricFamily("cnet_deployment_resource_limited", "1 while no node has room for the replicas an "
                                "autoscaled deployment asks for (it stays at deployment.replicas)", labels=["deployment"])
    for deployment in (record for record in records if record.deployment is not None):
        spec = DeploymentSpec.of(deployment)
        members = [record for record in records if record.replica_of == deployment.id]
        states = collections.Counter(
            "draining" if member.retired else "healthy" if in_rotation(member.status, member.health_failures, False)
            else "starting" if member.status in STARTING_STATUSES else "other" for member in members)
        replicas.add_metric([deployment.id, "desired"], spec.replicas)
        for state in ("healthy", "starting", "draining"):
            replicas.add_metric([deployment.id, state], states[state])
        if spec.autoscale:
            signal.add_metric([deployment.id], spec.autoscale["signal"])
            limited.add_metric([deployment.id], 1.0 if spec.autoscale["limited"] else 0.0)
    yield from (replicas, signal, limited)


def _stream_families(streams: list[WorkloadRecord], paths: RuntimePaths) -> Iterator[Metric]:
    """Each running stream's counters (frames read, sampled, skipped by motion, sent, failed, dropped; events;
    reconnects), whether it is connected, and its capture-to-event latency, as its program last reported them."""
    counters = CounterMetricFamily("cnet_stream_frames", "A stream's frames: read from its source, sampled, skipped "
                                   "by motion gating, sent to its detector, failed there, dropped (due while the "
                                   "detector was busy)", labels=["workload", "outcome"])
    events = CounterMetricFamily("cnet_stream_events", "Frames with detections a stream kept and published",
                                 labels=["workload"])
    reconnects = CounterMetricFamily("cnet_stream_reconnects", "Times a stream's source failed to open or dropped",
                                     labels=["workload"])
    connected = GaugeMetricFamily("cnet_stream_connected", "1 while a stream reads its source", labels=["workload"])
    latency = HistogramMetricFamily("cnet_stream_event_latency_seconds", "From a frame's capture to its event",
                                    labels=["workload"])
    for stream in streams:
        status = read_status(paths.workload_dir(stream.id))
        if status is None:
            continue
        for name in STREAM_COUNTERS:
            if name.startswith("frames_"):
                counters.add_metric([stream.id, name.removeprefix("frames_")], status.get(name, 0))
        events.add_metric([stream.id], status.get("events", 0))
        reconnects.add_metric([stream.id], status.get("reconnects", 0))
        connected.add_metric([stream.id], 1.0 if status.get("state") == "running" else 0.0)
        buckets = status["latency"]["buckets"]
        latency.add_metric([stream.id], [*((str(bound), buckets.get(str(bound), 0)) for bound in LATENCY_BUCKETS_S),
                                         ("+Inf", status["latency"]["count"])], status["latency"]["sum_s"])
    yield from (counters, events, reconnects, connected, latency)


def node_exposition(paths: RuntimePaths, node_id: str, ledger: Ledger) -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(paths.metrics_dir))
    registry.register(_LedgerCollector(node_id, ledger, paths))
    return generate_latest(registry)
