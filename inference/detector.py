"""What an inference service serves: a ``Detector`` (YOLO, Haar), and the options a prediction takes."""
from __future__ import annotations

import contextlib
from typing import Any, Protocol

import numpy as np

from cnetd.common.errors import Invalid
from inference.request_limits import MAX_DETECTIONS
from inference.statistics import ModelStatistics
from inference.tensors import TensorSpec

OPTION_NAMES = ("confidence", "iou", "max_detections", "classes")


class InputsRejected(Exception):
    """The model's runtime could not run it on a client's tensors (its message says why): the client's
    error, as Triton has it, not the service's."""


class Detector(Protocol):
    name: str  # what it loaded (a file's name, a cascade)
    model_name: str  # its name in the v2 protocol
    platform: str  # v2 metadata's platform: onnxruntime_onnx, pytorch_libtorch, opencv_haar
    tensor_inputs: list[TensorSpec]  # the model's own tensors (none for a model that takes images only)
    tensor_outputs: list[TensorSpec]
    statistics: ModelStatistics  # what it has done, for v2's statistics extension

    def info(self) -> dict[str, Any]: ...

    def serving(self) -> contextlib.AbstractContextManager[None]:
        """Entered around the whole of one request: how the detector tells a request alone from several."""

    def detect(self, image: np.ndarray, options: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
        """Detections (``class``, ``class_id``, ``confidence``, ``bbox``) and inference milliseconds."""

    def infer_tensors(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        """The model's raw ``outputs`` for its own input tensors (checked against ``tensor_inputs``);
        ``InputsRejected`` when its runtime cannot run on them."""


def parse_options(raw: dict[str, Any]) -> dict[str, Any]:
    """Validated predict options; multipart and query values arrive as strings."""
    options: dict[str, Any] = {}
    for name in ("confidence", "iou"):
        if raw.get(name) is not None:
            try:
                value = float(raw[name])
            except (TypeError, ValueError):
                raise Invalid(f"{name}: expected a number between 0 and 1") from None
            if not 0.0 <= value <= 1.0:
                raise Invalid(f"{name}: expected a number between 0 and 1, got {value}")
            options[name] = value
    if raw.get("max_detections") is not None:
        try:
            options["max_detections"] = int(raw["max_detections"])
        except (TypeError, ValueError):
            raise Invalid("max_detections: expected a whole number") from None
        if not 1 <= options["max_detections"] <= MAX_DETECTIONS:
            raise Invalid(f"max_detections: expected 1 to {MAX_DETECTIONS}")
    classes = raw.get("classes")
    if isinstance(classes, str):
        classes = [part for part in classes.split(",") if part]
    if classes is not None:
        if not isinstance(classes, list):
            raise Invalid("classes: expected a list of class ids or names")
        options["classes"] = classes
    return options


