"""OpenCV Haar cascade detector: faces; eyes and smiles looked for inside detected faces."""
from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

import cv2
import numpy as np

from inference.cascades import CASCADE_FILES
from inference.statistics import ModelStatistics, waited_for_cores
from inference.tensors import TensorSpec

# detectMultiScale parameters per feature: (scaleFactor, minNeighbors)
_PARAMETERS = {"face": (1.1, 5), "eye": (1.1, 10), "smile": (1.7, 20)}


def _cascade(feature: str) -> cv2.CascadeClassifier:
    path = os.path.join(cv2.data.haarcascades, CASCADE_FILES[feature])
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load {path}")
    return cascade


class HaarDetector:
    """Detects ``feature`` (face, eye or smile). Each request builds its own classifiers' work on a shared
    grey image; CascadeClassifier.detectMultiScale is safe to call from several threads, and at most
    ``cores`` of them detect at once."""

    platform = "opencv_haar"
    tensor_inputs: list[TensorSpec] = []  # it takes images only (v2: input "image")
    tensor_outputs: list[TensorSpec] = []

    def __init__(self, feature: str, cores: int = 1, model_name: str | None = None) -> None:
        if feature not in CASCADE_FILES:
            raise ValueError(f"cascade_type must be one of {', '.join(CASCADE_FILES)}, got {feature!r}")
        self.feature = feature
        self.name = f"haar-{feature}"
        self.model_name = model_name or self.name
        self._faces = _cascade("face")
        self._inner = None if feature == "face" else _cascade(feature)
        self._cores = threading.BoundedSemaphore(max(1, cores))
        self.statistics = ModelStatistics()

    def serving(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # each request detects on its own thread, one core each

    def info(self) -> dict[str, Any]:
        return {"model_type": "opencv", "loaded": True, "model": self.name, "cascade_type": self.feature,
                "opencv": cv2.__version__}

    def infer_tensors(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        raise NotImplementedError("a Haar cascade has no tensors of its own")  # kserve asks only of tensor models

    def detect(self, image: np.ndarray, options: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
        with self.statistics.execution(1):
            waiting_since = time.perf_counter_ns()
            with self._cores:
                waited_for_cores(time.perf_counter_ns() - waiting_since)
                return self._detect(image, options)

    def _detect(self, image: np.ndarray, options: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
        started = time.perf_counter()
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))  # the cascade's own input: its compute
        scale, neighbours = _PARAMETERS["face"]
        faces = self._faces.detectMultiScale(grey, scaleFactor=scale, minNeighbors=neighbours, minSize=(24, 24))
        boxes = [tuple(int(v) for v in face) for face in faces]
        if self._inner is not None:
            scale, neighbours = _PARAMETERS[self.feature]
            inner_boxes = []
            for x, y, w, h in boxes:
                found = self._inner.detectMultiScale(grey[y:y + h, x:x + w], scaleFactor=scale, minNeighbors=neighbours)
                inner_boxes += [(x + int(fx), y + int(fy), int(fw), int(fh)) for fx, fy, fw, fh in found]
            boxes = inner_boxes
        limit = options.get("max_detections", len(boxes))
        detections = [{"class": self.feature, "class_id": 0, "confidence": 1.0,
                       "bbox": [float(x), float(y), float(x + w), float(y + h)]} for x, y, w, h in boxes[:limit]]
        return detections, (time.perf_counter() - started) * 1000
