"""One parent node with 1,000 simulated children speaking the heartbeat protocol on loopback.

    .venv/bin/python bench/mesh_fanin.py [--children 1000] [--period 1.0] [--seconds 30]

Simulated children are sockets in helper processes (a thousand each, their ZeroMQ context and descriptor
limits raised to match): each binds a PUB socket, registers with the
real parent through POST /api/nodes/register, and publishes a heartbeat every period. Reports the
parent's register process CPU and memory, the node's total memory, the worst staleness in the parent's
node table (max last_seen_s over children, sampled every second), and /api/nodes latency. Baseline in
the same run: the same figures for the idle parent before any child registers.
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

import orjson
import psutil
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnetd.common.httpclient import call  # noqa: E402
from mesh.messages import Heartbeat  # noqa: E402
from bench.goals import at_least, at_most  # noqa: E402
from tests.support.nodes import Node, link  # noqa: E402

CHILDREN_PER_HELPER = 1000  # each a PUB socket and its descriptor, in one helper process
GIB = 2**30


def simulate(first: int, count: int, parent_url: str, period_s: float, seconds: float, ready) -> None:
    context = zmq.Context()
    context.set(zmq.MAX_SOCKETS, count + 64)  # the default allows 1,023 sockets per context
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * count + 256)), hard))
    sockets, beats = [], []
    for index in range(first, first + count):
        socket = context.socket(zmq.PUB)
        socket.setsockopt(zmq.LINGER, 0)
        port = socket.bind_to_random_port("tcp://127.0.0.1")
        node_id = f"sim-{index:04d}"
        registration = {"node_id": node_id, "api_url": f"http://127.0.0.1:{port}", "mesh_endpoint": f"tcp://127.0.0.1:{port}"}
        status, _ = call("POST", f"{parent_url}/api/nodes/register", registration, timeout_s=30)
        assert status == 200
        sockets.append(socket)
        resources = {"cpu": 4.0, "memory": 8 * GIB, "gpu": 0, "storage": 0}
        beats.append(dict(node_id=node_id, boot_id="sim", api_url=registration["api_url"],
                          mesh_endpoint=registration["mesh_endpoint"], capacity=resources,
                          allocated={**resources, "cpu": 0.0, "memory": 0}, available=resources, workloads={},
                          ledger_version=1, subtree={"nodes": 1, "online": 1, "capacity": resources,
                                                     "allocated": {**resources, "cpu": 0.0, "memory": 0},
                                                     "available_max": resources}))
    ready.put(count)
    deadline, seq = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        tick = time.monotonic()
        seq += 1
        for socket, beat in zip(sockets, beats):
            socket.send_multipart(Heartbeat(seq=seq, **beat).encode())
        time.sleep(max(0.0, period_s - (time.monotonic() - tick)))
    for socket in sockets:
        socket.close()
    context.term()


def node_processes(node: Node) -> list[psutil.Process]:
    supervisord = psutil.Process(int((node.runtime_dir / "supervisord.pid").read_text()))
    return [supervisord, *supervisord.children(recursive=True)]


def sample(node: Node, register: psutil.Process, seconds: float) -> dict[str, float]:
    """CPU share of the register, memory, worst staleness and /api/nodes latency over a window."""
    cpu_before, started = register.cpu_times(), time.monotonic()
    staleness, latency_ms, online = [], [], 0
    while time.monotonic() - started < seconds:
        asked = time.perf_counter()
        children = node.api("GET", "/api/nodes").json()["children"]
        latency_ms.append((time.perf_counter() - asked) * 1000)
        online = sum(child["status"] == "online" for child in children)
        staleness.append(max((child["last_seen_s"] or 0.0 for child in children), default=0.0))
        time.sleep(1.0)
    cpu_after, elapsed = register.cpu_times(), time.monotonic() - started
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {"register_cpu_percent": round(100 * cpu_s / elapsed, 1),
            "register_rss_mib": round(register.memory_info().rss / 2**20, 1),
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
    helpers = []
    try:
        parent.start()
        register = psutil.Process(parent.program_pid("register"))
        results["idle_parent"] = sample(parent, register, min(10.0, args.seconds))
        ready = multiprocessing.Queue()
        helper_count = max(1, -(-args.children // CHILDREN_PER_HELPER))
        per_helper = -(-args.children // helper_count)
        registering = time.monotonic()
        for helper in range(helper_count):
            first = helper * per_helper
            count = min(per_helper, args.children - first)
            process = multiprocessing.Process(target=simulate, args=(first, count, parent.url,
                                                                     args.period, args.seconds + 60, ready))
            process.start()
            helpers.append(process)
        registered = sum(ready.get(timeout=300) for _ in helpers)
        results["registration_s"] = round(time.monotonic() - registering, 2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            children = parent.api("GET", "/api/nodes").json()["children"]
            if sum(child["status"] == "online" for child in children) == registered:
                break
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
        for process in helpers:
            process.kill()
        parent.cleanup()
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
