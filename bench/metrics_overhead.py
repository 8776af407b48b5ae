"""What metrics cost: a /metrics scrape and an API request, on one node with its two API workers.

    .venv/bin/python bench/metrics_overhead.py [--requests N]

Baseline in the same run: GET /api/health (the cheapest route; every request now also passes the
metrics middleware, which writes prometheus_client's multiprocess files). Compared with it: GET
/metrics, which reads every process's files and the ledger, with 0 and 50 running workloads and after
N requests have filled the route histograms. Prints JSON with medians in milliseconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import measured  # noqa: E402
from tests.support.nodes import Node, running  # noqa: E402


def median_ms(session: requests.Session, url: str, count: int) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        assert session.get(url, timeout=30).ok
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    results: dict[str, object] = {"requests": args.requests}
    with running(Node({"cpu": 64, "memory": 64 * 2**30, "gpu": 0, "storage": 2**30})) as node:
        session = requests.Session()
        results["health_ms"] = median_ms(session, f"{node.url}/api/health", args.requests)
        results["metrics_ms_idle"] = median_ms(session, f"{node.url}/metrics", 50)
        ids = [node.submit({"command": "sleep", "args": ["600"]}, {"cpu": 0.1}).json()["id"] for _ in range(50)]
        results["metrics_ms_50_workloads"] = median_ms(session, f"{node.url}/metrics", 50)
        results["workloads_ms_50_workloads"] = median_ms(session, f"{node.url}/api/workloads", 50)
        results["metrics_bytes"] = len(session.get(f"{node.url}/metrics", timeout=30).content)
        results["metrics_over_health"] = round(results["metrics_ms_50_workloads"] / results["health_ms"], 2)
        results["goals"] = {"metrics_over_health": measured(results["metrics_over_health"],
                                                            "what a scrape costs beside a health request")}
        for workload_id in ids:
            node.api("DELETE", f"/api/workloads/{workload_id}")
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
