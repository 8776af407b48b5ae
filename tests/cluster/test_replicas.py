"""Replicas across three real test hosts (origin and two children, each 2 cpu): a deployment of 3 face
detectors of 1 cpu spreads one replica per node and its endpoint balances over all three; killing one
replica's process 4 times (3 restarts, then failed) costs no request and the deployment is replaced back
to 3 healthy; scaling 3 → 1 → 2 frees and takes cpu on the right nodes, dropping no request; a node
partitioned past ``replicas.lost_after_s`` has its replica replaced, and after the heal that old replica
is deleted there, never counted twice."""
from __future__ import annotations

import collections
import os
import signal
import threading
import time
from typing import Any, Iterator

import pytest

from tests.support.assets import ASTRONAUT
from tests.support.hosts import make_hosts
from tests.support.nodes import GIB, Node, link, nodes_view, running, wait_for

TOKEN = "replicas-across-hosts"
LOST_AFTER_S = 4.0
NODE_RESOURCES = {"cpu": 2, "memory": 8 * GIB, "gpu": 0, "storage": GIB}
ALL_FREE = [NODE_RESOURCES["cpu"]] * 2  # what the origin's plan reads of its two children when they hold nothing
IMAGE = open(ASTRONAUT, "rb").read()


@pytest.fixture(scope="module")
def tree() -> Iterator[list[Node]]:
    """origin ← child 1, origin ← child 2, each on its own host."""
    with make_hosts(3) as hosts:
        origin = link(Node(NODE_RESOURCES, token=TOKEN, host=hosts[0], replicas={"lost_after_s": LOST_AFTER_S}),
                      heartbeat_period_s=1.0)
        children = [link(Node(NODE_RESOURCES, token=TOKEN, host=host), parent=origin, heartbeat_period_s=1.0)
                    for host in hosts[1:]]
        with running(origin, *children):
            wait_for(lambda: _online_children(origin) == 2, timeout_s=30, diagnose=lambda: nodes_view(origin))
            yield [origin, *children]


def _online_children(origin: Node) -> int:
    return sum(child["status"] == "online" and bool(child.get("subtree"))
               for child in origin.api("GET", "/api/nodes").json()["children"])


@pytest.fixture
def faces(tree: list[Node]) -> Iterator[dict[str, Any]]:
    origin = tree[0]
    answer = origin.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv", replicas=3, id="faces")
    assert answer.status_code == 201, answer.text
    try:
        yield answer.json()
    finally:
        deleted = origin.api("DELETE", "/api/workloads/faces")
        assert deleted.status_code == 200 and not deleted.json()["replicas_pending"], deleted.text
        for node in tree:
            wait_for(lambda node=node: node.resources()["allocated"]["cpu"] == 0, timeout_s=20,
                     diagnose=lambda node=node: node.api("GET", "/api/workloads").json())
        # and the origin has heard so: the next test's plan reads the children's heartbeats (one planned while a
        # child still said it held 1 cpu, and refused replica 3 of 4 where replica 4 was meant to be refused)
        wait_for(lambda: children_free_to_the_plan(origin) == ALL_FREE, timeout_s=10,
                 diagnose=lambda: children_free_to_the_plan(origin))


def predict(node: Node, workload_id: str = "faces") -> tuple[int, str | None]:
    answer = node.api("POST", f"/api/workloads/{workload_id}/predict", data=IMAGE,
                      headers={"Content-Type": "image/png"})
    assert answer.status_code != 200 or answer.json()["count"] >= 1, answer.text
    return answer.status_code, answer.headers.get("X-Cnet-Replica")


class Load:
    """Clients sending predictions to a deployment until stopped, counting the answers by status."""

    def __init__(self, node: Node, clients: int = 2) -> None:
        self.statuses: collections.Counter[int] = collections.Counter()
        self._node, self._done = node, threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(clients)]

    def _send(self) -> None:
        while not self._done.is_set():
            status, _ = predict(self._node)
            self.statuses[status] += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join(timeout=70)


def deployment(node: Node) -> dict[str, Any]:
    return node.workload("faces")


def active(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [instance for instance in view["deployment"]["instances"] if not instance["retired_because"]]


def healthy_and_settled(node: Node, count: int) -> bool:
    """``count`` replicas running, none taken out of rotation still around."""
    view = deployment(node)
    instances = view["deployment"]["instances"]
    return view["status"] == "running" and len(instances) == count and all(
        instance["status"] == "running" for instance in instances)


def children_free_to_the_plan(origin: Node) -> list[float | None]:
    """The free cpu of each child's subtree in ``origin``'s last heartbeat from it (``available_max``), which
    ``origin``'s placement reads."""
    return [child["subtree"]["available_max"]["cpu"] if child["subtree"] else None
            for child in origin.api("GET", "/api/nodes").json()["children"]]


def cpu_held(tree: list[Node]) -> list[float]:
    return [node.resources()["allocated"]["cpu"] for node in tree]


def test_three_replicas_spread_over_three_nodes_and_share_the_requests(tree: list[Node], faces: dict[str, Any]) -> None:
    assert faces["status"] == "running" and faces["deployment"]["summary"] == "running 3/3", faces
    assert sorted(instance["node"] for instance in faces["deployment"]["instances"]) == sorted(
        node.node_id for node in tree)
    assert cpu_held(tree) == [1, 1, 1]
    # A delegated replica joins the rotation once the controller has seen it running (within a round).
    wait_for(lambda: len({predict(tree[0]) for _ in range(3)}) == 3, timeout_s=10)
    answered = collections.Counter(predict(tree[0]) for _ in range(30))
    assert answered == {(200, f"faces-r{index}"): 10 for index in range(3)}, answered
    # The replicas are within the deployment, not beside it; each is still there by its id.
    listed = tree[0].workloads()
    assert [view["id"] for view in listed] == ["faces"]
    assert tree[0].workload("faces-r1")["replica_of"] == "faces"


def test_a_replica_killed_four_times_costs_no_request_and_is_replaced(tree: list[Node], faces: dict[str, Any]) -> None:
    origin = tree[0]
    victim = next(instance for instance in faces["deployment"]["instances"] if instance["node"] == tree[1].node_id)
    with Load(origin) as load:
        for kill in range(1, 5):
            pid = origin.workload(victim["id"])["process_pid"]
            os.kill(pid, signal.SIGKILL)
            if kill == 1:  # control: the replica itself, asked without the balancer, cannot answer now
                assert predict(origin, victim["id"])[0] in (409, 503)
            if kill < 4:
                wait_for(lambda: (lambda view: view["status"] == "running" and view["restarts"] == kill)(
                    origin.workload(victim["id"])), timeout_s=30, diagnose=lambda: origin.workload(victim["id"]))
        wait_for(lambda: healthy_and_settled(origin, 3) and victim["id"] not in
                 [instance["id"] for instance in deployment(origin)["deployment"]["instances"]],
                 timeout_s=60, diagnose=lambda: deployment(origin))
        time.sleep(1)  # requests go on to the replacement
    assert set(load.statuses) == {200} and load.statuses[200] > 20, load.statuses
    view = deployment(origin)
    assert view["deployment"]["reschedules"] == 1, view
    assert sorted(cpu_held(tree)) == [1, 1, 1] or sum(cpu_held(tree)) == 3


def test_scale_3_to_1_to_2_frees_and_takes_cpu_on_the_right_nodes(tree: list[Node], faces: dict[str, Any]) -> None:
    origin = tree[0]
    with Load(origin, clients=4) as load:  # scaling down drains: no request is dropped
        scaled = origin.api("PATCH", "/api/workloads/faces", json={"replicas": 1})
        assert scaled.status_code == 200 and scaled.json()["deployment"]["replicas"] == 1, scaled.text
        wait_for(lambda: healthy_and_settled(origin, 1), timeout_s=30, diagnose=lambda: deployment(origin))
    assert set(load.statuses) == {200}, load.statuses
    [kept] = deployment(origin)["deployment"]["instances"]
    assert kept["id"] == "faces-r0" and kept["node"] == origin.node_id
    assert cpu_held(tree) == [1, 0, 0]
    assert origin.api("PATCH", "/api/workloads/faces", json={"replicas": 2}).status_code == 200
    wait_for(lambda: healthy_and_settled(origin, 2), timeout_s=30, diagnose=lambda: deployment(origin))
    nodes = {instance["node"] for instance in deployment(origin)["deployment"]["instances"]}
    assert len(nodes) == 2 and origin.node_id in nodes  # spread: the new replica went to a child
    assert sorted(cpu_held(tree)) == [0, 1, 1]
    for bad in ({"replicas": 0}, {"replicas": "2"}, {"replicas": 2, "spread": "any"}):
        refused = origin.api("PATCH", "/api/workloads/faces", json=bad)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_request", refused.text


def test_a_partitioned_replica_is_replaced_and_deleted_after_the_heal(tree: list[Node], faces: dict[str, Any]) -> None:
    origin, lost_node = tree[0], tree[2]
    [lost] = [instance for instance in faces["deployment"]["instances"] if instance["node"] == lost_node.node_id]
    lost_node.host.cut()
    try:
        wait_for(lambda: any(instance["status"] == "lost" for instance in active(deployment(origin))),
                 timeout_s=20, diagnose=lambda: deployment(origin))
        # Control: lost is not yet replaced; the grace (replicas.lost_after_s) runs first.
        assert [instance["id"] for instance in active(deployment(origin))] == [f"faces-r{index}" for index in range(3)]
        assert deployment(origin)["status"] == "degraded"
        wait_for(lambda: len([instance for instance in active(deployment(origin))
                              if instance["status"] == "running"]) == 3, timeout_s=30,
                 diagnose=lambda: deployment(origin))
        assert {200} == {predict(origin)[0] for _ in range(6)}
        assert lost_node.node_id not in {instance["node"] for instance in active(deployment(origin))}
    finally:
        lost_node.host.heal()
        lost_node.http.close()  # its keep-alive connection died in the partition
    # Back online: its old replica is stopped and deleted there, and counted nowhere.
    wait_for(lambda: not lost_node.workloads(), timeout_s=40,
             diagnose=lambda: (deployment(origin), lost_node.api("GET", "/api/workloads").json()))
    wait_for(lambda: healthy_and_settled(origin, 3), timeout_s=20, diagnose=lambda: deployment(origin))
    view = deployment(origin)
    assert lost["id"] not in [instance["id"] for instance in view["deployment"]["instances"]]
    assert view["deployment"]["reschedules"] == 1 and lost_node.resources()["allocated"]["cpu"] == 0
    assert sum(cpu_held(tree)) == 3


def test_all_or_nothing_refuses_leaving_nothing_and_best_effort_runs_what_fits(tree: list[Node]) -> None:
    origin = tree[0]
    refused = origin.submit({"cascade_type": "face"}, {"cpu": 1.5}, workload_type="opencv", replicas=4, id="many")
    assert refused.status_code == 409 and refused.json()["error"] == "insufficient_resources", refused.text
    assert "replica 4 of 4" in refused.json()["message"]
    assert cpu_held(tree) == [0, 0, 0] and not origin.workloads()
    # The best-effort plan reads what the children's heartbeats said: wait until each says the refusal freed it,
    # in the field the plan reads (one planned first saw a child still holding its deleted replica, and placed
    # 2 of 4; once more, in a CI run, a child shown with 1 of its 2 cpu free).
    wait_for(lambda: children_free_to_the_plan(origin) == ALL_FREE, timeout_s=10,
             diagnose=lambda: children_free_to_the_plan(origin))
    partial = origin.submit({"cascade_type": "face"}, {"cpu": 1.5}, workload_type="opencv", replicas=4, id="many",
                            placement="best-effort")
    try:
        assert partial.status_code == 201, partial.text
        view = partial.json()
        assert view["status"] == "degraded" and view["deployment"]["summary"] == "running 3/4", \
            (view["deployment"], view["message"], children_free_to_the_plan(origin))
        assert "3 of 4 replicas placed" in view["message"]
        assert cpu_held(tree) == [1.5, 1.5, 1.5]
    finally:
        assert origin.api("DELETE", "/api/workloads/many").status_code == 200
        for node in tree:
            wait_for(lambda node=node: node.resources()["allocated"]["cpu"] == 0, timeout_s=20)
