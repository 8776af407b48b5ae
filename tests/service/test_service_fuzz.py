"""Property-based fuzzing of the services' own request parsing (hypothesis): /predict bodies of every
form on the YOLO service, v2 infer requests (names, datatypes, shapes, sizes, outputs the model does not
have), S3 query strings, keys and ranges on the gateway; on a gateway with keys, forged signatures of every
form, and requests boto3 signs with any key, range, condition or listing. No answer is a 5xx, errors keep their
documented shape, and the service stays healthy."""
from __future__ import annotations

import base64
import http.client
import json
import os
import urllib.parse
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any, Iterator

import botocore.exceptions
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.services import GATEWAY_ACCESS_KEY, s3_client, signed_gateway, standalone_service

EXAMPLES = int(os.environ.get("CNET_FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
FUZZ_CHEAP = settings(FUZZ, max_examples=10 * EXAMPLES)  # for requests refused in a millisecond or two
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


BUCKET_FILES = ("a.txt", "dir/b.bin", "dir/sub/c.json", "ü ñ.txt")  # 100 bytes each


def bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bucket")
    for name in BUCKET_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(os.urandom(100))
    return root


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Without keys: anyone on loopback may read."""
    yield from standalone_service(tmp_path_factory.mktemp("gateway"), "cnet-gateway-data", "--base-path",
                                  str(bucket(tmp_path_factory)), "--bucket", "fuzz")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """With keys: every request signed (SigV4 header or query, or the V2 query)."""
    yield from signed_gateway(bucket(tmp_path_factory), tmp_path_factory.mktemp("signed"), "fuzz")


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
    assert_s3_reply(answer.status_code, None if answer.request.method == "HEAD" else answer.content)


def assert_s3_reply(status: int, body: bytes | None) -> None:
    """No 5xx, and an error (with a body: not HEAD's) in S3's XML."""
    assert status < 500, body
    if status >= 400 and body is not None:
        assert ElementTree.fromstring(body).find("Code") is not None, body


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
    assert len([element for element in listed.iter() if element.tag.endswith("Key")]) == len(BUCKET_FILES)


# What a client that does not hold the keys can send: signatures of every form, their parts right or wrong (header
# values: any character but controls, with no space before or after, which no HTTP client sends).
def header_text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=max_size).map(str.strip)


amz_dates = st.sampled_from(["20261206T120000Z", "20261399T999999Z", "", "٢٠٢٦١٢٠٦T120000Z"]) | header_text(20)
scopes = st.builds("/".join, st.tuples(st.sampled_from(["20261206", "2026"]) | header_text(10),
                                       st.sampled_from(["us-east-1", "eu-west-1", ""]), st.sampled_from(["s3", ""]),
                                       st.sampled_from(["aws4_request", "x"])))
access_keys = st.sampled_from([GATEWAY_ACCESS_KEY, "AKOTHER", ""]) | header_text(12)
signed_headers = st.sampled_from(["host;x-amz-date", "host;x-amz-content-sha256;x-amz-date", "", ";"]) \
    | header_text(20)
signatures = st.text("0123456789abcdef", min_size=64, max_size=64) | header_text(70)
# Most of them well formed, so that what is checked after the form (the date, the key, the scope) is reached too.
authorizations = st.builds("AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}".format,
                           st.sampled_from([GATEWAY_ACCESS_KEY, "AKOTHER"]), scopes,
                           st.sampled_from(["host;x-amz-date", "host;x-amz-content-sha256;x-amz-date"]),
                           st.text("0123456789abcdef", min_size=64, max_size=64)) \
    | st.builds("AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}".format, access_keys, scopes,
                signed_headers, signatures) \
    | st.sampled_from(["AWS4-HMAC-SHA256", f"AWS {GATEWAY_ACCESS_KEY}:c2ln", "Bearer x"]) | header_text(80)
presigned_v4 = st.fixed_dictionaries({
    "X-Amz-Algorithm": st.sampled_from(["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256", ""]) | st.text(max_size=10),
    "X-Amz-Credential": st.builds("{}/{}".format, access_keys, scopes), "X-Amz-Date": amz_dates,
    "X-Amz-Signature": signatures}, optional={
    "X-Amz-Expires": st.integers(-10, 10**12).map(str) | st.text(max_size=8), "X-Amz-SignedHeaders": signed_headers})
presigned_v2 = st.fixed_dictionaries({"AWSAccessKeyId": access_keys, "Signature": st.text(max_size=40)},
                                     optional={"Expires": st.integers(-10, 10**12).map(str) | st.text(max_size=12)})


@FUZZ_CHEAP
@given(path=st.sampled_from(["fuzz", "fuzz/a.txt", "fuzz/dir/", "", "other/x"]) | s3_text,
       authorization=st.none() | authorizations, query=st.none() | presigned_v4 | presigned_v2,
       headers=st.fixed_dictionaries({"x-amz-date": amz_dates}, optional={
           "x-amz-content-sha256": header_text(70), "Range": st.sampled_from(["bytes=0-9", "bytes=x"])}),
       method=st.sampled_from(["GET", "HEAD"]))
def test_forged_signatures_are_refused(signed: str, path: str, authorization: str | None,
                                       query: dict[str, str] | None, headers: dict[str, str], method: str) -> None:
    """Nothing unsigned, or signed with other keys, is let in: a 4xx in S3's XML (not a 5xx), whatever its parts."""
    if authorization is not None:
        headers = {**headers, "Authorization": authorization}
    answer = requests.request(method, f"{signed}/{requests.utils.quote(path)}", params=query, timeout=30,
                              headers={name: value.encode() for name, value in headers.items()})
    assert_s3_answer(answer)
    assert answer.status_code >= 400, answer.text


optional_text = st.none() | s3_text


def sent_as_is(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET ``url`` with its path exactly as given (requests would take out a key's ``.`` and ``..`` segments,
    which a presigned URL's signature covers, as S3 keys may be named so)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}", headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@FUZZ
@given(key=st.sampled_from(list(BUCKET_FILES)) | st.text(min_size=1, max_size=24),
       range_header=st.none() | st.sampled_from(["bytes=0-9", "bytes=-5", "bytes=90-", "bytes=200-300"])
       | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=16).map(lambda text: f"bytes={text}"),
       if_match=st.none() | st.sampled_from(["*", '"0"']) | header_text(40),
       if_none_match=st.none() | st.sampled_from(["*", '"0"']), expires_in=st.integers(1, 7 * 24 * 3600),
       operation=st.sampled_from(["get_object", "head_object", "presigned"]))
def test_signed_object_reads(signed: str, key: str, range_header: str | None, if_match: str | None,
                             if_none_match: str | None, expires_in: int, operation: str) -> None:
    """Requests signed with the keys (by boto3, as a client makes them) with any key, range and condition: no 5xx,
    and the gateway's own files read back."""
    s3 = s3_client(signed, retries=1)
    if operation == "presigned":
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "fuzz", "Key": key}, ExpiresIn=expires_in)
        status, body = sent_as_is(url, {"Range": range_header} if range_header else {})
        assert_s3_reply(status, body)
        assert status in ((200, 206, 416) if key in BUCKET_FILES else (400, 404)), body
        return
    params = {name: value for name, value in (("Range", range_header), ("IfMatch", if_match),
                                              ("IfNoneMatch", if_none_match)) if value is not None}
    try:
        answer = getattr(s3, operation)(Bucket="fuzz", Key=key, **params)["ResponseMetadata"]
    except botocore.exceptions.ClientError as error:
        answer = error.response["ResponseMetadata"]
    assert answer["HTTPStatusCode"] < 500, answer
    if key in BUCKET_FILES and not params:
        assert answer["HTTPStatusCode"] == 200, answer


@FUZZ
@given(version=st.sampled_from([1, 2]), prefix=optional_text, delimiter=optional_text,
       max_keys=st.none() | st.integers(-5, 2000), start=optional_text, url_encoded=st.booleans())
def test_signed_listings(signed: str, version: int, prefix: str | None, delimiter: str | None, max_keys: int | None,
                         start: str | None, url_encoded: bool) -> None:
    """ListObjects and ListObjectsV2 signed with the keys, any prefix, delimiter, page size and start: no 5xx, and
    nothing boto3 cannot read."""
    params = {name: value for name, value in (("Prefix", prefix), ("Delimiter", delimiter), ("MaxKeys", max_keys),
                                              ("Marker" if version == 1 else "StartAfter", start)) if value is not None}
    if url_encoded:
        params["EncodingType"] = "url"
    s3 = s3_client(signed, retries=1)
    try:
        listed = (s3.list_objects if version == 1 else s3.list_objects_v2)(Bucket="fuzz", **params)
    except botocore.exceptions.ClientError as error:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] < 500, error.response
        return
    if not params:
        assert sorted(item["Key"] for item in listed["Contents"]) == sorted(BUCKET_FILES)


def test_signed_gateway_is_healthy_after_fuzzing(signed: str) -> None:
    listed = s3_client(signed).list_objects_v2(Bucket="fuzz")
    assert sorted(item["Key"] for item in listed["Contents"]) == sorted(BUCKET_FILES)
