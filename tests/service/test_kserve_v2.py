"""The KServe v2 protocol of the model services, spoken by Triton's own client (``tritonclient.http``):
server and model ready, metadata, infer on a random tensor equals onnxruntime's output (binary and JSON),
infer on an image equals /predict, and bad requests are 4xx."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import onnxruntime
import orjson
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.services import predict, standalone_service

IMAGE = Path(ASTRONAUT).read_bytes()


@pytest.fixture(scope="module")
def yolo(tmp_path_factory) -> Iterator[str]:
    yield from standalone_service(tmp_path_factory.mktemp("v2"), "cnet-inference-yolo", "--model", YOLO_MODEL,
                                  "--name", "faces", "--threads", "2")


@pytest.fixture(scope="module")
def haar(tmp_path_factory) -> Iterator[str]:
    yield from standalone_service(tmp_path_factory.mktemp("v2"), "cnet-inference-opencv", "--cascade", "face")


@pytest.fixture(scope="module")
def reference() -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(YOLO_MODEL, providers=["CPUExecutionProvider"])


def client(url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url.removeprefix("http://"))


def test_server_and_model_are_live_and_ready_with_metadata(yolo: str) -> None:
    server = client(yolo)
    assert server.is_server_live() and server.is_server_ready() and server.is_model_ready("faces")
    assert "binary_tensor_data" in server.get_server_metadata()["extensions"]
    metadata = server.get_model_metadata("faces")
    assert (metadata["name"], metadata["platform"]) == ("faces", "onnxruntime_onnx")
    assert metadata["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]
    assert metadata["outputs"] == [{"name": "output0", "datatype": "FP32", "shape": [-1, 22, -1]}]
    assert not server.is_model_ready("nobody")  # control: another name is not served here
    with pytest.raises(InferenceServerException):
        server.get_model_metadata("nobody")


@pytest.mark.parametrize("binary", [True, False])
def test_infer_on_a_random_tensor_equals_onnxruntime(yolo: str, reference: onnxruntime.InferenceSession,
                                                     binary: bool) -> None:
    tensor = np.random.default_rng(7).random((2, 3, 320, 320), dtype=np.float32)  # a batch of two
    request = triton.InferInput("images", list(tensor.shape), "FP32")
    request.set_data_from_numpy(tensor, binary_data=binary)
    answer = client(yolo).infer("faces", [request], outputs=[triton.InferRequestedOutput("output0", binary_data=binary)])
    expected = reference.run(None, {"images": tensor})[0]
    got = answer.as_numpy("output0")
    assert got.shape == expected.shape == (2, 22, 2100)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(got[0], got[1])  # control: each row is its own image's


def test_infer_on_an_image_equals_predict(yolo: str, haar: str) -> None:
    for url, name in ((yolo, "faces"), (haar, "haar-face")):
        request = triton.InferInput("image", [1], "BYTES")
        request.set_data_from_numpy(np.array([IMAGE], dtype=np.object_))
        answer = client(url).infer(name, [request], parameters={"confidence": 0.25})
        expected = predict(url)["detections"]
        assert expected, "the astronaut has a face"
        assert [name.decode() for name in answer.as_numpy("classes")] == [item["class"] for item in expected]
        np.testing.assert_allclose(answer.as_numpy("boxes"), [item["bbox"] for item in expected], atol=0.01)
        np.testing.assert_allclose(answer.as_numpy("scores"), [item["confidence"] for item in expected], atol=1e-4)
        assert answer.as_numpy("class_ids").tolist() == [item["class_id"] for item in expected]


def test_a_json_infer_request_as_curl_sends_it(yolo: str) -> None:
    import base64
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(IMAGE).decode()]}],
            "outputs": [{"name": "classes"}, {"name": "scores"}]}
    answer = requests.post(f"{yolo}/v2/models/faces/infer", json=body, timeout=30)
    assert answer.status_code == 200 and "Inference-Header-Content-Length" not in answer.headers
    outputs = {output["name"]: output for output in answer.json()["outputs"]}
    assert set(outputs) == {"classes", "scores"} and outputs["classes"]["data"][0].startswith("FACE")


@pytest.mark.parametrize("body, says", [
    (b"{", "not JSON"),
    ({"inputs": []}, "non-empty list of inputs"),
    ({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 3, 2, 2], "data": [1.0]}]}, "1 elements"),
    ({"inputs": [{"name": "images", "datatype": "INT8", "shape": [1], "data": [1]}]}, "the model takes FP32"),
    ({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 4, 2, 2], "data": [0.0] * 16}]}, "shape"),
    ({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1], "data": [0.0]}]}, "the model takes"),
    ({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 3, 2, 2], "parameters": {"binary_data_size": 48}}]},
     "does not fit the body"),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["bm90IGFuIGltYWdl"]}]}, "image"),
    ({"inputs": [{"name": "images", "datatype": "FP32", "shape": [2 ** 20, 2 ** 10], "data": []}]}, "more than"),
])
def test_a_bad_infer_request_is_a_4xx_naming_what_is_wrong(yolo: str, body: object, says: str) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    answer = requests.post(f"{yolo}/v2/models/faces/infer", data=raw, headers={"Content-Type": "application/json"},
                           timeout=30)
    assert 400 <= answer.status_code < 500 and says in answer.json()["message"], answer.text
    assert requests.get(f"{yolo}/v2/health/ready", timeout=10).status_code == 200  # it serves on


def test_a_model_of_images_only_refuses_tensors(haar: str) -> None:
    metadata = client(haar).get_model_metadata("haar-face")
    assert metadata["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [1]}]
    answer = requests.post(f"{haar}/v2/models/haar-face/infer", json={"inputs": [
        {"name": "images", "datatype": "FP32", "shape": [1], "data": [0.0]}]}, timeout=30)
    assert answer.status_code == 422 and "takes images" in answer.json()["message"], answer.text
