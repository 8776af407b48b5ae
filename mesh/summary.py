"""Subtree summaries carried in heartbeats: constant-size totals of a node and its online descendants."""
from __future__ import annotations

from typing import Any

from ledger.records import RESOURCE_KINDS, Resources, Usage


def subtree_summary(own: Usage, child_subtrees: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum capacity and allocation over the subtree; ``available_max`` is the per-resource maximum free
    on any single node of it (what a parent may hope to place there)."""
    capacity, allocated, best = own.capacity, own.allocated, own.available.to_dict()
    nodes = online = 1
    for child in child_subtrees:
        capacity = capacity + Resources.from_dict(child["capacity"])
        allocated = allocated + Resources.from_dict(child["allocated"])
        for kind in RESOURCE_KINDS:
            best[kind] = max(best[kind], child["available_max"].get(kind, 0))
        nodes += child["nodes"]
        online += child["online"]
    return {"nodes": nodes, "online": online, "capacity": capacity.to_dict(), "allocated": allocated.to_dict(),
            "available_max": best}
