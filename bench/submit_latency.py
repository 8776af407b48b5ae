"""Submit→running latency of a process workload through a real node, against subprocess.Popen in the same run.

    .venv/bin/python bench/submit_latency.py [--samples N]

Prints JSON: for 1, 50 and 200 workloads already running on the node, the median and p90 of
POST /api/workloads (which answers once supervisord reports the program RUNNING, with its pid), and the
ratio to the median of starting the same command with subprocess.Popen.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.nodes import Node, running  # noqa: E402  (the same real-node harness the tests use)

COMMAND = ["sleep", "600"]
BACKGROUND_LEVELS = (1, 50, 200)


def popen_ms(samples: int) -> list[float]:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        process = subprocess.Popen(COMMAND)
        timings.append((time.perf_counter() - started) * 1000)
        process.kill()
        process.wait()
    return timings


def submit_ms(node: Node, samples: int) -> list[float]:
    timings = []
    body = {"type": "process", "config": {"command": COMMAND[0], "args": COMMAND[1:]}, "requirements": {"cpu": 0.01}}
    for _ in range(samples):
        started = time.perf_counter()
        answer = node.api("POST", "/api/workloads", json=body)
        timings.append((time.perf_counter() - started) * 1000)
        record = answer.json()
        assert record["status"] == "running", record
        node.api("DELETE", f"/api/workloads/{record['id']}")
    return timings


def summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {"median_ms": round(statistics.median(ordered), 3), "p90_ms": round(ordered[int(len(ordered) * 0.9)], 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    node = Node({"cpu": 1000, "memory": 2**40, "gpu": 0, "storage": 0})
    results: dict[str, object] = {"samples": args.samples, "command": COMMAND}
    with running(node):
        baseline = summary(popen_ms(args.samples))
        results["popen"] = baseline
        background = 0
        for level in BACKGROUND_LEVELS:
            while background < level:
                node.api("POST", "/api/workloads", json={"type": "process", "config": {
                    "command": COMMAND[0], "args": COMMAND[1:]}})
                background += 1
            measured = summary(submit_ms(node, args.samples))
            measured["ratio_to_popen_median"] = round(measured["median_ms"] / baseline["median_ms"], 1)
            results[f"submit_with_{level}_running"] = measured
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
