"""Model rollouts across three test hosts, under predictions through the deployment's node: a YOLO
deployment of 3 replicas (one per node; the model only on the first, fetched by the others through the
model cache) rolls from v1 (nudenet's YOLOv8n) to v2 (the same network re-exported with other class names,
so every answer tells which revision made it).

- v1 → v2 under 16 clients: no request fails, every answer comes from one revision (its X-CNET-Revision
  header and its class names agree), and afterwards every replica runs v2. The control: the old way (delete
  and submit again) under the same load does fail requests.
- A broken v2 (a warm-up image that does not decode: it passes the checks, then every start of it fails)
  is rolled back with the reason recorded, no request fails, and no answer ever comes from it.
- A canary takes its share of the traffic (within 10 points of its share of the replicas); promote, then undo.
- A node cut off during a rollout: the rollout finishes elsewhere, is ``pending`` there, and completes after
  the heal, with no replica twice.
- A replica whose node keeps killing it moves to another node after its restarts, after the reschedule delay.
"""
from __future__ import annotations

import ast
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import onnx
import pytest

from tests.support.assets import YOLO_MODEL
from tests.support.hosts import make_hosts
from tests.support.load import PredictionLoad
from tests.support.nodes import GIB, Node, link, nodes_view, running, wait_for

pytestmark = pytest.mark.cluster
TOKEN = "rollouts"
PERIOD_S = 1.0
CLIENTS = 16
CLASSES = {1: ("FACE_FEMALE",), 2: ("FACE_FEMALE_V2",)}  # what the astronaut is, by revision
ROLLOUT_S = 180  # a bound that catches a hang: three replicas fetch, check, warm up and settle one by one


@pytest.fixture(scope="module")
def models() -> Iterator[dict[str, Path]]:
    """v1, v2 (class names suffixed _V2: other bytes, other answers) and a warm-up image that is no image."""
    folder = Path(tempfile.mkdtemp(prefix="cnet-rollout-models-"))
    folder.chmod(0o755)
    shutil.copy(YOLO_MODEL, folder / "v1.onnx")
    model = onnx.load(YOLO_MODEL)
    for entry in model.metadata_props:
        if entry.key == "names":
            entry.value = str({index: f"{name}_V2" for index, name in ast.literal_eval(entry.value).items()})
    onnx.save(model, str(folder / "v2.onnx"))
    (folder / "broken-warmup.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    for path in folder.iterdir():
        path.chmod(0o644)
    yield {"v1": folder / "v1.onnx", "v2": folder / "v2.onnx", "broken": folder / "broken-warmup.png",
           "folder": folder}
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tree(models: dict[str, Path]) -> Iterator[list[Node]]:
    """A parent and two children on three hosts; only the parent sees the models' folder."""
    with make_hosts(3) as hosts:
        hidden = str(models["folder"])
        parent = link(Node({"cpu": 2, "memory": 8 * GIB, "gpu": 0, "storage": 2 * GIB}, token=TOKEN, host=hosts[0],
                           replicas={"lost_after_s": 300}), heartbeat_period_s=PERIOD_S)
        children = [link(Node({"cpu": 2, "memory": 8 * GIB, "gpu": 0, "storage": 2 * GIB}, token=TOKEN,
                              host=host.hiding(hidden)), parent=parent, heartbeat_period_s=PERIOD_S)
                    for host in hosts[1:]]
        with running(parent, *children):
            wait_for(lambda: sorted(status for _, status in nodes_view(parent)["children"]) == ["online", "online"],
                     timeout_s=30)
            yield [parent, *children]


@pytest.fixture(autouse=True)
def removed_after(tree: list[Node]) -> Iterator[None]:
    """Each test's deployments are deleted when it ends, also when it fails: the next test needs the cores."""
    yield
    parent = tree[0]
    for record in parent.workloads():
        parent.api("DELETE", f"/api/workloads/{record['id']}")
    # Fresh connections: one kept alive across a test's partition would be reset after it.
    wait_for(lambda: all(free_cpu(node) == 2 for node in tree), timeout_s=60, diagnose=lambda: [free_cpu(n) for n in tree])


def free_cpu(node: Node) -> float:
    return node.api("GET", "/api/resources", fresh_connection=True).json()["available"]["cpu"]


def deploy(parent: Node, models: dict[str, Path], **fields: Any) -> dict[str, Any]:
    answer = parent.submit({"model_type": "yolo", "model_path": str(models["v1"])}, {"cpu": 1},
                           workload_type="mlmodel", replicas=3, **fields)
    assert answer.status_code == 201, answer.text
    deployment = answer.json()
    assert deployment["deployment"]["healthy"] == 3, deployment
    return deployment


def view(parent: Node, deployment: dict[str, Any]) -> dict[str, Any]:
    return parent.workload(deployment["id"])


def serving(parent: Node, deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return [instance for instance in view(parent, deployment)["deployment"]["instances"]
            if not instance["retired_because"]]


def revision_state(parent: Node, deployment: dict[str, Any], number: int) -> str:
    return next(item["state"] for item in view(parent, deployment)["deployment"]["revisions"]
                if item["revision"] == number)


def load(parent: Node, deployment: dict[str, Any], clients: int = CLIENTS) -> PredictionLoad:
    return PredictionLoad(f"{parent.url}/api/workloads/{deployment['id']}/predict", clients=clients,
                          headers={"Authorization": f"Bearer {TOKEN}"})


def revise(parent: Node, deployment: dict[str, Any], **change: Any) -> dict[str, Any]:
    answer = parent.api("PATCH", f"/api/workloads/{deployment['id']}", json=change)
    assert answer.status_code == 200, answer.text
    return answer.json()


def to_v2(models: dict[str, Path], **config: Any) -> dict[str, Any]:
    return {"config": {"model_type": "yolo", "model_path": str(models["v2"]), **config}}


def one_revision_each(answers: list) -> set[int]:
    """Every answer's revision header agrees with the classes it found; the revisions that answered."""
    seen = set()
    for answer in answers:
        revision = int(answer.headers["X-Cnet-Revision"])
        assert answer.detections == CLASSES[revision], answer
        seen.add(revision)
    return seen


def remove(parent: Node, deployment: dict[str, Any]) -> None:
    assert parent.api("DELETE", f"/api/workloads/{deployment['id']}").status_code == 200


def test_v1_to_v2_under_load_fails_no_request_and_each_answer_is_one_revisions(tree: list[Node],
                                                                               models: dict[str, Path]) -> None:
    parent = tree[0]
    deployment = deploy(parent, models)
    with load(parent, deployment) as clients:
        clients.wait_for_answers(50)
        revised = revise(parent, deployment, **to_v2(models))
        assert revised["deployment"]["rollout"]["revision"] == 2
        wait_for(lambda: view(parent, deployment)["deployment"]["revision"] == 2, timeout_s=ROLLOUT_S)
        wait_for(lambda: len(serving(parent, deployment)) == 3, timeout_s=30)
        done, since = len(clients.answers), time.monotonic()
        clients.wait_for_answers(done + 50)
    assert clients.failed() == [], clients.failed()[:3]
    assert one_revision_each(clients.answers) == {1, 2}
    # a request sent before the last v1 replica left the rotation may still be answered by it
    assert one_revision_each([answer for answer in clients.answers if answer.sent_at >= since]) == {2}
    instances = serving(parent, deployment)
    assert [instance["revision"] for instance in instances] == [2, 2, 2], instances
    assert len({instance["node"] for instance in instances}) == 3  # spread as before
    revisions = {item["revision"]: item["state"] for item in view(parent, deployment)["deployment"]["revisions"]}
    assert revisions == {1: "superseded", 2: "active"}
    assert view(parent, deployment)["config"]["model_path"] == str(models["v2"])
    remove(parent, deployment)


def test_the_control_delete_and_submit_again_fails_requests(tree: list[Node], models: dict[str, Path]) -> None:
    parent = tree[0]
    deployment = deploy(parent, models)
    with load(parent, deployment, clients=4) as clients:
        clients.wait_for_answers(20)
        remove(parent, deployment)
        again = parent.submit({"model_type": "yolo", "model_path": str(models["v2"])}, {"cpu": 1},
                              workload_type="mlmodel", replicas=3, id=deployment["id"])
        assert again.status_code == 201, again.text
        clients.wait_for_answers(len(clients.answers) + 20)
    assert clients.failed(), "the old way did not fail a single request"
    remove(parent, again.json())


def test_a_broken_v2_is_rolled_back_under_load_and_never_answers(tree: list[Node], models: dict[str, Path]) -> None:
    parent = tree[0]
    deployment = deploy(parent, models)
    with load(parent, deployment, clients=8) as clients:
        clients.wait_for_answers(30)
        revise(parent, deployment, **to_v2(models, warmup_image=str(models["broken"])))
        wait_for(lambda: revision_state(parent, deployment, 2) == "rolled back", timeout_s=ROLLOUT_S,
                 diagnose=lambda: view(parent, deployment)["deployment"])
        wait_for(lambda: len(serving(parent, deployment)) == 3, timeout_s=30)
        clients.wait_for_answers(len(clients.answers) + 30)
    assert clients.failed() == [], clients.failed()[:3]
    assert one_revision_each(clients.answers) == {1}  # the broken revision never took traffic
    shown = view(parent, deployment)
    assert shown["deployment"]["revision"] == 1 and shown["deployment"]["rollout"] is None
    reason = next(item["reason"] for item in shown["deployment"]["revisions"] if item["revision"] == 2)
    assert "ended failed" in reason or "not healthy within" in reason, reason
    assert [instance["revision"] for instance in serving(parent, deployment)] == [1, 1, 1]
    remove(parent, deployment)


def test_a_canary_takes_its_share_then_is_promoted_and_undone(tree: list[Node], models: dict[str, Path]) -> None:
    parent = tree[0]
    deployment = deploy(parent, models)
    revise(parent, deployment, **to_v2(models), update={"canary": 1})
    wait_for(lambda: "waiting for a promote" in next(item["reason"] for item in view(
        parent, deployment)["deployment"]["revisions"] if item["revision"] == 2), timeout_s=ROLLOUT_S)
    assert sorted(instance["revision"] for instance in serving(parent, deployment)) == [1, 1, 1, 2]
    with load(parent, deployment, clients=4) as clients:
        clients.wait_for_answers(400, timeout_s=120)
    share = sum(int(answer.headers["X-Cnet-Revision"]) == 2 for answer in clients.answers) / len(clients.answers)
    assert abs(share - 0.25) <= 0.10, share  # one canary of four replicas
    assert clients.failed() == []
    assert parent.api("POST", f"/api/workloads/{deployment['id']}/promote").status_code == 200
    wait_for(lambda: view(parent, deployment)["deployment"]["revision"] == 2, timeout_s=ROLLOUT_S)
    undone = parent.api("POST", f"/api/workloads/{deployment['id']}/rollback")
    assert undone.status_code == 200 and undone.json()["deployment"]["rollout"]["revision"] == 1, undone.text
    wait_for(lambda: view(parent, deployment)["deployment"]["revision"] == 1
             and view(parent, deployment)["deployment"]["rollout"] is None, timeout_s=ROLLOUT_S)
    assert revision_state(parent, deployment, 2) == "rolled back"
    wait_for(lambda: sorted(instance["revision"] for instance in serving(parent, deployment)) == [1, 1, 1])
    remove(parent, deployment)


def test_a_node_cut_off_during_a_rollout_is_pending_and_updated_after_the_heal(tree: list[Node],
                                                                               models: dict[str, Path]) -> None:
    parent, _, cut = tree
    deployment = deploy(parent, models)
    cut.host.cut()
    try:
        wait_for(lambda: any(instance["status"] == "lost" for instance in serving(parent, deployment)), timeout_s=15)
        revise(parent, deployment, **to_v2(models))
        wait_for(lambda: revision_state(parent, deployment, 2) == "pending", timeout_s=ROLLOUT_S,
                 diagnose=lambda: view(parent, deployment)["deployment"])
        instances = serving(parent, deployment)
        assert sorted(instance["revision"] for instance in instances) == [1, 2, 2], instances
        assert [instance["node"] for instance in instances if instance["revision"] == 1] == [cut.node_id]
    finally:
        cut.host.heal()
    wait_for(lambda: view(parent, deployment)["deployment"]["revision"] == 2, timeout_s=ROLLOUT_S,
             diagnose=lambda: view(parent, deployment)["deployment"])
    wait_for(lambda: len(serving(parent, deployment)) == 3 and len(view(parent, deployment)["deployment"]
                                                                    ["instances"]) == 3, timeout_s=60)
    instances = serving(parent, deployment)
    assert [instance["revision"] for instance in instances] == [2, 2, 2]
    assert sorted(instance["node"] for instance in instances) == sorted(node.node_id for node in tree)
    held = [record["id"] for node in tree for record in node.api("GET", "/api/workloads?ids=" + ",".join(
        instance["id"] for instance in instances), fresh_connection=True).json()["workloads"]
        if not record.get("delegated_to")]
    assert sorted(held) == sorted(instance["id"] for instance in instances)  # each replica runs once, somewhere
    remove(parent, deployment)


def test_a_replica_whose_node_keeps_killing_it_moves_to_another_node_after_the_delay(
        tree: list[Node], models: dict[str, Path]) -> None:
    parent, troubled, _ = tree
    deployment = deploy(parent, models, reschedule={"delay_s": 3, "max_delay_s": 3})
    victim = next(instance for instance in serving(parent, deployment) if instance["node"] == troubled.node_id)
    for _ in range(4):  # its start, and its three restarts
        pid = wait_for(lambda: (record := troubled.workload(victim["id"]))["status"] in ("running", "starting")
                       and record["process_pid"], timeout_s=60)
        os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: troubled.workload(victim["id"])["process_pid"] != pid, timeout_s=30)
    wait_for(lambda: troubled.workload(victim["id"])["status"] == "failed", timeout_s=30)
    failed_at = time.monotonic()
    replaced = wait_for(lambda: next((instance for instance in serving(parent, deployment)
                                      if instance["id"] != victim["id"] and instance["id"] not in
                                      {item["id"] for item in deployment["deployment"]["instances"]}), None),
                        timeout_s=60)
    assert time.monotonic() - failed_at >= 2.0  # the reschedule delay (3 s), less a round's slack
    assert replaced["node"] != troubled.node_id, replaced
    wait_for(lambda: view(parent, deployment)["deployment"]["healthy"] == 3, timeout_s=120)
    assert view(parent, deployment)["deployment"]["reschedules"] == 1
    remove(parent, deployment)
