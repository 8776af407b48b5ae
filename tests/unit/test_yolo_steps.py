"""YOLO steps on their own: letterbox, the three output layouts (tiny ONNX graphs), NMS, the real model."""
from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inference import yolo_steps as steps
from inference.yolo_model import NotAYoloModel, YoloModel
from tests.support.assets import ASTRONAUT, YOLO_MODEL

NAMES = "{0: 'cat', 1: 'dog'}"
# One box in letterbox pixels of a 64×64 input: centre (32, 32), 20×10 → xyxy (22, 27, 42, 37).
# For a 128×64 (w×h) image: r = 0.5, pad top 16 → original (44, 22, 84, 42).
EXPECTED_BOX = [44.0, 22.0, 84.0, 42.0]


def constant_output_model(path, output: np.ndarray, input_hw=(64, 64), names: str | None = NAMES) -> str:
    """An ONNX graph that ignores its image (×0) and always answers ``output``."""
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_hw])
    result = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))
    nodes = [helper.make_node("ReduceSum", ["images"], ["total"], keepdims=0),
             helper.make_node("Mul", ["total", "zero"], ["nothing"]),
             helper.make_node("Add", ["answer", "nothing"], ["output0"])]
    graph = helper.make_graph(nodes, "fixture", [image], [result],
                              initializer=[numpy_helper.from_array(output.astype(np.float32), "answer"),
                                           numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if names is not None:
        helper.set_model_props(model, {"names": names})
    onnx.save(model, str(path))
    return str(path)


def wide_image() -> np.ndarray:
    return np.full((64, 128, 3), 50, np.uint8)


@pytest.mark.parametrize("layout, output", [
    (steps.Layout.V8, np.array([[[32, 5], [32, 5], [20, 4], [10, 4], [0.1, 0.05], [0.9, 0.01]]])),  # (1, 4+C, N)
    (steps.Layout.V5, np.array([[[32, 32, 20, 10, 0.9, 0.1, 0.9], [5, 5, 4, 4, 0.01, 0.5, 0.5]]])),  # (1, N, 5+C)
    (steps.Layout.END_TO_END, np.array([[[22, 27, 42, 37, 0.8, 1], [1, 1, 3, 3, 0.01, 0]]])),      # (1, N, 6)
])
def test_each_layout_decodes_to_the_known_box(tmp_path, layout: str, output: np.ndarray) -> None:
    model = YoloModel(constant_output_model(tmp_path / "m.onnx", output))
    assert model.layout == layout and model.input_size == (64, 64)
    detections, _ = model.predict(wide_image(), confidence=0.25)
    assert [(d.class_name, d.class_id) for d in detections] == [("dog", 1)]
    assert detections[0].bbox == pytest.approx(EXPECTED_BOX, abs=0.01)


def test_missing_names_fall_back_to_class_n(tmp_path) -> None:
    output = np.array([[[32, 32, 20, 10, 0.9, 1]]])
    model = YoloModel(constant_output_model(tmp_path / "m.onnx", output, names=None))
    assert model.predict(wide_image())[0][0].class_name == "class_1"


def test_class_aware_nms_keeps_overlaps_of_different_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    classes = np.array([0, 0, 1])
    kept = steps.select(boxes, scores, classes, steps.Layout.V8, 0.25, 0.45, 300, None)
    assert kept.tolist() == [0, 2]
    assert steps.select(boxes, scores, classes, steps.Layout.V8, 0.25, 0.45, 300, [1]).tolist() == [2]
    assert steps.select(boxes, scores, classes, steps.Layout.V8, 0.25, 0.45, 1, None).tolist() == [0]


def test_letterbox_pads_centred_with_grey() -> None:
    boxed = steps.letterbox(wide_image(), (64, 64))
    assert boxed.image.shape == (64, 64, 3) and boxed.ratio == 0.5 and boxed.pad == (0.0, 16.0)
    assert (boxed.image[:16] == 114).all() and (boxed.image[48:] == 114).all() and (boxed.image[16:48] == 50).all()
    tensor = steps.to_tensor(boxed.image)
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32 and tensor.max() <= 1.0


def test_not_a_yolo_model(tmp_path) -> None:
    (tmp_path / "x.onnx").write_bytes(b"not a model")
    with pytest.raises(NotAYoloModel):
        YoloModel(str(tmp_path / "x.onnx"))
    with pytest.raises(NotAYoloModel):
        YoloModel(str(tmp_path / "missing.onnx"))
    with pytest.raises(NotAYoloModel):  # an ONNX graph, but its output is no YOLO layout for 2 classes
        YoloModel(constant_output_model(tmp_path / "odd.onnx", np.zeros((1, 3, 3))))


def test_real_model_reference_on_astronaut() -> None:
    model = YoloModel(YOLO_MODEL)
    image = cv2.imread(ASTRONAUT)
    assert model.input_size == (320, 320) and model.layout == steps.Layout.V8
    detections, _ = model.predict(image, confidence=0.25, iou=0.45)
    assert [d.class_name for d in detections] == ["FACE_FEMALE"]
    assert detections[0].confidence == pytest.approx(0.8106, abs=1e-4)
    assert detections[0].bbox == pytest.approx([173.2, 82.8, 274.0, 180.2], abs=0.1)
    detections, _ = model.predict(image, confidence=0.1, iou=0.45)
    assert [d.class_name for d in detections] == ["FACE_FEMALE", "FACE_MALE"]  # kept only by class-aware NMS
    assert detections[1].confidence == pytest.approx(0.1675, abs=1e-4)


def test_cuda_provider_only_with_a_gpu_given_and_offered(monkeypatch) -> None:
    from inference import yolo_model
    monkeypatch.setattr(yolo_model.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert yolo_model.default_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the node gave this workload no GPU
    assert yolo_model.default_providers() == ["CPUExecutionProvider"]
    monkeypatch.setattr(yolo_model.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert yolo_model.default_providers() == ["CPUExecutionProvider"]
