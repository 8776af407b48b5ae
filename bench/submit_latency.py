"""Submit→running latency of a process workload through a real node, against subprocess.Popen in the same run.

    .venv/bin/python bench/submit_latency.py [--samples N] [--tail-samples N]

Prints JSON: the same command started straight through the node's supervisord (one XML-RPC multicall, the
floor under supervised workloads), with the options a submission gives its program and with supervisord's
defaults; for 1, 50 and 200 workloads already running on the node, the median, p90 and p99 of POST
/api/workloads (which answers once supervisord reports the program RUNNING, with its pid), the ratio of
the median to the median of starting the same command with subprocess.Popen and to the floor's (what CNET adds
to supervisord), and the CPU each node process used per submission and its delete; then the same submission while
model deployments run one after another in the background (each one's model checked in a subprocess by the
scheduler), against the same submission alone just before; and, as its reference, the same submission while
one busy loop per core runs (CPU contention and nothing of CNET's). Each figure has its goal and whether it
was met. The background phases judge a p99, which needs over 100 samples to be other than the slowest one:
they take ``--tail-samples`` (200) each. About 30 s here.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ContextManager

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.node_cpu import cpu_ms_while  # noqa: E402
from bench.timing import summary  # noqa: E402
from cnetd.common.paths import WORKLOAD_GROUP, RuntimePaths  # noqa: E402
from cnetd.common.private_files import make_workload_dir, write_workload_file  # noqa: E402
from cnetd.core.config import DEFAULT_WORKLOADS_USER  # noqa: E402
from cnetd.core.supervisor_rpc import (Supervisor, environment_file, workload_environment,  # noqa: E402
                                      workload_program_options)
from tests.support.assets import YOLO_MODEL  # noqa: E402
from tests.support.nodes import Node, running  # noqa: E402  (the same real-node harness the tests use)

COMMAND = ["sleep", "600"]
BACKGROUND_LEVELS = (1, 50, 200)
GOAL_RATIO_TO_POPEN = 20.0  # submit→running at most this many times a bare Popen
GOAL_DURING_CHECKS = 2.0  # p99 of a submission while models are checked: at most this many times alone
BUSY_LOOP = [sys.executable, "-c", "while True: pass"]
WORKLOAD_USER = DEFAULT_WORKLOADS_USER if os.geteuid() == 0 else None  # workloads.user's default here


def popen_ms(samples: int) -> list[float]:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        process = subprocess.Popen(COMMAND)
        timings.append((time.perf_counter() - started) * 1000)
        process.kill()
        process.wait()
    return timings


def supervisord_ms(node: Node, samples: int, as_submitted: bool) -> list[float]:
    """The same command added to the workload group and started straight through the node's supervisord, in
    the one XML-RPC multicall a submission makes: what running workloads as supervised programs (the design
    card's choice) costs before CNET does anything. ``as_submitted``: with the options a submission gives its
    program (``workload_program_options``: its environment file, its two rotated log files, the parent-death
    wrapper, and as root the node's default ``workloads.user``); else the command alone, with supervisord's
    defaults."""
    paths = RuntimePaths(node.runtime_dir)
    supervisor, timings = Supervisor(str(paths.supervisor_socket)), []
    env_file = paths.workload_environment_file("bench")  # where a submission's goes, readable by its user
    make_workload_dir(env_file.parent, WORKLOAD_USER)
    write_workload_file(env_file, environment_file(workload_environment({}, "/tmp", str(paths.root))), WORKLOAD_USER)
    for index in range(samples):
        name = f"bench-{'submitted' if as_submitted else 'bare'}-{index}"
        options = workload_program_options(COMMAND, str(env_file), "/tmp", stop_timeout_s=5, user=WORKLOAD_USER,
                                           stdout_log=str(paths.workload_log(name, "stdout")),
                                           stderr_log=str(paths.workload_log(name, "stderr"))) if as_submitted \
            else {"command": shlex.join(COMMAND), "autostart": "false", "autorestart": "false", "startsecs": "0"}
        started = time.perf_counter()
        info = supervisor.add_and_start(name, options)
        timings.append((time.perf_counter() - started) * 1000)
        assert info["statename"] == "RUNNING", info
        supervisor.stop(f"{WORKLOAD_GROUP}:{name}")
        supervisor.remove(f"{WORKLOAD_GROUP}:{name}")
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


class ModelDeployments(threading.Thread):
    """Deploys and deletes the YOLO model one after another while inside: a model check is under way most of the
    time."""

    def __init__(self, node: Node) -> None:
        super().__init__(daemon=True)
        self._node = node
        self.done = threading.Event()
        self.deployed = 0

    def __enter__(self) -> ModelDeployments:
        self.start()
        time.sleep(1.0)  # the first check is under way
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join()

    def run(self) -> None:
        body = {"type": "mlmodel", "config": {"model_type": "yolo", "model_path": YOLO_MODEL},
                "requirements": {"cpu": 1}}
        while not self.done.is_set():
            record = self._node.api("POST", "/api/workloads", fresh_connection=True, json=body).json()
            assert record["status"] == "running", record
            self.deployed += 1
            self._node.api("DELETE", f"/api/workloads/{record['id']}", fresh_connection=True)


class BusyLoops:
    """One busy loop per core while inside: CPU contention and nothing of CNET's."""

    def __init__(self) -> None:
        self.count = os.cpu_count() or 1
        self._loops: list[subprocess.Popen] = []

    def __enter__(self) -> BusyLoops:
        self._loops = [subprocess.Popen(BUSY_LOOP) for _ in range(self.count)]
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        for loop in self._loops:
            loop.kill()
            loop.wait()


def alone_then_during(node: Node, samples: int, background: ContextManager[object]) -> dict[str, object]:
    """The submission alone, then while ``background`` runs, and the ratio of their p99s."""
    alone = summary(submit_ms(node, samples))
    with background:
        during = summary(submit_ms(node, samples))
    return {"alone": alone, "during": during, "p99_during_over_alone": round(during["p99_ms"] / alone["p99_ms"], 2)}


def during_model_checks(node: Node, samples: int) -> dict[str, object]:
    deployments = ModelDeployments(node)
    measured = alone_then_during(node, samples, deployments)
    ratio = measured["p99_during_over_alone"]
    return {**measured, "models_deployed_meanwhile": deployments.deployed, "goal": f"<= {GOAL_DURING_CHECKS}",
            "met": ratio <= GOAL_DURING_CHECKS}


def during_busy_loops(node: Node, samples: int) -> dict[str, object]:
    """The reference for ``during_model_checks``: what taking every core away, and nothing else, does to a
    submission (model services load and warm up on all cores)."""
    loops = BusyLoops()
    return {**alone_then_during(node, samples, loops), "busy_loops": loops.count,
            "goal": "none: the reference for submit_during_model_checks", "met": None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50, help="per figure judged by its median")
    parser.add_argument("--tail-samples", type=int, default=200, help="per figure judged by its p99")
    args = parser.parse_args()
    node = Node({"cpu": 1000, "memory": 2**40, "gpu": 0, "storage": 0})
    results: dict[str, object] = {"samples": args.samples, "tail_samples": args.tail_samples, "command": COMMAND}
    with running(node):
        baseline = summary(popen_ms(args.samples))
        results["popen"] = baseline
        for key, as_submitted in (("supervisord_add_and_start", True), ("supervisord_add_and_start_bare", False)):
            floor = summary(supervisord_ms(node, args.samples, as_submitted))
            results[key] = {
                **floor, "ratio_to_popen_median": round(floor["median_ms"] / baseline["median_ms"], 1),
                "goal": "none: the floor under supervised programs (the design card's); a submission adds the API, "
                        "the scheduler and the ledger to it" if as_submitted else
                        "none: the same without a submission's options (log files, environment file)", "met": None}
        results["submit_during_model_checks"] = during_model_checks(node, args.tail_samples)
        results["submit_during_busy_loops"] = during_busy_loops(node, args.tail_samples)
        background = 0
        for level in BACKGROUND_LEVELS:
            while background < level:
                node.api("POST", "/api/workloads", json={"type": "process", "config": {
                    "command": COMMAND[0], "args": COMMAND[1:]}})
                background += 1
            timings, used_ms = cpu_ms_while(node, lambda: submit_ms(node, args.samples))
            measured: dict[str, object] = dict(summary(timings))
            ratio = round(measured["median_ms"] / baseline["median_ms"], 1)
            over_floor = round(measured["median_ms"] / results["supervisord_add_and_start"]["median_ms"], 1)
            measured.update(ratio_to_popen_median=ratio, ratio_to_supervisord_floor_median=over_floor,
                            goal=f"ratio <= {GOAL_RATIO_TO_POPEN}",
                            met=ratio <= GOAL_RATIO_TO_POPEN, node_cpu_ms_per_submit_and_delete={
                                name: round(ms / args.samples, 2) for name, ms in used_ms.items()})
            results[f"submit_with_{level}_running"] = measured
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
