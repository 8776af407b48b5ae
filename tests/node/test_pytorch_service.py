"""The PyTorch model service on the CPU: the real YOLO model as TorchScript gives the onnxruntime answers."""
from __future__ import annotations

import pytest
import requests

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.nodes import Node
from tests.support.onnx_to_torch import export_torchscript


@pytest.fixture(scope="module")
def torchscript_model(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("torch") / "320n.torchscript"
    export_torchscript(YOLO_MODEL, str(path))
    return str(path)


def detections(endpoint: str) -> list[dict]:
    with open(ASTRONAUT, "rb") as handle:
        answer = requests.post(f"{endpoint}/predict", data=handle.read(), params={"confidence": 0.1},
                               headers={"Content-Type": "image/png"}, timeout=60)
    return answer.json()["detections"]


def test_torchscript_service_matches_onnxruntime(shared_node: Node, torchscript_model: str) -> None:
    node = shared_node
    onnx = node.submit({"model_type": "yolo", "model_path": YOLO_MODEL}, {"cpu": 1}, workload_type="mlmodel").json()
    torch = node.submit({"model_type": "pytorch", "model_path": torchscript_model}, {"cpu": 1},
                        workload_type="mlmodel").json()
    assert torch["status"] == "running", torch
    info = requests.get(f"{torch['endpoint']}/info", timeout=10).json()
    assert info["model_type"] == "pytorch" and info["device"] == "cpu" and info["input_size"] == [320, 320]
    expected, got = detections(onnx["endpoint"]), detections(torch["endpoint"])
    assert [d["class"] for d in got] == [d["class"] for d in expected] == ["FACE_FEMALE", "FACE_MALE"]
    for mine, reference in zip(got, expected):
        assert mine["confidence"] == pytest.approx(reference["confidence"], abs=1e-3)
        assert mine["bbox"] == pytest.approx(reference["bbox"], abs=0.2)
    for workload in (onnx, torch):
        node.api("DELETE", f"/api/workloads/{workload['id']}")


def test_not_torchscript_is_refused(shared_node: Node) -> None:
    node = shared_node
    answer = node.submit({"model_type": "pytorch", "model_path": YOLO_MODEL}, {"cpu": 1}, workload_type="mlmodel")
    assert answer.status_code == 422 and "not a loadable TorchScript model" in answer.json()["message"]


def test_pytorch_without_torch_says_what_to_install(monkeypatch) -> None:
    from cnetd.common.errors import Unprocessable
    from workers import mlmodel
    monkeypatch.setattr(mlmodel.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Unprocessable) as refused:
        mlmodel.YoloExecutor().validate({"model_type": "pytorch", "model_path": YOLO_MODEL}, None)
    assert "pip install '.[torch]'" in refused.value.message
