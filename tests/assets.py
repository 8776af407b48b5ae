"""Test assets from PyPI packages: nudenet's real YOLOv8n ONNX model and scikit-image's sample images."""
from __future__ import annotations

import os

import nudenet
import skimage

YOLO_MODEL = os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")
ASTRONAUT = os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png")
COFFEE = os.path.join(os.path.dirname(skimage.__file__), "data", "coffee.png")


def iou(first: list[float], second: list[float]) -> float:
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    overlap = width * height
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return overlap / (area(first) + area(second) - overlap)
