"""The KServe v2 protocol through a node (with a token): Triton's client, given ``NODE/api/workloads/ID`` as
its URL, finds a deployment of two replicas ready, reads its metadata and infers (tensors and an image),
and the infers are balanced over the replicas as predictions are."""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Iterator

import numpy as np
import onnxruntime
import pytest
import requests
import tritonclient.http as triton

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.nodes import GIB, Node, running

TOKEN = "v2-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    with running(Node({"cpu": 2, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, token=TOKEN)) as node:
        deployed = node.submit({"model_type": "yolo", "model_path": YOLO_MODEL}, {"cpu": 0.5}, workload_type="mlmodel",
                               id="detector", name="faces", replicas=2)
        assert deployed.status_code == 201 and deployed.json()["status"] == "running", deployed.text
        yield node


def client(node: Node) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"{node.address}/api/workloads/detector")


def test_tritonclient_finds_the_deployment_ready_and_its_metadata(node: Node) -> None:
    server = client(node)
    assert server.is_server_live(headers=AUTH) and server.is_server_ready(headers=AUTH)
    assert server.is_model_ready("faces", headers=AUTH)
    metadata = server.get_model_metadata("faces", headers=AUTH)
    assert metadata["inputs"][0]["name"] == "images" and metadata["platform"] == "onnxruntime_onnx"
    # Control: without the token the node refuses.
    assert requests.get(f"{node.url}/api/workloads/detector/v2/health/ready", timeout=10).status_code == 401


def test_tritonclient_infers_through_the_node_balanced_over_the_replicas(node: Node) -> None:
    tensor = np.random.default_rng(3).random((1, 3, 320, 320), dtype=np.float32)
    request = triton.InferInput("images", list(tensor.shape), "FP32")
    request.set_data_from_numpy(tensor)
    answer = client(node).infer("faces", [request], headers=AUTH)
    expected = onnxruntime.InferenceSession(YOLO_MODEL, providers=["CPUExecutionProvider"]).run(None, {"images": tensor})[0]
    np.testing.assert_allclose(answer.as_numpy("output0"), expected, rtol=1e-4, atol=1e-4)
    image = triton.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([Path(ASTRONAUT).read_bytes()], dtype=np.object_))
    detected = client(node).infer("faces", [image], headers=AUTH)
    predicted = node.api("POST", "/api/workloads/detector/predict", data=Path(ASTRONAUT).read_bytes(),
                         headers={"Content-Type": "image/png"}).json()["detections"]
    assert [name.decode() for name in detected.as_numpy("classes")] == [item["class"] for item in predicted]
    # Balanced: the replica that answered is named, and each takes its turn.
    body = {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 3, 32, 32], "data": [0.5] * 3072}]}
    answered = collections.Counter(
        node.api("POST", "/api/workloads/detector/v2/models/faces/infer", json=body).headers["X-Cnet-Replica"]
        for _ in range(4))
    assert answered == {"detector-r0": 2, "detector-r1": 2}


def test_a_wrong_model_name_and_a_workload_that_is_no_model_service(node: Node) -> None:
    assert node.api("GET", "/api/workloads/detector/v2/models/other").status_code == 404
    sleeper = node.submit({"command": "sleep", "args": ["60"]}, {"cpu": 0.1}).json()
    try:
        answer = node.api("GET", f"/api/workloads/{sleeper['id']}/v2/health/ready")
        assert answer.status_code == 409 and answer.json()["error"] == "not_a_service"
    finally:
        node.api("DELETE", f"/api/workloads/{sleeper['id']}")
