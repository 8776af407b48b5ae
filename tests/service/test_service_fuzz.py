"""Property-based fuzzing of the services' own request parsing (hypothesis): /predict bodies of every
form on the YOLO service, v2 infer requests (names, datatypes, shapes, sizes, outputs the model does not
have), S3 query strings, keys and ranges on the gateway. No answer is a 5xx, errors keep their documented
shape, and the service stays healthy."""
from __future__ import annotations

import base64
import json
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.services import standalone_service

EXAMPLES = int(os.environ.get("CNET_FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
with open(ASTRONAUT, "rb") as _handle:
    PNG = _handle.read()

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)
options = st.fixed_dictionaries({}, optional={
    "confidence": json_values | st.floats(0, 1), "iou": json_values, "max_detections": json_values,
    "classes": json_values | st.lists(st.integers(-2, 30) | st.text(max_size=12), max_size=4)})
images = st.sampled_from([PNG, PNG[:200], b"", b"\x89PNG\r\n\x1a\n"]) | st.binary(max_size=256)
json_bodies = st.one_of(
    json_values.map(lambda value: json.dumps(value).encode()),
    st.builds(lambda image, extra: json.dumps({"image": base64.b64encode(image).decode(), **extra}).encode(),
              images, options),
    st.builds(lambda text, extra: json.dumps({"image": text, **extra}).encode(), st.text(max_size=64), options),
    st.binary(max_size=128))


@pytest.fixture(scope="module")
def yolo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from standalone_service(tmp_path_factory.mktemp("yolo"), "cnet-inference-yolo", "--model", YOLO_MODEL,
                                  "--max-image-bytes", "2000000", "--name", "faces")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("bucket")
    for name in ("a.txt", "dir/b.bin", "dir/sub/c.json", "ü ñ.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(os.urandom(100))
    yield from standalone_service(tmp_path_factory.mktemp("gateway"), "cnet-gateway-data", "--base-path", str(root),
                           "--bucket", "fuzz")


def assert_json_error_or_detections(answer: requests.Response) -> None:
    assert answer.status_code < 500, answer.text
    body = answer.json()
    if answer.status_code == 200:
        assert isinstance(body["detections"], list) and body["count"] == len(body["detections"])
    else:
        assert set(body) >= {"error", "message"}, body


@FUZZ
@given(body=json_bodies, query=options)
def test_predict_json_and_raw_bodies(yolo: str, body: bytes, query: dict[str, Any]) -> None:
    params = {name: str(value) for name, value in query.items()}
    for content_type in ("application/json", "image/png", "application/octet-stream", "text/plain"):
        assert_json_error_or_detections(requests.post(f"{yolo}/predict", data=body, params=params, timeout=30,
                                                      headers={"Content-Type": content_type}))


@FUZZ
@given(image=images, part=st.sampled_from(["image", "file", "other", ""]),
       fields=st.dictionaries(st.sampled_from(["confidence", "iou", "max_detections", "classes", "x"]),
                              st.text(max_size=12), max_size=3))
def test_predict_multipart_bodies(yolo: str, image: bytes, part: str, fields: dict[str, str]) -> None:
    answer = requests.post(f"{yolo}/predict", files={part: ("i.png", image, "image/png")}, data=fields, timeout=30)
    assert_json_error_or_detections(answer)


V2_DATATYPES = ["FP32", "FP16", "FP64", "INT64", "INT32", "UINT8", "BOOL", "BYTES"]
shapes = st.one_of(st.lists(st.integers(0, 40), max_size=5),
                   st.tuples(st.integers(0, 2), st.just(3), st.integers(1, 48), st.integers(1, 48)).map(list))


@st.composite
def v2_tensors(draw: st.DrawFn) -> dict[str, Any]:
    """One input as a client might send it: the model's name or another, any datatype and shape, data that
    fill the shape or do not."""
    shape = draw(shapes)
    size = 1
    for dimension in shape:
        size *= dimension
    count = draw(st.sampled_from([size, size, max(0, size - 1), size + 1])) if size <= 20_000 else 3
    datatype = draw(st.sampled_from(V2_DATATYPES) | st.text(max_size=6))
    element = st.text(max_size=4) if datatype == "BYTES" else st.floats(-2, 2, allow_nan=False, width=32)
    data = draw(st.lists(element, min_size=count, max_size=count)) if count <= 64 else [0.5] * count
    return {"name": draw(st.sampled_from(["images", "images", "image", "input", ""])), "datatype": datatype,
            "shape": shape, "data": data}


@FUZZ
@given(inputs=st.lists(v2_tensors(), min_size=1, max_size=2),
       outputs=st.none() | st.lists(st.sampled_from(["output0", "boxes", "nothing"]).map(lambda name: {"name": name}),
                                    max_size=2))
def test_v2_infer_requests(yolo: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]] | None) -> None:
    body = {"inputs": inputs, **({"outputs": outputs} if outputs is not None else {})}
    answer = requests.post(f"{yolo}/v2/models/faces/infer", json=body, timeout=60)
    assert answer.status_code < 500, answer.text
    if answer.status_code != 200:
        assert set(answer.json()) >= {"error", "message"}, answer.text


def test_a_tensor_the_model_declares_but_cannot_run_is_a_400_naming_the_declared_shape(yolo: str) -> None:
    """[1, 3, 2, 2] is within [-1, 3, -1, -1], but onnxruntime fails inside the run: the client's error."""
    tiny = {"name": "images", "datatype": "FP32", "shape": [1, 3, 2, 2], "data": [0.5] * 12}
    answer = requests.post(f"{yolo}/v2/models/faces/infer", json={"inputs": [tiny]}, timeout=60)
    assert answer.status_code == 400, answer.text
    assert "[1, 3, 2, 2]" in answer.json()["message"] and "[-1, 3, -1, -1]" in answer.json()["message"]
    whole = {**tiny, "shape": [1, 3, 64, 64], "data": [0.5] * (3 * 64 * 64)}  # control: a size it can run
    assert requests.post(f"{yolo}/v2/models/faces/infer", json={"inputs": [whole]}, timeout=60).status_code == 200


def test_yolo_service_is_healthy_after_fuzzing(yolo: str) -> None:
    assert requests.get(f"{yolo}/health", timeout=5).json()["status"] == "healthy"
    answer = requests.post(f"{yolo}/predict", data=PNG, headers={"Content-Type": "image/png"}, timeout=30)
    assert [detection["class"] for detection in answer.json()["detections"]] == ["FACE_FEMALE"]


s3_text = st.text(max_size=24) | st.sampled_from(["", "dir/", "/", "..", "../", "%", "\x00", "dir/sub/"])
list_queries = st.fixed_dictionaries({}, optional={
    "list-type": st.sampled_from(["2", "1", "x", ""]), "prefix": s3_text, "delimiter": s3_text,
    "max-keys": st.integers(-5, 2000).map(str) | s3_text, "continuation-token": s3_text, "start-after": s3_text,
    "encoding-type": st.sampled_from(["url", "x"])})


def assert_s3_answer(answer: requests.Response) -> None:
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400 and answer.request.method != "HEAD":
        assert ElementTree.fromstring(answer.content).find("Code") is not None, answer.text


@FUZZ
@given(bucket=st.sampled_from(["fuzz", "other"]) | st.text(max_size=8), query=list_queries)
def test_list_objects_queries(gateway: str, bucket: str, query: dict[str, str]) -> None:
    answer = requests.get(f"{gateway}/s3/{requests.utils.quote(bucket, safe='')}", params=query, timeout=30)
    assert_s3_answer(answer)


@FUZZ
@given(key=st.sampled_from(["a.txt", "dir/b.bin", "ü ñ.txt", "missing"]) | s3_text,
       range_header=st.none() | st.sampled_from(["bytes=0-9", "bytes=-5", "bytes=90-", "bytes=200-300", "bytes=5-1"])
       | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=16).map(lambda text: f"bytes={text}"),
       method=st.sampled_from(["GET", "HEAD"]))
def test_object_keys_and_ranges(gateway: str, key: str, range_header: str | None, method: str) -> None:
    headers = {"Range": range_header} if range_header else {}
    answer = requests.request(method, f"{gateway}/s3/fuzz/{requests.utils.quote(key)}", headers=headers, timeout=30)
    assert_s3_answer(answer)


def test_gateway_is_healthy_after_fuzzing(gateway: str, tmp_path: Path) -> None:
    assert requests.get(f"{gateway}/health", timeout=5).ok
    listed = ElementTree.fromstring(requests.get(f"{gateway}/s3/fuzz", params={"list-type": "2"}, timeout=5).content)
    assert len([element for element in listed.iter() if element.tag.endswith("Key")]) == 4
