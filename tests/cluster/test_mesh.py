"""The mesh across real nodes: topology, triggered sync, delegation, loops, fallback, offline and lost."""
from __future__ import annotations

import contextlib
import time
from typing import Iterator

import pytest
import zmq

from ledger.nodetable import Neighbour, NodeTable, Role
from mesh.messages import Heartbeat
from tests.support.heartbeats import heartbeat as well_formed
from tests.support.nodes import (GIB, Node, free_port, kill_node, link, neighbours_holding, nodes_view, running,
                                 wait_for)

SLOW_PERIOD_S = 30.0  # only triggered heartbeats can make the cluster tests pass quickly
SLEEP = {"command": "sleep", "args": ["120"]}


@pytest.fixture(scope="module")
def four_nodes() -> Iterator[dict[str, Node]]:
    """The original four-node cluster: jiangsu ← nanjing ← suqian, changzhou (peers of each other)."""
    def node(cpu: int) -> Node:
        return Node({"cpu": cpu, "memory": 16 * GIB, "gpu": 0, "storage": 0})
    jiangsu, nanjing, suqian, changzhou = node(2), node(8), node(4), node(4)
    link(jiangsu, heartbeat_period_s=SLOW_PERIOD_S)
    link(nanjing, parent=jiangsu, heartbeat_period_s=SLOW_PERIOD_S)
    link(suqian, parent=nanjing, peers=(changzhou,), heartbeat_period_s=SLOW_PERIOD_S)
    link(changzhou, parent=nanjing, peers=(suqian,), heartbeat_period_s=SLOW_PERIOD_S)
    nodes = {"jiangsu": jiangsu, "nanjing": nanjing, "suqian": suqian, "changzhou": changzhou}
    with running(*nodes.values()):
        yield nodes


@pytest.fixture
def clean(four_nodes: dict[str, Node]) -> Iterator[dict[str, Node]]:
    """Delete every workload on every node after the test, and wait until every node's heartbeats have told its
    neighbours: a next test that plans at once must not see a peer still holding what a delete freed (one did,
    35 ms after the delete, and was refused 409)."""
    yield four_nodes
    for member in four_nodes.values():
        for workload in member.workloads():
            member.api("DELETE", f"/api/workloads/{workload['id']}")
    for member in four_nodes.values():
        wait_for(lambda: not neighbours_holding(member), timeout_s=10, diagnose=lambda: neighbours_holding(member))


def ids(four_nodes: dict[str, Node]) -> dict[str, str]:
    return {name: member.node_id for name, member in four_nodes.items()}


def test_every_node_sees_its_neighbours(four_nodes: dict[str, Node]) -> None:
    n = ids(four_nodes)
    expected = {
        "jiangsu": {"self": n["jiangsu"], "parent": None, "children": [(n["nanjing"], "online")], "peers": []},
        "nanjing": {"self": n["nanjing"], "parent": (n["jiangsu"], "online"),
                    "children": sorted([(n["suqian"], "online"), (n["changzhou"], "online")]), "peers": []},
        "suqian": {"self": n["suqian"], "parent": (n["nanjing"], "online"), "children": [],
                   "peers": [(n["changzhou"], "online")]},
        "changzhou": {"self": n["changzhou"], "parent": (n["nanjing"], "online"), "children": [],
                      "peers": [(n["suqian"], "online")]},
    }
    for name, member in four_nodes.items():  # within a period (30 s): what the triggered heartbeats do
        wait_for(lambda: nodes_view(member) == expected[name], timeout_s=25,
                 diagnose=lambda: (name, nodes_view(member)))
    nanjing = four_nodes["nanjing"].api("GET", "/api/nodes").json()
    child = nanjing["children"][0]
    assert child["resources"]["capacity"]["cpu"] == 4.0 and child["last_seen_s"] < SLOW_PERIOD_S


def test_triggered_sync_reaches_parent_and_grandparent(clean: dict[str, Node]) -> None:
    suqian, nanjing, jiangsu = clean["suqian"], clean["nanjing"], clean["jiangsu"]
    n = ids(clean)
    wait_for(lambda: nodes_view(jiangsu)["children"] == [(n["nanjing"], "online")], timeout_s=10)
    base = jiangsu.api("GET", "/api/nodes").json()["children"][0]["subtree"]["allocated"]["cpu"]

    def suqian_as_seen_by(parent: Node) -> dict:
        return next(child for child in parent.api("GET", "/api/nodes").json()["children"] if child["id"] == n["suqian"])

    answered = suqian.submit(SLEEP, {"cpu": 1.5})
    assert answered.status_code == 201
    started = time.monotonic()
    # Bounds well under the 30 s period: only triggered heartbeats pass; bench/ measures the real latency.
    wait_for(lambda: suqian_as_seen_by(nanjing)["resources"]["allocated"]["cpu"] == 1.5, timeout_s=10, interval_s=0.005)
    wait_for(lambda: jiangsu.api("GET", "/api/nodes").json()["children"][0]["subtree"]["allocated"]["cpu"] == base + 1.5,
             timeout_s=10, interval_s=0.005)
    assert time.monotonic() - started < 10


def test_parent_delegates_to_child_and_acts_on_it(clean: dict[str, Node]) -> None:
    jiangsu, nanjing = clean["jiangsu"], clean["nanjing"]
    before = jiangsu.resources()
    answer = jiangsu.submit({"command": "sh", "args": ["-c", "echo from-child; sleep 120"]}, {"cpu": 3})
    assert answer.status_code == 201, answer.text
    record = answer.json()
    assert record["node"] == nanjing.node_id and record["status"] == "running"
    # The 201 is the origin's view: where it sent it and why, and what the target says of it.
    assert record["delegated_to"] == nanjing.node_id and not record["placement"]["local"]
    assert record["placement"]["node"] == nanjing.node_id and record["process_pid"] > 0
    assert jiangsu.resources() == before  # nothing allocated on the origin
    seen = jiangsu.workload(record["id"])
    assert seen["node"] == nanjing.node_id and seen["delegated_to"] == nanjing.node_id and seen["status"] == "running"
    assert seen["placement"]["node"] == nanjing.node_id and not seen["placement"]["local"]
    assert wait_for(lambda: jiangsu.api("GET", f"/api/workloads/{record['id']}/logs").json()["stdout"] == "from-child\n")
    listed = jiangsu.api("GET", "/api/workloads", params={"status": "running"}).json()["workloads"]
    assert record["id"] in [item["id"] for item in listed]
    stopped = jiangsu.api("POST", f"/api/workloads/{record['id']}/stop").json()
    assert stopped["status"] == "stopped" and jiangsu.workload(record["id"])["status"] == "stopped"
    assert jiangsu.api("DELETE", f"/api/workloads/{record['id']}").json()["deleted"] is True
    assert jiangsu.api("GET", f"/api/workloads/{record['id']}").status_code == 404
    assert nanjing.api("GET", f"/api/workloads/{record['id']}").status_code == 404


def test_two_hops_down(clean: dict[str, Node]) -> None:
    jiangsu, nanjing = clean["jiangsu"], clean["nanjing"]
    assert nanjing.submit(SLEEP, {"cpu": 6}).status_code == 201  # nanjing keeps 2 free
    answer = jiangsu.submit(SLEEP, {"cpu": 3})
    assert answer.status_code == 201, answer.text
    runs_on = answer.json()["node"]
    assert runs_on in (clean["suqian"].node_id, clean["changzhou"].node_id)
    view = jiangsu.workload(answer.json()["id"])
    assert view["node"] == runs_on and view["delegated_to"] == nanjing.node_id and view["status"] == "running"


def test_peer_delegates_to_peer(clean: dict[str, Node]) -> None:
    suqian, changzhou = clean["suqian"], clean["changzhou"]
    assert suqian.submit(SLEEP, {"cpu": 3}).status_code == 201
    answer = suqian.submit(SLEEP, {"cpu": 2})
    assert answer.status_code == 201 and answer.json()["node"] == changzhou.node_id


@pytest.mark.parametrize("visited", [["someone", "CHANGZHOU"], ["a", "b", "c", "d", "e"]])
def test_loops_and_long_chains_are_refused(clean: dict[str, Node], visited: list[str]) -> None:
    changzhou = clean["changzhou"]
    visited = [changzhou.node_id if node_id == "CHANGZHOU" else node_id for node_id in visited]
    answer = changzhou.submit(SLEEP, {"cpu": 1}, delegation={"visited": visited})
    assert answer.status_code == 409 and answer.json()["error"] == "delegation_refused"
    assert changzhou.resources()["allocated"]["cpu"] == 0


def test_peer_cycle_ends_in_a_refusal(clean: dict[str, Node]) -> None:
    suqian, changzhou = clean["suqian"], clean["changzhou"]
    for member in (suqian, changzhou):
        assert member.submit(SLEEP, {"cpu": 3}).status_code == 201
    answer = suqian.submit(SLEEP, {"cpu": 2})  # fits neither: suqian → changzhou must not come back
    assert answer.status_code == 409 and answer.json()["error"] == "insufficient_resources"


def test_unreachable_target_falls_back_to_the_next(clean: dict[str, Node]) -> None:
    nanjing, suqian, changzhou = clean["nanjing"], clean["suqian"], clean["changzhou"]
    first, second = sorted([suqian, changzhou], key=lambda member: member.node_id)  # the order nanjing tries
    assert nanjing.submit(SLEEP, {"cpu": 7}).status_code == 201
    first.supervisorctl("stop", "api")  # its register still heartbeats: online, but its API is gone
    try:
        answer = nanjing.submit(SLEEP, {"cpu": 2})
        assert answer.status_code == 201, answer.text
        assert answer.json()["node"] == second.node_id
    finally:
        first.supervisorctl("start", "api")
        wait_for(lambda: first.api("GET", "/api/health").ok, timeout_s=30)


def test_refusals_keep_their_kind(clean: dict[str, Node]) -> None:
    jiangsu, nanjing = clean["jiangsu"], clean["nanjing"]
    missing_model = jiangsu.submit({"model_type": "yolo", "model_path": "/nonexistent/faces.onnx"}, {"cpu": 3},
                                   workload_type="mlmodel")
    assert missing_model.status_code == 422, missing_model.text  # jiangsu is full, nanjing refuses the config
    assert "does not exist" in missing_model.json()["message"]
    refused = {refusal["node_id"]: refusal for refusal in missing_model.json()["refused"]}
    assert refused[jiangsu.node_id]["kind"] == "no_room" and refused[nanjing.node_id]["kind"] == "unprocessable"
    nanjing.supervisorctl("stop", "api")
    try:
        unreachable = jiangsu.submit(SLEEP, {"cpu": 3})
        assert unreachable.status_code == 503, unreachable.text
        assert [refusal["kind"] for refusal in unreachable.json()["refused"]
                if refusal["node_id"] == nanjing.node_id] == ["unreachable"]
    finally:
        nanjing.supervisorctl("start", "api")
        wait_for(lambda: nanjing.api("GET", "/api/health").ok, timeout_s=30)
    assert all(member.api("GET", "/api/workloads").json()["count"] == 0 for member in clean.values())


def test_nothing_fits_anywhere(clean: dict[str, Node]) -> None:
    before = {name: member.resources() for name, member in clean.items()}
    answer = clean["jiangsu"].submit(SLEEP, {"cpu": 64})
    assert answer.status_code == 409 and answer.json()["error"] == "insufficient_resources"
    assert {name: member.resources() for name, member in clean.items()} == before
    assert all(member.api("GET", "/api/workloads").json()["count"] == 0 for member in clean.values())


def heartbeat(node_id: str, registration: dict[str, str], cpu: float) -> Heartbeat:
    """A well-formed heartbeat in ``node_id``'s name announcing ``cpu`` free, sent from ``registration``."""
    return well_formed(node_id, {"cpu": cpu}, api_url=registration["api_url"],
                       mesh_endpoint=registration["mesh_endpoint"])


@contextlib.contextmanager
def registered_publisher(parent: Node, node_id: str) -> Iterator[tuple[zmq.Socket, dict[str, str]]]:
    """A PUB socket registered with ``parent`` as its child ``node_id``: what a misbehaving neighbour has."""
    port = free_port()
    publisher = zmq.Context.instance().socket(zmq.PUB)
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.bind(f"tcp://127.0.0.1:{port}")
    registration = {"node_id": node_id, "api_url": "http://127.0.0.1:9", "mesh_endpoint": f"tcp://127.0.0.1:{port}"}
    try:
        assert parent.api("POST", "/api/nodes/register", json=registration).status_code == 200
        yield publisher, registration
    finally:
        publisher.close()


def test_malformed_mesh_messages_are_survived(four_nodes: dict[str, Node]) -> None:
    jiangsu = four_nodes["jiangsu"]
    register_pid = jiangsu.program_pid("register")
    with registered_publisher(jiangsu, "intruder") as (publisher, registration):
        time.sleep(0.5)  # let the register subscribe
        garbage = [[b"hb", b"\xff\xfe not json"], [b"hb", b"[]"], [b"hb", b'{"v": 99}'], [b"hb"],
                   [b"hb", b"{" + b" " * 200_000 + b"}"], [b"hb", b'{"v": 1, "node_id": 5}']]
        for frames in garbage * 20:
            publisher.send_multipart(frames)
        valid = heartbeat("intruder", registration, cpu=1.0)
        wait_for(lambda: publisher.send_multipart(valid.encode()) or
                 ("intruder", "online") in nodes_view(jiangsu)["children"], timeout_s=10, interval_s=0.2)
        assert jiangsu.program_pid("register") == register_pid
        assert "dropped malformed mesh message" in jiangsu.log("register.log")


BAD_REGISTRATIONS = [
    {}, {"node_id": "x", "api_url": "ftp://x", "mesh_endpoint": "tcp://x:1"},
    {"node_id": "x", "api_url": "http://x:1", "mesh_endpoint": "tcp://edge node:9081"},  # the typo that broke it
    {"node_id": "x" * 600, "api_url": "http://x:1", "mesh_endpoint": "tcp://x:2"},
    {"node_id": "x", "api_url": "http://x", "mesh_endpoint": "tcp://x:2"},
    {"node_id": "x", "api_url": "http://x:1/admin?q=1", "mesh_endpoint": "tcp://x:2"},
    {"node_id": "x", "api_url": "http://user@x:1", "mesh_endpoint": "tcp://x:2"},
    {"node_id": "x", "api_url": "http://x:1", "mesh_endpoint": "tcp://x:70000"},
    {"node_id": "x", "api_url": "http://x:1", "mesh_endpoint": "ipc:///tmp/x"},
    {"node_id": "a b", "api_url": "http://x:1", "mesh_endpoint": "tcp://x:2"},
]


def test_a_publisher_cannot_speak_for_another_node(four_nodes: dict[str, Node]) -> None:
    jiangsu, nanjing = four_nodes["jiangsu"], four_nodes["nanjing"]
    try:
        with registered_publisher(jiangsu, "mallory") as (publisher, registration):
            # In nanjing's name: dropped, so nanjing never shows a million free cpus (nor draws work with them).
            forged = heartbeat(nanjing.node_id, registration, cpu=1_000_000.0)
            wait_for(lambda: publisher.send_multipart(forged.encode()) or
                     "cnet_heartbeats_dropped_total{reason=\"wrong_sender\"}" in jiangsu.api("GET", "/metrics").text,
                     timeout_s=10, interval_s=0.2)
            shown = next(child for child in jiangsu.api("GET", "/api/nodes").json()["children"]
                         if child["id"] == nanjing.node_id)
            assert shown["resources"]["available"]["cpu"] < 1000
            own = heartbeat("mallory", registration, cpu=1_000_000.0)  # control: in its own name it is heard
            wait_for(lambda: publisher.send_multipart(own.encode()) or
                     ("mallory", "online") in nodes_view(jiangsu)["children"], timeout_s=10, interval_s=0.2)
    finally:
        jiangsu.api("DELETE", "/api/nodes/mallory")


def test_a_registration_cannot_take_over_a_live_entry(four_nodes: dict[str, Node]) -> None:
    jiangsu, nanjing = four_nodes["jiangsu"], four_nodes["nanjing"]
    hijack = {"node_id": nanjing.node_id, "api_url": "http://127.0.0.1:9", "mesh_endpoint": "tcp://127.0.0.1:9"}
    answer = jiangsu.api("POST", "/api/nodes/register", json=hijack)
    assert answer.status_code == 409 and answer.json()["error"] == "conflict", answer.text
    entry = next(child for child in jiangsu.api("GET", "/api/nodes").json()["children"] if child["id"] == nanjing.node_id)
    assert entry["api_url"] == nanjing.url and entry["status"] == "online"
    # control: nanjing registering again as itself (a restart) is fine
    again = {"node_id": nanjing.node_id, "api_url": nanjing.url, "mesh_endpoint": f"tcp://127.0.0.1:{nanjing.mesh_port}"}
    assert jiangsu.api("POST", "/api/nodes/register", json=again).status_code == 200


def test_registration_is_validated(four_nodes: dict[str, Node]) -> None:
    jiangsu = four_nodes["jiangsu"]
    register_pid = jiangsu.program_pid("register")
    for body in [*BAD_REGISTRATIONS, {"node_id": jiangsu.node_id, "api_url": "http://x:1", "mesh_endpoint": "tcp://x:2"}]:
        answer = jiangsu.api("POST", "/api/nodes/register", json=body)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request", (body, answer.text)
    assert jiangsu.program_pid("register") == register_pid
    assert "x" not in [child for child, _ in nodes_view(jiangsu)["children"]]


def test_a_bad_node_table_entry_is_skipped_and_can_be_deleted(four_nodes: dict[str, Node]) -> None:
    jiangsu, nanjing = four_nodes["jiangsu"], four_nodes["nanjing"]
    register_pid = jiangsu.program_pid("register")
    table = NodeTable(str(jiangsu.runtime_dir / "nodes"))  # as a bug or an old version could have written it
    try:
        table.upsert(Neighbour("typo", Role.CHILD, "http://x:1", "tcp://edge node:9081"))
    finally:
        table.close()
    # Another registration makes the register re-read the table, bad entry included.
    fine = {"node_id": "fine", "api_url": "http://127.0.0.1:9", "mesh_endpoint": f"tcp://127.0.0.1:{free_port()}"}
    assert jiangsu.api("POST", "/api/nodes/register", json=fine).status_code == 200
    wait_for(lambda: "cnet_neighbour_entries_skipped_total 1.0" in jiangsu.api("GET", "/metrics").text, timeout_s=10)
    assert jiangsu.program_pid("register") == register_pid
    before = nanjing.api("GET", "/api/nodes").json()["parent"]["resources"]["allocated"]["cpu"]
    record = jiangsu.submit(SLEEP, {"cpu": 1}).json()  # a triggered heartbeat still reaches the child
    wait_for(lambda: nanjing.api("GET", "/api/nodes").json()["parent"]["resources"]["allocated"]["cpu"] == before + 1)
    for node_id in ("typo", "fine"):
        assert jiangsu.api("DELETE", f"/api/nodes/{node_id}").json() == {"id": node_id, "forgotten": True}
    assert jiangsu.api("DELETE", "/api/nodes/typo").status_code == 404
    assert not {"typo", "fine"} & {child for child, _ in nodes_view(jiangsu)["children"]}
    jiangsu.api("DELETE", f"/api/workloads/{record['id']}")


def test_a_child_silent_past_forget_after_is_dropped(start_node) -> None:
    parent = start_node(mesh={"heartbeat_period_s": 0.5, "forget_after_s": 2})
    ghost = {"node_id": "ghost", "api_url": "http://127.0.0.1:9", "mesh_endpoint": f"tcp://127.0.0.1:{free_port()}"}
    assert parent.api("POST", "/api/nodes/register", json=ghost).status_code == 200
    assert nodes_view(parent)["children"] == [("ghost", "offline")]
    wait_for(lambda: nodes_view(parent)["children"] == [], timeout_s=15)


def test_offline_child_then_lost_then_back(start_node) -> None:
    period_s = 1.0
    parent = link(Node({"cpu": 1, "memory": GIB, "gpu": 0, "storage": 0}), heartbeat_period_s=period_s)
    child = link(Node(), parent=parent, heartbeat_period_s=period_s)
    with running(parent, child):
        wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "online")], timeout_s=10,
                 diagnose=lambda: (nodes_view(parent), child.log("register.log")[-2000:],
                                   parent.log("register.log")[-2000:]))
        record = parent.submit(SLEEP, {"cpu": 2}).json()
        assert record["node"] == child.node_id

        kill_node(child)
        # Offline after three missed periods; the bound only leaves room for a loaded machine.
        wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "offline")], timeout_s=3 * period_s + 8,
                 diagnose=lambda: nodes_view(parent))
        assert parent.workload(record["id"])["status"] == "lost"
        assert parent.api("POST", f"/api/workloads/{record['id']}/stop").status_code == 503

        child.start()  # its ledger still says the workload should run: it is relaunched
        wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "online")], timeout_s=15,
                 diagnose=lambda: (nodes_view(parent), child.log("register.log")[-2000:]))
        back = wait_for(lambda: (view := parent.workload(record["id"]))["status"] == "running" and view,
                        diagnose=lambda: (parent.workload(record["id"]), child.workload(record["id"])))
        assert back["node"] == child.node_id

        parent.restart()  # the child is found again and its workload is still reachable through the parent
        wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "online")], timeout_s=15,
                 diagnose=lambda: (nodes_view(parent), parent.log("register.log")[-2000:]))
        assert parent.workload(record["id"])["status"] == "running"
        assert parent.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200
