"""How a model's source is shown to readers of its record and in logs: a URL's query (which may sign it) and
password hidden, every other form as given."""
from __future__ import annotations

import pytest

from cnetd.common.model_sources import parse_source

SHA = "ab" * 32


@pytest.mark.parametrize(("model_path", "shown"), [
    (f"http://10.0.0.2:8080/api/artifacts/{SHA}?expires=1796552898&signature=1d0bb6",
     f"http://10.0.0.2:8080/api/artifacts/{SHA}?********"),
    ("https://bucket.s3.example/yolo.onnx?X-Amz-Credential=AK%2F&X-Amz-Signature=9f",
     "https://bucket.s3.example/yolo.onnx?********"),
    ("https://user:pass@models.example/yolo.onnx", "https://user:********@models.example/yolo.onnx"),
    ("https://models.example/yolo.onnx", "https://models.example/yolo.onnx"),  # the control: nothing to hide
    ("/srv/models/yolo.onnx?x=1", "/srv/models/yolo.onnx?x=1"),  # a file's name is its name
    ("data://0123abcd/yolo.onnx", "data://0123abcd/yolo.onnx"),
    ("s3://models/yolo.onnx", "s3://models/yolo.onnx"),
])
def test_a_source_is_shown_without_what_lets_anyone_fetch_it(model_path: str, shown: str) -> None:
    assert parse_source(model_path).shown == shown
