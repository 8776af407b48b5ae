"""Heartbeat propagation child → parent: from the child's API answer to the parent's /api/nodes showing it.

    .venv/bin/python bench/heartbeat_latency.py [--changes N]

Two real nodes with a 30 s heartbeat period (so only triggered heartbeats count). Each change is a
submit or a delete on the child; the parent's /api/nodes is polled until the child's allocated cpu
matches. Baseline in the same run: one bare GET /api/nodes on the parent (the floor of this method).
Prints JSON with p50/p99/max.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import at_most  # noqa: E402
from tests.support.nodes import Node, link, nodes_view, wait_for  # noqa: E402

PERIOD_S = 30.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 3)


def child_cpu_seen_by(parent: Node, child_id: str) -> float:
    children = parent.api("GET", "/api/nodes").json()["children"]
    return next(child["resources"]["allocated"]["cpu"] for child in children if child["id"] == child_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    parent = link(Node(), heartbeat_period_s=PERIOD_S)
    child = link(Node(), parent=parent, heartbeat_period_s=PERIOD_S)
    results: dict[str, object] = {"changes": args.changes, "heartbeat_period_s": PERIOD_S}
    try:
        parent.start()
        child.start()
        wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "online")], timeout_s=20)
        floor_ms = []
        for _ in range(100):
            started = time.perf_counter()
            parent.api("GET", "/api/nodes")
            floor_ms.append((time.perf_counter() - started) * 1000)
        latencies_ms, held = [], []
        for change in range(args.changes):
            if change % 2 == 0:
                held.append(child.submit({"command": "sleep", "args": ["600"]}, {"cpu": 0.5}).json()["id"])
            else:
                child.api("DELETE", f"/api/workloads/{held.pop()}")
            expected = len(held) * 0.5
            answered = time.perf_counter()
            while child_cpu_seen_by(parent, child.node_id) != expected:
                if time.perf_counter() - answered > 5:
                    raise RuntimeError(f"change {change} not seen by the parent within 5 s")
            latencies_ms.append((time.perf_counter() - answered) * 1000)
        results["propagation_ms"] = {"p50": percentile(latencies_ms, 0.5), "p99": percentile(latencies_ms, 0.99),
                                     "max": round(max(latencies_ms), 3)}
        results["baseline_get_api_nodes_ms"] = {"p50": round(statistics.median(floor_ms), 3),
                                                "p99": percentile(floor_ms, 0.99)}
        results["p50_over_baseline"] = round(statistics.median(latencies_ms) / statistics.median(floor_ms), 2)
        results["goals"] = {"propagation_ms.p99": at_most(results["propagation_ms"]["p99"], 50)}
        child.stop()
        parent.stop()
    finally:
        child.cleanup()
        parent.cleanup()
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
