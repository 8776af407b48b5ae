"""Subtree summaries carried in heartbeats: bounded totals of a node and its online descendants."""
from __future__ import annotations

from typing import Any

import orjson

from ledger.records import RESOURCE_KINDS, Resources, Usage
from mesh.messages import LABELS_MAX_BYTES

# A summary's labels are a union over the subtree, so a label whose value differs per node (a serial number)
# grows with it: 2,000 nodes of 40 characters each made a heartbeat of 87 KB, which every receiver dropped.
# Beyond LABELS_MAX_BYTES, a subtree says neither its labels nor its features (as one with a node of an older
# version), and a parent takes it as able and asks.


def subtree_summary(own: Usage, child_subtrees: list[dict[str, Any]],
                    capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sum capacity and allocation over the subtree; ``available_max`` is the per-resource maximum free
    on any single node of it (what a parent may hope to place there). ``features`` and ``labels`` are
    what any node of it offers (for placement's feasibility), when every node of it says: a child of an
    older version does not, and then neither does the subtree (its parent must try to know); nor does a
    subtree whose labels would take more than ``LABELS_MAX_BYTES``."""
    capacity, allocated, best = own.capacity, own.allocated, own.available.to_dict()
    features: set[str] | None = set(capabilities.get("features", ())) if capabilities else None
    labels: dict[str, set[str]] = {name: {value} for name, value in (capabilities or {}).get("labels", {}).items()}
    nodes = online = 1
    for child in child_subtrees:
        if features is not None and isinstance(child.get("features"), list):
            features.update(child["features"])
            for name, values in child.get("labels", {}).items():
                labels.setdefault(name, set()).update(values)
        else:
            features = None
        capacity = capacity + Resources.from_dict(child["capacity"])
        allocated = allocated + Resources.from_dict(child["allocated"])
        for kind in RESOURCE_KINDS:
            best[kind] = max(best[kind], child["available_max"].get(kind, 0))
        nodes += child["nodes"]
        online += child["online"]
    summary = {"nodes": nodes, "online": online, "capacity": capacity.to_dict(), "allocated": allocated.to_dict(),
               "available_max": best}
    if features is not None:
        listed = {name: sorted(values) for name, values in labels.items()}
        if len(orjson.dumps(listed)) <= LABELS_MAX_BYTES:
            summary.update(features=sorted(features), labels=listed)
    return summary
