"""Prometheus metrics of a node: its processes' counters and the ledger's gauges.

Node processes (api workers, register, scheduler) write counters and histograms into prometheus_client's
multiprocess files under the runtime dir (``PROMETHEUS_MULTIPROC_DIR``, set by supervisord for them only),
so /metrics sums every gunicorn worker and process; the ledger's gauges are read at scrape time. Request
metrics, shared with the services (one process each, with their own registry), are in
``cnetd.common.request_metrics``.
"""
from __future__ import annotations

import collections
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
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
NEIGHBOURS_INCOMPATIBLE = Counter("cnet_neighbours_incompatible_total",
                                  "Parents and peers found to speak another protocol major (marked, not used)",
                                  ["role"])
NEIGHBOURS_FORGOTTEN = Counter("cnet_neighbours_forgotten_total",
                               "Children dropped from the node table after mesh.forget_after_s offline")
DELEGATIONS = Counter("cnet_delegations_total",
                      "Forwards of a workload to a neighbour, and submissions that fell back or found no node",
                      ["outcome"])

MODEL_CACHE = Counter("cnet_model_cache_total",
                      "Deployments whose model was in the cache already (hit), and models fetched into it", ["outcome"])
MODEL_FETCHED_BYTES = Counter("cnet_model_fetched_bytes_total", "Bytes of models fetched into the cache")
REPLICA_EVENTS = Counter("cnet_replica_events_total",
                         "Replicas of deployments: placed to fill a count, retired (scaled down or orphaned), "
                         "rescheduled (replaced after they failed or their node was lost)", ["event"])
BALANCED = Counter("cnet_balanced_requests_total",
                   "Predictions the balancer relayed to a replica: answered, retried on another, or failed",
                   ["outcome"])


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
