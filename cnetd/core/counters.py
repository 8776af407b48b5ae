"""The counters the register and the scheduler keep, and the one live gauge the scheduler reads (a
deployment's ongoing requests, which the API's workers keep): both through ``cnetd.common.metric_files``,
so that neither process loads prometheus_client. The API's /metrics (``cnetd.core.metrics``) sums them with
its own."""
from __future__ import annotations

import os
from pathlib import Path

from cnetd.common.metric_files import Counter, samples

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
AUTOSCALE_DECISIONS = Counter("cnet_autoscale_decisions_total",
                              "Replica counts the autoscaler set: up, down, or limited (no node had room)",
                              ["direction"])

ONGOING_METRIC = "cnet_deployment_ongoing_requests"


def ongoing_requests(multiprocess_dir: Path) -> dict[str, float]:
    """``cnet_deployment_ongoing_requests`` now, by deployment, summed over the live API processes (a killed
    worker's file is skipped: its pid is gone)."""
    ongoing: dict[str, float] = {}
    for path in multiprocess_dir.glob("gauge_livesum_*.db"):
        if not _alive(path):
            continue
        try:
            found = [(labels, value) for metric, labels, value in samples(path) if metric == ONGOING_METRIC]
        except FileNotFoundError:  # its worker ended since the glob
            continue
        for labels, value in found:
            ongoing[labels["deployment"]] = ongoing.get(labels["deployment"], 0.0) + value
    return ongoing


def _alive(path: Path) -> bool:
    try:
        os.kill(int(path.stem.rsplit("_", 1)[1]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
