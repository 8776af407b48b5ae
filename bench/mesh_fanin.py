"""One parent node with 1,000 simulated children speaking the heartbeat protocol on loopback.

    .venv/bin/python bench/mesh_fanin.py [--children 1000] [--period 1.0] [--seconds 30]

Simulated children (tests/support/simulated_children.py) are sockets in helper processes, a thousand each:
each registers with the real parent through POST /api/nodes/register, connects to the parent's mesh
endpoint and sends a signed heartbeat up every period, as a child of protocol 1.2 does. Reports the
parent's register process CPU, memory and descriptors, the node's total memory, the worst staleness in the
parent's node table (max last_seen_s over every child, paged through, sampled every second), the children
online, and the latency of /api/nodes' first page. Baseline in the same run: the same figures for the idle
parent before any child registers.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import at_least, at_most  # noqa: E402
from tests.support.nodes import Node, link  # noqa: E402
from tests.support.simulated_children import SimulatedChildren  # noqa: E402


def node_processes(node: Node) -> list[psutil.Process]:
    supervisord = psutil.Process(int((node.runtime_dir / "supervisord.pid").read_text()))
    return [supervisord, *supervisord.children(recursive=True)]


def sample(node: Node, register: psutil.Process, seconds: float) -> dict[str, float]:
    """CPU share of the register, memory, worst staleness and /api/nodes latency over a window."""
    cpu_before, started = register.cpu_times(), time.monotonic()
    staleness, latency_ms, online = [], [], 0
    while time.monotonic() - started < seconds:
        asked = time.perf_counter()
        first = node.api("GET", "/api/nodes").json()
        latency_ms.append((time.perf_counter() - asked) * 1000)
        online = first["summary"]["children_online"] or 0
        children, after = first["children"], first["next"]
        while after:  # the rest, for the staleness: not timed
            page = node.api("GET", f"/api/nodes?limit=1000&after={after}").json()
            children, after = children + page["children"], page["next"]
        staleness.append(max((child["last_seen_s"] or 0.0 for child in children), default=0.0))
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - asked)))
    cpu_after, elapsed = register.cpu_times(), time.monotonic() - started
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {"register_cpu_percent": round(100 * cpu_s / elapsed, 1),
            "register_rss_mib": round(register.memory_info().rss / 2**20, 1),
            "register_fds": register.num_fds(),
            "node_rss_mib": round(sum(process.memory_info().rss for process in node_processes(node)) / 2**20, 1),
            "worst_staleness_s": round(max(staleness), 3), "children_online": online,
            "api_nodes_ms_median": round(statistics.median(latency_ms), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    parent = link(Node(), heartbeat_period_s=args.period)
    results: dict[str, object] = {"children": args.children, "heartbeat_period_s": args.period,
                                  "window_s": args.seconds}
    try:
        parent.start()
        register = psutil.Process(parent.program_pid("register"))
        results["idle_parent"] = sample(parent, register, min(10.0, args.seconds))
        registering = time.monotonic()
        with SimulatedChildren(parent.url, args.children, args.period) as children:
            registered = children.wait_registered()
            results["registration_s"] = round(time.monotonic() - registering, 2)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and \
                    parent.api("GET", "/api/nodes").json()["summary"]["children_online"] != registered:
                time.sleep(0.5)
            results["all_online_after_s"] = round(time.monotonic() - registering, 2)
            results["with_children"] = loaded = sample(parent, register, args.seconds)
        results["goals"] = {  # the scale issue's: under a core at 10,000 (10 % at 1,000), fresh within 2 periods
            "with_children.register_cpu_percent": at_most(loaded["register_cpu_percent"],
                                                          10 if args.children <= 1000 else 100),
            "with_children.worst_staleness_s": at_most(loaded["worst_staleness_s"], 2 * args.period),
            "with_children.children_online": at_least(loaded["children_online"], args.children),
            "with_children.api_nodes_ms_median": at_most(loaded["api_nodes_ms_median"], 20)}
        parent.stop()
    finally:
        parent.cleanup()
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
