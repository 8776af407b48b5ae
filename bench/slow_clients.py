"""Health checks of a real node's API and of one of its model services (opencv), idle and while 150 clients
trickle one byte of an endless request head every 4 s at each of them.

    .venv/bin/python bench/slow_clients.py [--clients 150] [--seconds 20]

Prints JSON: median and p99 of GET /api/health and of the service's GET /health, idle (the baseline, same
run) and under the trickle, their ratios, whether every probe answered, and the service's restarts (the
node health-checks it every 2 s, so a starved service would be restarted).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import at_most  # noqa: E402
from tests.support.nodes import Node, running  # noqa: E402  (the same real-node harness the tests use)
from tests.support.trickle import Tricklers, p99, probe  # noqa: E402


def summary(latencies: list[float]) -> dict[str, float | bool]:
    return {"median_ms": round(statistics.median(latencies) * 1000, 2), "p99_ms": round(p99(latencies) * 1000, 2),
            "all_answered": max(latencies) != float("inf"), "probes": len(latencies)}


ROUND_S = 4  # each round probes each server for 2 s


def measure(api_url: str, service_url: str, seconds: float) -> dict[str, dict]:
    api, service = [], []
    for _ in range(int(seconds // ROUND_S)):
        api += probe(f"{api_url}/api/health", duration_s=2, interval_s=0.1)
        service += probe(f"{service_url}/health", duration_s=2, interval_s=0.1)
    return {"api_health": summary(api), "service_health": summary(service)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    if args.seconds < ROUND_S:
        parser.error(f"--seconds: at least {ROUND_S} (one round of probes of each server)")
    node = Node(health={"interval_s": 2})
    with running(node):
        record = node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv").json()
        service_port = int(record["endpoint"].rsplit(":", 1)[1])
        idle = measure(node.url, record["endpoint"], args.seconds)
        with Tricklers(node.port, args.clients, 4.0), Tricklers(service_port, args.clients, 4.0):
            trickled = measure(node.url, record["endpoint"], args.seconds)
        after = node.workload(record["id"])
    ratios = {name: round(trickled[name]["median_ms"] / idle[name]["median_ms"], 2) for name in idle}
    goals = {f"trickled.{name}.p99_ms": at_most(trickled[name]["p99_ms"], 1000) for name in trickled}
    goals["service_restarts"] = at_most(after["restarts"], 0)
    print(orjson.dumps({"clients_per_server": args.clients, "idle": idle, "trickled": trickled,
                        "median_ratio_trickled_to_idle": ratios, "service_restarts": after["restarts"],
                        "service_status": after["status"], "goals": goals}, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
