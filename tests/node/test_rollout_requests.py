"""What a request to change a deployment may not do, on one node: a PATCH to a single workload, an unknown
field, a revision whose model does not load, and a second rollout while one is under way are refused
(422, 400, 422, 409), and the running revision is left as it was; promote without a canary is 409; the
revision's check runs before anything is recorded. `cnet rollout` shows the same as the API."""
from __future__ import annotations

import subprocess
from typing import Any, Iterator

import pytest

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.nodes import VENV_BIN, Node, wait_for

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def models(node: Node) -> Iterator[dict[str, Any]]:
    answer = node.submit({"model_type": "yolo", "model_path": YOLO_MODEL}, {"cpu": 0.5}, workload_type="mlmodel",
                         replicas=2)
    assert answer.status_code == 201, answer.text
    yield answer.json()
    node.api("DELETE", f"/api/workloads/{answer.json()['id']}")


def unchanged(node: Node, deployment: dict[str, Any]) -> None:
    shown = node.workload(deployment["id"])["deployment"]
    assert shown["revision"] == 1 and shown["rollout"] is None and len(shown["revisions"]) == 1, shown


def test_what_a_deployment_change_may_not_be_is_refused_and_changes_nothing(node: Node, models: dict[str, Any]) -> None:
    single = node.submit({"command": "sleep", "args": ["60"]}).json()
    patch = f"/api/workloads/{models['id']}"
    cases = [
        (f"/api/workloads/{single['id']}", {"config": {"command": "true"}}, 422, "is not a deployment"),
        (patch, {"configuration": {}}, 400, "unknown field"),
        (patch, {"replicas": 3, "config": {}}, 400, "in separate requests"),
        (patch, {"config": {"model_type": "yolo", "model_path": ASTRONAUT}}, 422, "not a loadable ONNX model"),
        (patch, {"config": {"model_type": "yolo", "model_path": "/nonexistent.onnx"}}, 422, "does not exist"),
        (patch, {"config": models["config"]}, 422, "nothing to roll out"),
        (patch, {"update": {"canary": 5}}, 422, "update.canary"),
    ]
    for path, body, status, words in cases:
        answer = node.api("PATCH", path, json=body)
        assert answer.status_code == status and words in answer.json()["message"], (body, answer.text)
        unchanged(node, models)
    assert node.api("POST", f"/api/workloads/{models['id']}/promote").status_code == 409
    assert node.api("POST", f"/api/workloads/{single['id']}/rollback").status_code == 422
    node.api("DELETE", f"/api/workloads/{single['id']}")


def test_a_second_rollout_while_one_is_under_way_is_409(node: Node, models: dict[str, Any]) -> None:
    first = node.api("PATCH", f"/api/workloads/{models['id']}", json={"requirements": {"cpu": 0.4},
                                                                       "update": {"canary": 1}})
    assert first.status_code == 200 and first.json()["deployment"]["rollout"]["revision"] == 2, first.text
    second = node.api("PATCH", f"/api/workloads/{models['id']}", json={"requirements": {"cpu": 0.3}})
    assert second.status_code == 409 and "rolling out revision 2" in second.json()["message"], second.text
    shown = subprocess.run([str(VENV_BIN / "cnet"), "--addr", node.url, "rollout", "status", models["id"]],
                           capture_output=True, text=True, timeout=30, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert "revision 1 active; rolling out 2" in shown.stdout, shown.stdout + shown.stderr
    undone = subprocess.run([str(VENV_BIN / "cnet"), "--addr", node.url, "rollout", "undo", models["id"]],
                            capture_output=True, text=True, timeout=30)
    assert "rollout of revision 2 rolled back" in undone.stdout, undone.stdout + undone.stderr
    wait_for(lambda: node.workload(models["id"])["deployment"]["rollout"] is None, timeout_s=60)
    history = subprocess.run([str(VENV_BIN / "cnet"), "--addr", node.url, "rollout", "history", models["id"], "-o",
                              "json"], capture_output=True, text=True, timeout=30)
    assert '"rolled back"' in history.stdout and "rolled back by request" in history.stdout, history.stdout
    wait_for(lambda: [item["revision"] for item in node.workload(models["id"])["deployment"]["instances"]] == [1, 1],
             timeout_s=60)
