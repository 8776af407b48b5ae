"""Two versions in one cluster, one minor apart, both ways round (docs/skew-policy.md): an old root, a new
middle node below it, an old leaf below that, each on its own test host. The old version is built from
this repository's own history, at the first commit that speaks the versioned protocol (PREVIOUS: agent
0.2.0, protocol 1.1), with ``git archive``; the new one is the checkout.

Between old parent and new child, and between new parent and old child: heartbeats carry a change within
the usual time, a submission is delegated, a model only the parent has is fetched across the hop, and a
deployment keeps replicas on both. (A neighbour of another major is refused: tests/node/test_version_skew.py.)"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from cnetd import __version__
from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.file_server import copy_of
from tests.support.hosts import make_hosts
from tests.support.nodes import GIB, Node, link, running, wait_for
from tests.support.packaging import previous_version

pytestmark = pytest.mark.cluster
PREVIOUS = "28222528e22acaeed80466df8596f0e8374d9aad"  # "Versioned protocol (1.1, agent 0.2.0)"
PREVIOUS_VERSION = "0.2.0"
TOKEN = "mixed-versions"
PERIOD_S = 1.0
HEARTBEAT_WITHIN_S = 3 * PERIOD_S  # a change reaches the parent within a period (triggered: at once)
SLEEP = {"command": "sleep", "args": ["600"]}


@pytest.fixture(scope="module")
def model_dirs() -> Iterator[dict[str, Path]]:
    """A model only the root has, and one only the middle node has (the others see empty tmpfs there)."""
    dirs = {name: Path(tempfile.mkdtemp(prefix=f"cnet-{name}-models-")) for name in ("root", "middle")}
    for name, folder in dirs.items():
        folder.chmod(0o755)
        copy_of(YOLO_MODEL, folder, f"{name}.onnx")
    yield dirs
    for folder in dirs.values():
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tree(model_dirs: dict[str, Path]) -> Iterator[dict[str, Node]]:
    old = previous_version(PREVIOUS)
    with make_hosts(3) as hosts:
        hidden = {name: [str(folder) for other, folder in model_dirs.items() if other != name]
                  for name in ("root", "middle", "leaf")}
        root = link(Node({"cpu": 1, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, token=TOKEN,
                         host=hosts[0].hiding(*hidden["root"])), heartbeat_period_s=PERIOD_S)
        middle = link(Node({"cpu": 2, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, token=TOKEN,
                           host=hosts[1].hiding(*hidden["middle"])), parent=root, heartbeat_period_s=PERIOD_S)
        leaf = link(Node({"cpu": 4, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, token=TOKEN,
                         host=hosts[2].hiding(*hidden["leaf"])), parent=middle, heartbeat_period_s=PERIOD_S)
        root.bin_dir = leaf.bin_dir = old
        with running(root, middle, leaf):
            wait_for(lambda: _children(root) == {middle.node_id: "online"}
                     and _children(middle) == {leaf.node_id: "online"}, timeout_s=30,
                     diagnose=lambda: (_children(root), _children(middle)))
            yield {"root": root, "middle": middle, "leaf": leaf}


def _children(node: Node) -> dict[str, str]:
    return {child["id"]: child["status"] for child in node.api("GET", "/api/nodes").json()["children"]}


def _child_view(parent: Node, child: Node) -> dict[str, Any]:
    return next(entry for entry in parent.api("GET", "/api/nodes").json()["children"] if entry["id"] == child.node_id)


def _pairs(tree: dict[str, Node]) -> list[tuple[str, Node, Node]]:
    return [("old parent, new child", tree["root"], tree["middle"]),
            ("new parent, old child", tree["middle"], tree["leaf"])]


def test_the_tree_runs_both_versions(tree: dict[str, Node]) -> None:
    versions = {name: node.api("GET", "/api/health").json()["version"] for name, node in tree.items()}
    assert versions == {"root": PREVIOUS_VERSION, "middle": __version__, "leaf": PREVIOUS_VERSION}
    assert PREVIOUS_VERSION.split(".")[:1] == __version__.split(".")[:1]
    assert int(__version__.split(".")[1]) - int(PREVIOUS_VERSION.split(".")[1]) == 1  # one minor apart


@pytest.mark.parametrize("pair", [0, 1], ids=["old parent, new child", "new parent, old child"])
def test_heartbeats_carry_a_change_within_the_usual_time(tree: dict[str, Node], pair: int) -> None:
    _, parent, child = _pairs(tree)[pair]
    before = _child_view(parent, child)["resources"]["allocated"]["cpu"]
    record = child.submit(SLEEP, {"cpu": 0.5}).json()
    started = time.monotonic()
    wait_for(lambda: _child_view(parent, child)["resources"]["allocated"]["cpu"] == before + 0.5,
             timeout_s=HEARTBEAT_WITHIN_S, interval_s=0.02)
    assert time.monotonic() - started < HEARTBEAT_WITHIN_S
    assert _child_view(parent, child)["status"] == "online"
    child.api("DELETE", f"/api/workloads/{record['id']}")


@pytest.mark.parametrize("pair", [0, 1], ids=["old parent, new child", "new parent, old child"])
def test_a_submission_is_delegated_and_followed(tree: dict[str, Node], pair: int) -> None:
    _, parent, child = _pairs(tree)[pair]
    cpu = parent.resources()["available"]["cpu"] + 0.5  # does not fit the parent: its child takes it
    answer = parent.submit(SLEEP, {"cpu": cpu})
    assert answer.status_code == 201, answer.text
    record = answer.json()
    assert record["node"] == child.node_id and record["status"] == "running", record
    assert child.workload(record["id"])["status"] == "running"
    assert parent.api("POST", f"/api/workloads/{record['id']}/stop").json()["status"] == "stopped"
    assert parent.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200
    wait_for(lambda: child.api("GET", f"/api/workloads/{record['id']}").status_code == 404)


@pytest.mark.parametrize("pair", [0, 1], ids=["old parent, new child", "new parent, old child"])
def test_a_model_only_the_parent_has_is_fetched_across_the_hop(tree: dict[str, Node], model_dirs: dict[str, Path],
                                                                 pair: int) -> None:
    name, parent, child = _pairs(tree)[pair]
    model = model_dirs["root" if parent is tree["root"] else "middle"] / f"{'root' if parent is tree['root'] else 'middle'}.onnx"
    cpu = parent.resources()["available"]["cpu"] + 0.5
    answer = parent.submit({"model_type": "yolo", "model_path": str(model)}, {"cpu": cpu}, workload_type="mlmodel")
    assert answer.status_code == 201, answer.text
    record = answer.json()
    assert record["node"] == child.node_id and record["status"] == "running", (name, record)
    fetched = [entry for entry in child.api("GET", "/api/models").json()["models"] if entry["kind"] == "cached"]
    assert fetched and "/api/artifacts/" in fetched[0]["source"], fetched
    with open(ASTRONAUT, "rb") as image:
        found = parent.api("POST", f"/api/workloads/{record['id']}/predict", data=image.read(),
                           headers={"Content-Type": "image/png"}).json()
    assert [item["class"] for item in found["detections"]] == ["FACE_FEMALE"], found
    assert parent.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200


@pytest.mark.parametrize("pair", [0, 1], ids=["old parent, new child", "new parent, old child"])
def test_a_deployment_keeps_replicas_on_both(tree: dict[str, Node], pair: int) -> None:
    _, parent, child = _pairs(tree)[pair]
    answer = parent.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv", replicas=2)
    assert answer.status_code == 201, answer.text
    deployment = answer.json()
    assert deployment["deployment"]["healthy"] == 2, deployment
    nodes = {instance["node"] for instance in deployment["deployment"]["instances"]}
    assert nodes == {parent.node_id, child.node_id}, deployment["deployment"]["instances"]
    answered_by = set()
    for _ in range(6):
        with open(ASTRONAUT, "rb") as image:
            relayed = parent.api("POST", f"/api/workloads/{deployment['id']}/predict", data=image.read(),
                                 headers={"Content-Type": "image/png"})
        assert relayed.status_code == 200 and relayed.json()["count"] >= 1, relayed.text
        answered_by.add(relayed.headers["X-Cnet-Replica-Node"])
    assert answered_by == nodes
    assert parent.api("DELETE", f"/api/workloads/{deployment['id']}").status_code == 200
    wait_for(lambda: child.api("GET", "/api/workloads").json()["count"] == 0, timeout_s=30)


def test_the_previous_version_is_built_from_history() -> None:
    shown = subprocess.run(["git", "show", "-s", "--format=%s", PREVIOUS], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[2])
    assert shown.stdout.startswith("Versioned protocol (1.1, agent 0.2.0)"), shown.stdout
