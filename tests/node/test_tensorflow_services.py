"""TensorFlow model services on a real node: the test YOLO model converted by onnx2tf to TFLite and to a
SavedModel (zipped) finds on the test images what onnxruntime finds, through the node's /predict; the v2
protocol shows and runs the converted model's own NHWC tensor; a node without the runtime names the pip
extra; files that are no such model, and archives that would write outside their folder, are 422."""
from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest
import requests
import tritonclient.http as triton

from cnetd.common.errors import Unprocessable
from inference.yolo_model import YoloModel
from tests.support.assets import ASTRONAUT, COFFEE, YOLO_MODEL, iou
from tests.support.nodes import Node
from tests.support.tf_models import TensorFlowModels, converted
from workers import mlmodel

DATA = Path(ASTRONAUT).parent
IMAGES = [ASTRONAUT, str(DATA / "camera.png"), str(DATA / "chelsea.png"), COFFEE, str(DATA / "moon.png")]
CONFIDENCE = 0.1


@pytest.fixture(scope="module")
def tf_models() -> TensorFlowModels:
    return converted(YOLO_MODEL)


@pytest.fixture(scope="module")
def services(shared_node: Node, tf_models: TensorFlowModels) -> Iterator[dict[str, dict]]:
    paths = {"tflite": tf_models.tflite, "tensorflow": tf_models.saved_model_zip}
    records = {}
    for model_type, path in paths.items():
        answer = shared_node.submit({"model_type": model_type, "model_path": str(path)}, {"cpu": 1},
                                    workload_type="mlmodel", name=f"faces-{model_type}")
        assert answer.status_code == 201 and answer.json()["status"] == "running", answer.text
        records[model_type] = answer.json()
    yield records
    for record in records.values():
        shared_node.api("DELETE", f"/api/workloads/{record['id']}")


@pytest.fixture(scope="module")
def reference() -> YoloModel:
    return YoloModel(YOLO_MODEL, threads=1)


@pytest.mark.parametrize("model_type", ["tflite", "tensorflow"])
def test_detections_match_onnxruntime_through_the_node(shared_node: Node, services: dict[str, dict],
                                                       reference: YoloModel, model_type: str) -> None:
    record = services[model_type]
    found = 0
    for image in IMAGES:
        expected, _ = reference.predict(cv2.imread(image), confidence=CONFIDENCE)
        answer = shared_node.api("POST", f"/api/workloads/{record['id']}/predict",
                                 params={"confidence": CONFIDENCE - 0.02},  # a borderline one may not flip out
                                 data=Path(image).read_bytes(), headers={"Content-Type": "image/png"})
        assert answer.status_code == 200, answer.text
        got = answer.json()["detections"]
        for wanted in expected:
            assert any(item["class"] == wanted.class_name and iou(item["bbox"], wanted.bbox) >= 0.9
                       and abs(item["confidence"] - wanted.confidence) <= 0.01 for item in got), (image, wanted, got)
        found += len(expected)
    assert found >= 5  # control: the images hold detections to match


def test_info_says_what_runs_it(services: dict[str, dict]) -> None:
    for model_type, device in (("tflite", "LiteRT"), ("tensorflow", "TensorFlow")):
        info = requests.get(f"{services[model_type]['endpoint']}/info", timeout=10).json()
        assert info["model_type"] == model_type and device in info["device"], info
        assert info["input_size"] == [320, 320] and info["names"]["1"] == "FACE_FEMALE", info


@pytest.mark.parametrize("model_type, platform, output", [("tflite", "tensorflow_tflite", "Identity"),
                                                          ("tensorflow", "tensorflow_savedmodel", "output_0")])
def test_v2_runs_the_models_own_nhwc_tensor(services: dict[str, dict], reference: YoloModel, model_type: str,
                                            platform: str, output: str) -> None:
    name = f"faces-{model_type}"
    client = triton.InferenceServerClient(services[model_type]["endpoint"].removeprefix("http://"))
    metadata = client.get_model_metadata(name)
    assert metadata["platform"] == platform
    assert metadata["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [1, 320, 320, 3]}]
    tensor = np.random.default_rng(3).random((1, 3, 320, 320), dtype=np.float32)
    request = triton.InferInput("images", [1, 320, 320, 3], "FP32")
    request.set_data_from_numpy(np.ascontiguousarray(tensor.transpose(0, 2, 3, 1)))
    got = client.infer(name, [request]).as_numpy(output)
    np.testing.assert_allclose(got, reference.backend.run(tensor), atol=2e-3)
    assert not np.allclose(got, reference.backend.run(tensor[:, ::-1].copy()), atol=2e-3)  # control: channels matter


@pytest.mark.parametrize("model_type, extra", [("tflite", "tflite"), ("tensorflow", "tensorflow")])
def test_without_the_runtime_the_answer_names_the_extra(monkeypatch, model_type: str, extra: str) -> None:
    monkeypatch.setattr(mlmodel.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Unprocessable) as refused:
        mlmodel.YoloExecutor().validate({"model_type": model_type, "model_path": YOLO_MODEL}, None)
    assert f"pip install '.[{extra}]'" in refused.value.message


def _tar_with(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(content)
            archive.addfile(entry, io.BytesIO(content))
    return buffer.getvalue()


def test_what_is_no_such_model_is_422(shared_node: Node, tf_models: TensorFlowModels, tmp_path: Path) -> None:
    archives = {"empty.zip": {"readme.txt": b"no model here"}, "garbage.zip": {"saved_model.pb": b"garbage"}}
    for name, members in archives.items():
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for member, content in members.items():
                archive.writestr(member, content)
    escaping = tmp_path / "escape.tar.gz"  # an archive that would write beside the folder it is unpacked to
    escaping.write_bytes(_tar_with({"saved_model.pb": b"garbage", "../../cnet-escaped.txt": b"out"}))
    cases = [("tflite", YOLO_MODEL, "not a loadable TFLite model"),
             ("tensorflow", YOLO_MODEL, "neither a SavedModel directory nor a zip or tar of one"),
             ("tensorflow", str(tmp_path / "empty.zip"), "holds no saved_model.pb"),
             ("tensorflow", str(tmp_path / "garbage.zip"), "not a loadable SavedModel"),  # control: unpacked, loaded
             ("tensorflow", str(escaping), "could not be unpacked")]
    before = shared_node.resources()
    for model_type, path, says in cases:
        answer = shared_node.submit({"model_type": model_type, "model_path": path}, {"cpu": 1},
                                    workload_type="mlmodel")
        assert answer.status_code == 422 and says in answer.json()["message"], (model_type, path, answer.text)
    assert shared_node.resources() == before
    assert not list(Path("/tmp").glob("cnet-escaped.txt")) and not list(Path("/").glob("cnet-escaped.txt"))


def test_a_savedmodel_directory_is_packed_into_the_cache_and_served(shared_node: Node, tf_models: TensorFlowModels,
                                                                     reference: YoloModel) -> None:
    """model_path names a SavedModel directory, as TF Serving and Triton take one: the node packs it (a tar,
    the same bytes for the same files) into its cache, serves it, and a second deployment reuses the pack."""
    folder = Path(tempfile.mkdtemp(prefix="cnet-savedmodel-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        with zipfile.ZipFile(tf_models.saved_model_zip) as archive:
            archive.extractall(folder)
        model_dir = next(path.parent for path in folder.rglob("saved_model.pb"))
        records = []
        for _ in range(2):
            answer = shared_node.submit({"model_type": "tensorflow", "model_path": str(model_dir)}, {"cpu": 1},
                                        workload_type="mlmodel")
            assert answer.status_code == 201 and answer.json()["status"] == "running", answer.text
            records.append(answer.json())
        assert records[0]["config"]["model_sha256"] == records[1]["config"]["model_sha256"]
        packed = [model for model in shared_node.api("GET", "/api/models").json()["models"]
                  if model["source"] == str(model_dir)]
        assert len(packed) == 1 and packed[0]["kind"] == "cached" and packed[0]["users"] == sorted(
            record["id"] for record in records), packed
        expected, _ = reference.predict(cv2.imread(IMAGES[0]), confidence=CONFIDENCE)
        answer = shared_node.api("POST", f"/api/workloads/{records[0]['id']}/predict", params={"confidence": CONFIDENCE},
                                 data=Path(IMAGES[0]).read_bytes(), headers={"Content-Type": "image/png"})
        assert sorted(item["class"] for item in answer.json()["detections"]) == sorted(
            wanted.class_name for wanted in expected)
        for record in records:
            assert shared_node.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200
    finally:
        shutil.rmtree(folder, ignore_errors=True)
