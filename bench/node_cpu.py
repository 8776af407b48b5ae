"""The CPU time each of a node's processes (supervisord, the API's master and worker, the register, scheduler and
monitor) uses while some work runs; workloads started meanwhile are not counted."""
from __future__ import annotations

from typing import Callable, TypeVar

from bench.idle_memory import label, node_processes
from tests.support.nodes import Node

Result = TypeVar("Result")
NODE_PROCESSES = ("supervisord", "api master", "api worker", "cnetd.register", "cnetd.scheduler", "cnetd.monitor")


def cpu_ms_while(node: Node, work: Callable[[], Result]) -> tuple[Result, dict[str, float]]:
    """What ``work`` returned, and the CPU milliseconds (user and system) each node process used meanwhile."""
    supervisord, *programs = node_processes(node)
    labelled = {label(process, supervisord): process for process in (supervisord, *programs)}
    processes = {name: labelled[name] for name in NODE_PROCESSES if name in labelled}
    before = {name: process.cpu_times() for name, process in processes.items()}
    result = work()
    used = {}
    for name, process in processes.items():
        first, last = before[name], process.cpu_times()
        used[name] = max(0.0, (last.user + last.system - first.user - first.system) * 1000)  # not -0.0 from float sums
    return result, used
