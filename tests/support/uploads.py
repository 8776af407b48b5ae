"""The YOLO model stored at a node as data (a ``data://`` model source), as the model tests upload it."""
from __future__ import annotations

from typing import Any

from tests.support.assets import YOLO_MODEL
from tests.support.nodes import Node


def upload_model(node: Node, content: bytes | None = None) -> dict[str, Any]:
    """Data of one file, faces.onnx (the YOLO model unless ``content`` says otherwise), stored at ``node``: its
    data record."""
    with open(YOLO_MODEL, "rb") as model:
        file = model if content is None else content
        answer = node.api("POST", "/api/workloads", files=[("file", ("faces.onnx", file))])
    assert answer.status_code == 201, answer.text
    return answer.json()
