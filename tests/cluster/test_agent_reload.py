"""An agent upgrade that costs a workload nothing (`cnetd reload`), on a child with its parent on another test
host: under continuous predictions, straight to a service and through the child's API, with a process and a
gateway running, every node process of the child is replaced (new pids) while every workload keeps its pid
and counts no restart, no prediction fails on either path, and the parent never sees the child offline.
The workloads are then stopped, scaled and deleted by the new processes. The control: the same load across
a kill -9 of the child's api (no reload) does see failed requests, so the counting can fail."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any, Iterator

import pytest
import requests

from tests.support.hosts import make_hosts
from tests.support.load import PredictionLoad
from tests.support.nodes import GIB, VENV_BIN, Node, link, nodes_view, running, wait_for

pytestmark = pytest.mark.cluster
TOKEN = "reload-token"
PERIOD_S = 1.0
NODE_PROCESSES = ("api", "register", "scheduler", "monitor")


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Node, Node]]:
    with make_hosts(2) as hosts:
        parent = link(Node({"cpu": 1, "memory": 4 * GIB, "gpu": 0, "storage": GIB}, token=TOKEN, host=hosts[0]),
                      heartbeat_period_s=PERIOD_S)
        child = link(Node({"cpu": 8, "memory": 16 * GIB, "gpu": 0, "storage": 4 * GIB}, token=TOKEN, host=hosts[1]),
                     parent=parent, heartbeat_period_s=PERIOD_S)
        with running(parent, child):
            wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "online")], timeout_s=20)
            yield parent, child


class Watch(threading.Thread):
    """Every status the parent shows for the child, ten times a second."""

    def __init__(self, parent: Node, child: Node) -> None:
        super().__init__(daemon=True)
        self.parent, self.child, self.seen, self.done = parent, child, set(), threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            session.headers.update(self.parent.http.headers)
            while not self.done.wait(0.1):
                children = session.get(f"{self.parent.url}/api/nodes", timeout=10).json()["children"]
                self.seen.update(entry["status"] for entry in children if entry["id"] == self.child.node_id)


def workloads(child: Node) -> dict[str, dict[str, Any]]:
    deployment = child.submit({"cascade_type": "face", "service_host": child.ip}, {"cpu": 1}, workload_type="opencv",
                              replicas=1).json()
    assert deployment["status"] == "running", deployment
    gateway = child.submit({"base_path": child.config["storage"]["sqlite"]["data_path"], "bucket": "cnet"},
                           {"cpu": 0.5}, workload_type="datagateway").json()
    sleeper = child.submit({"command": "sleep", "args": ["600"]}, {"cpu": 0.1}).json()
    assert gateway["status"] == "running" and sleeper["status"] == "running", (gateway, sleeper)
    replica = child.workload(deployment["deployment"]["instances"][0]["id"])
    return {"deployment": deployment, "replica": replica, "gateway": gateway, "sleeper": sleeper}


def loads(child: Node, running_now: dict[str, dict[str, Any]]) -> tuple[PredictionLoad, PredictionLoad]:
    direct = PredictionLoad(f"{running_now['replica']['endpoint']}/predict", clients=2)
    relayed = PredictionLoad(f"{child.url}/api/workloads/{running_now['deployment']['id']}/predict", clients=2,
                             headers={"Authorization": f"Bearer {TOKEN}"})
    return direct, relayed


def _answers(node: Node) -> bool:
    try:
        return node.api("GET", "/api/health", fresh_connection=True).ok
    except requests.ConnectionError:
        return False


def reload(node: Node) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "cnetd"), "reload", "-config", str(node.config_path)], capture_output=True,
                          text=True, timeout=120)


def test_a_reload_replaces_the_node_processes_and_costs_the_workloads_nothing(pair: tuple[Node, Node]) -> None:
    parent, child = pair
    running_now = workloads(child)
    kept = ("replica", "gateway", "sleeper")
    before = {name: (running_now[name]["process_pid"], running_now[name]["restarts"]) for name in kept}
    node_pids = {name: child.program_pid(name) for name in NODE_PROCESSES}
    watch = Watch(parent, child)
    watch.start()
    direct, relayed = loads(child, running_now)
    with direct, relayed:
        direct.wait_for_answers(10)
        relayed.wait_for_answers(10)
        done = reload(child)
        assert done.returncode == 0, done.stdout + done.stderr
        settled = time.monotonic()
        relayed.wait_for_answers(len(relayed.answers) + 10)  # the new processes answer
    watch.done.set()
    watch.join()
    assert direct.failed() == [], direct.failed()[:5]
    assert relayed.connection_errors() == [], relayed.connection_errors()[:5]
    assert relayed.failed() == [], relayed.failed()[:5]
    assert all(answer.detections == ("face",) for answer in [*direct.answers, *relayed.answers])
    assert any(answer.sent_at > settled for answer in relayed.answers)
    assert watch.seen == {"online"}, watch.seen
    after = {name: child.workload(running_now[name]["id"]) for name in kept}
    assert {name: (view["process_pid"], view["restarts"]) for name, view in after.items()} == before
    assert all(view["status"] == "running" for view in after.values()), after
    assert all(child.program_pid(name) not in (0, node_pids[name]) for name in NODE_PROCESSES), node_pids
    # The new processes act on what the old ones started.
    deployment_id = running_now["deployment"]["id"]
    scaled = child.api("PATCH", f"/api/workloads/{deployment_id}", json={"replicas": 2})
    assert scaled.status_code == 200, scaled.text
    wait_for(lambda: child.workload(deployment_id)["deployment"]["healthy"] == 2, timeout_s=60)
    assert child.api("POST", f"/api/workloads/{running_now['sleeper']['id']}/stop").json()["status"] == "stopped"
    for name in ("deployment", "gateway", "sleeper"):
        assert child.api("DELETE", f"/api/workloads/{running_now[name]['id']}").status_code == 200
    wait_for(lambda: child.api("GET", "/api/workloads").json()["count"] == 0)
    assert child.resources()["allocated"]["cpu"] == 0


def test_the_control_a_killed_api_does_fail_requests(pair: tuple[Node, Node]) -> None:
    """The same load through the API across a kill -9 of the api's processes: requests in flight fail."""
    _, child = pair
    running_now = workloads(child)
    _, relayed = loads(child, running_now)
    try:
        with relayed:
            relayed.wait_for_answers(10)
            os.killpg(child.program_pid("api"), signal.SIGKILL)
            wait_for(lambda: relayed.failed(), timeout_s=30)
        assert relayed.failed()
    finally:
        wait_for(lambda: _answers(child), timeout_s=30)  # supervisord restarts it (refused until then)
        for name in ("deployment", "gateway", "sleeper"):
            child.api("DELETE", f"/api/workloads/{running_now[name]['id']}", fresh_connection=True)
