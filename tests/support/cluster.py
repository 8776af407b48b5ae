"""Two nodes on two test hosts, and how to tell what became of a batch of forwarded submissions: shared by
the cluster fault tests and bench/cluster_faults.py."""
from __future__ import annotations

import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.support.hosts import Host
from tests.support.nodes import GIB, Node, held_by, link, nodes_view, wait_for

log = logging.getLogger(__name__)

TOKEN = "cluster-fault-token"
PERIOD_S = 1.0
SLEEP = {"command": "sleep", "args": ["600"]}
NEEDS_THE_CHILD = {"cpu": 1.5}  # the parent has 1 cpu: every submission is delegated


def parent_and_child(hosts: list[Host], period_s: float = PERIOD_S) -> tuple[Node, Node]:
    parent = link(Node({"cpu": 1, "memory": 4 * GIB, "gpu": 0, "storage": 0}, token=TOKEN, host=hosts[0]),
                  heartbeat_period_s=period_s)
    child = link(Node({"cpu": 64, "memory": 64 * GIB, "gpu": 0, "storage": 0}, token=TOKEN, host=hosts[1]),
                 parent=parent, heartbeat_period_s=period_s)
    return parent, child


def both_online(parent: Node, child: Node) -> bool:
    try:
        return nodes_view(parent)["children"] == [(child.node_id, "online")] and \
            nodes_view(child)["parent"] == (parent.node_id, "online")
    except requests.ConnectionError:  # a connection kept alive across a partition is reset after it
        return False


def records(node: Node) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in node.workloads()}


def settled(parent: Node) -> bool:
    return not any(item["status"] in ("delegating", "unknown") for item in records(parent).values())


def running_programs(node: Node) -> list[str]:
    return [line.split()[0] for line in node.supervisorctl("status").splitlines()
            if line.startswith("workloads:") and " RUNNING " in line]


def delete_everything(parent: Node, child: Node) -> None:
    for node in (parent, child):
        for workload_id in records(node):
            node.api("DELETE", f"/api/workloads/{workload_id}")
    wait_for(lambda: not records(parent) and not records(child) and not running_programs(child), timeout_s=30)


def tally(parent: Node, child: Node, answers: dict[str, int]) -> dict[str, Any]:
    """How each submission ended: ``admitted`` (records at both ends, running), ``refused`` (nothing
    anywhere); and what must never be: ``orphaned`` (on the child with no record at the parent), ``dangling``
    (a parent record pointing at nothing), ``twice`` (one id run twice), ``leaked_cpu`` (allocated with nothing
    holding it, both nodes together)."""
    at_parent, at_child = records(parent), records(child)
    programs = running_programs(child)
    counts: dict[str, Any] = {"admitted": 0, "refused": 0, "dangling": [], "refused_but_answered_201": []}
    for workload_id, status in answers.items():
        if workload_id in at_parent and workload_id in at_child and at_child[workload_id]["status"] == "running" \
                and f"workloads:wl-{workload_id}" in programs:
            counts["admitted"] += 1
        elif workload_id not in at_parent and workload_id not in at_child:
            counts["refused"] += 1
            if status == 201:
                counts["refused_but_answered_201"].append(workload_id)
        else:
            counts["dangling"].append(workload_id)
    counts["orphaned"] = sorted(set(at_child) - set(at_parent))
    counts["twice"] = len(programs) - len(set(programs))
    counts["leaked_cpu"] = round(sum(
        node.resources()["allocated"]["cpu"] - held_by(list(records(node).values()))["cpu"] for node in (parent, child)), 6)
    return counts


def submit_during_a_kill(parent: Node, child: Node, process: str, count: int) -> dict[str, int]:
    """``count`` submissions at once through the parent; kill -9 of the child's ``process`` once three have
    reached the child. Returns each submission's HTTP status (0: no answer)."""
    submissions = [f"f{process[:3]}{index:02d}{os.urandom(2).hex()}" for index in range(count)]
    pid = child.program_pid(process)  # read first: supervisorctl takes longer than some forwards

    def submit(workload_id: str) -> int:
        started = time.monotonic()
        try:
            return parent.submit(SLEEP, NEEDS_THE_CHILD, fresh_connection=True, id=workload_id).status_code
        except requests.RequestException as exc:  # what it was, and when, is in a failing test's captured log
            log.warning("submission %s had no answer, after %.1f s: %r", workload_id, time.monotonic() - started, exc)
            return 0
    with ThreadPoolExecutor(count) as pool:
        pending = [pool.submit(submit, workload_id) for workload_id in submissions]
        wait_for(lambda: len(records(child)) >= 3, timeout_s=30)  # forwards are going through
        os.kill(pid, signal.SIGKILL)
        answers = dict(zip(submissions, (future.result() for future in pending)))
    wait_for(lambda: " RUNNING " in child.supervisorctl("status", process), timeout_s=30)
    wait_for(lambda: both_online(parent, child), timeout_s=30)
    wait_for(lambda: settled(parent), timeout_s=60, diagnose=lambda: records(parent))
    return answers
