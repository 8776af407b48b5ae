"""A deployment of replicas on one node: a replica whose health checks fail (two in a row) leaves the rotation
and comes back after its restart, while one failed check keeps a lone replica serving; stop and delete act on
every replica; what a deployment cannot be is refused with the right status and leaves nothing."""
from __future__ import annotations

import collections
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import pytest
import requests

from cnetd.core.deployment_state import FAILURES_OUT_OF_ROTATION
from tests.support.assets import ASTRONAUT
from tests.support.nodes import GIB, Node, running, wait_for

FACE = {"cascade_type": "face"}
IMAGE = open(ASTRONAUT, "rb").read()


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    with running(Node({"cpu": 2, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, health={"interval_s": 0.5},
                      replicas={"max": 4})) as node:
        yield node


@pytest.fixture
def pair(node: Node) -> Iterator[dict[str, Any]]:
    answer = node.submit(FACE, {"cpu": 0.5}, workload_type="opencv", replicas=2, id="pair")
    assert answer.status_code == 201 and answer.json()["status"] == "running", answer.text
    try:
        yield answer.json()
    finally:
        assert node.api("DELETE", "/api/workloads/pair").status_code == 200
        wait_for(lambda: node.resources()["allocated"]["cpu"] == 0, timeout_s=20)


def answered_by(node: Node, count: int) -> collections.Counter[str]:
    replicas: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        answer = node.api("POST", "/api/workloads/pair/predict", data=IMAGE, headers={"Content-Type": "image/png"})
        assert answer.status_code == 200 and answer.json()["count"] >= 1, answer.text
        replicas[answer.headers["X-Cnet-Replica"]] += 1
    return replicas


def test_spread_by_node_falls_back_to_one_node_when_there_is_only_one(node: Node, pair: dict[str, Any]) -> None:
    assert [instance["node"] for instance in pair["deployment"]["instances"]] == [node.node_id] * 2
    assert node.resources()["allocated"]["cpu"] == 1


def test_a_replica_failing_its_health_checks_leaves_the_rotation_until_it_is_back(node: Node,
                                                                                  pair: dict[str, Any]) -> None:
    assert answered_by(node, 4) == {"pair-r0": 2, "pair-r1": 2}  # control: both serve
    pid = node.workload("pair-r0")["process_pid"]
    os.killpg(pid, signal.SIGSTOP)  # its server and workers: alive, holding the port, answering nothing
    try:
        wait_for(lambda: node.workload("pair-r0")["health_failures"] >= FAILURES_OUT_OF_ROTATION, timeout_s=20,
                 diagnose=lambda: node.workload("pair-r0"))
        assert node.workload("pair")["status"] == "degraded"
        assert answered_by(node, 6) == {"pair-r1": 6}
    finally:
        os.killpg(pid, signal.SIGCONT)
    # Healthy again (or, past its third failure, restarted): back in the rotation.
    wait_for(lambda: (lambda view: view["status"] == "running" and view["health_failures"] == 0)(
        node.workload("pair-r0")), timeout_s=30, diagnose=lambda: node.workload("pair-r0"))
    assert node.workload("pair")["status"] == "running"
    assert answered_by(node, 4) == {"pair-r0": 2, "pair-r1": 2}


def test_one_failed_health_check_keeps_a_lone_replica_serving_and_a_second_in_a_row_takes_it_out(node: Node) -> None:
    """A check that times out while the replica's cores are taken (two replicas warming up beside it, in a chaos
    run) took the only replica out of the rotation, and its deployment answered 503 until the next check."""
    assert node.submit(FACE, {"cpu": 0.5}, workload_type="opencv", replicas=1, id="lone").status_code == 201
    try:
        pid = node.workload("lone-r0")["process_pid"]

        def predict() -> requests.Response:
            return node.api("POST", "/api/workloads/lone/predict", data=IMAGE, headers={"Content-Type": "image/png"})

        os.killpg(pid, signal.SIGSTOP)  # its next check times out
        try:
            wait_for(lambda: node.workload("lone-r0")["health_failures"] == 1, timeout_s=20,
                     diagnose=lambda: node.workload("lone-r0"))
            assert node.workload("lone")["status"] == "running"
            with ThreadPoolExecutor(1) as pool:
                held = pool.submit(predict)  # still in the rotation: relayed, and answered once the replica goes on
                time.sleep(0.3)
                os.killpg(pid, signal.SIGCONT)
                assert held.result(timeout=30).status_code == 200
        finally:
            os.killpg(pid, signal.SIGCONT)
        wait_for(lambda: node.workload("lone-r0")["health_failures"] == 0, timeout_s=10,  # checked again at once
                 diagnose=lambda: node.workload("lone-r0"))
        # The control: a second failure in a row takes it out, and the deployment says so at once.
        os.killpg(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: node.workload("lone-r0")["health_failures"] >= FAILURES_OUT_OF_ROTATION, timeout_s=20,
                     diagnose=lambda: node.workload("lone-r0"))
            refused = predict()
        finally:
            os.killpg(pid, signal.SIGCONT)
        assert refused.status_code == 503 and "in rotation" in refused.json()["message"], refused.text
        wait_for(lambda: predict().status_code == 200, timeout_s=30, diagnose=lambda: node.workload("lone-r0"))
    finally:
        assert node.api("DELETE", "/api/workloads/lone").status_code == 200
        wait_for(lambda: node.resources()["allocated"]["cpu"] == 0, timeout_s=20)


def test_stop_acts_on_every_replica_and_none_is_replaced(node: Node, pair: dict[str, Any]) -> None:
    stopped = node.api("POST", "/api/workloads/pair/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped", stopped.text
    wait_for(lambda: all(instance["status"] == "stopped" for instance in node.workload("pair")["deployment"]["instances"]),
             timeout_s=10, diagnose=lambda: node.workload("pair"))
    assert node.resources()["allocated"]["cpu"] == 0
    time.sleep(1.5)  # the controller's rounds go by
    view = node.workload("pair")
    assert [instance["id"] for instance in view["deployment"]["instances"]] == ["pair-r0", "pair-r1"], view
    assert node.api("PATCH", "/api/workloads/pair", json={"replicas": 3}).status_code == 409


def test_what_a_deployment_cannot_be_is_refused_and_leaves_nothing(node: Node) -> None:
    single = node.submit(FACE, {"cpu": 0.5}, workload_type="opencv", id="single")
    assert single.status_code == 201
    try:
        refusals = [
            (node.api("PATCH", "/api/workloads/single", json={"replicas": 2}), 409, "conflict"),
            (node.api("PATCH", "/api/workloads/nothing", json={"replicas": 2}), 404, "not_found"),
            (node.api("PATCH", "/api/workloads/single", json={"replicas": 2, "name": "x"}), 400, "invalid_request"),
            (node.api("PATCH", "/api/workloads/single", data=b"[", headers={"Content-Type": "application/json"}),
             400, "invalid_request"),
            (node.submit(FACE, workload_type="opencv", replicas=5), 422, "unprocessable"),  # replicas.max is 4
            (node.submit({"command": "sleep", "args": ["9"]}, replicas=2), 400, "invalid_request"),
            (node.submit(FACE, {"cpu": 1}, workload_type="opencv", replicas=3), 409, "insufficient_resources"),
        ]
        for answer, status, code in refusals:
            assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
        assert [view["id"] for view in node.workloads()] == ["single"]
        assert node.resources()["allocated"]["cpu"] == 0.5
    finally:
        node.api("DELETE", "/api/workloads/single")
