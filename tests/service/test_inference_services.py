"""The inference servers standalone (cnet-inference-yolo / -opencv): input forms, agreement, bad input."""
from __future__ import annotations

import base64
import urllib.parse
from typing import Iterator

import psutil
import pytest
import requests

from tests.support.assets import ASTRONAUT, COFFEE, YOLO_MODEL, iou, png_bomb
from tests.support.services import predict, standalone_service

MAX_IMAGE_BYTES = 2_000_000


def start_service(tmp_path_factory, *argv: str) -> Iterator[str]:
    log_dir = tmp_path_factory.mktemp("service")
    yield from standalone_service(log_dir, *argv, "--max-image-bytes", str(MAX_IMAGE_BYTES))
    assert any(log_dir.glob("*_service_*.log"))


@pytest.fixture(scope="module")
def yolo(tmp_path_factory) -> Iterator[str]:
    yield from start_service(tmp_path_factory, "cnet-inference-yolo", "--model", YOLO_MODEL)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Iterator[str]:
    yield from start_service(tmp_path_factory, "cnet-inference-opencv", "--cascade", "face")


@pytest.fixture(scope="module")
def eyes(tmp_path_factory) -> Iterator[str]:
    yield from start_service(tmp_path_factory, "cnet-inference-opencv", "--cascade", "eye")


def image_bytes() -> bytes:
    with open(ASTRONAUT, "rb") as handle:
        return handle.read()


def test_health_and_info(yolo: str, faces: str) -> None:
    assert requests.get(f"{yolo}/health").json() == {"status": "healthy", "model": "320n.onnx"}
    info = requests.get(f"{yolo}/info").json()
    assert info["model_type"] == "yolo" and info["loaded"] and info["input_size"] == [320, 320]
    assert info["names"]["1"] == "FACE_FEMALE" and info["provider"] == "CPUExecutionProvider"
    assert requests.get(f"{faces}/info").json()["model_type"] == "opencv"


def test_three_input_forms_give_the_same_detections(yolo: str) -> None:
    raw = image_bytes()
    encoded = base64.b64encode(raw).decode()
    answers = [
        requests.post(f"{yolo}/predict", json={"image": encoded, "confidence": 0.1}),
        requests.post(f"{yolo}/predict", json={"image": f"data:image/png;base64,{encoded}", "confidence": 0.1}),
        requests.post(f"{yolo}/predict", files={"image": ("a.png", raw, "image/png")}, data={"confidence": "0.1"}),
        requests.post(f"{yolo}/predict", params={"confidence": 0.1}, data=raw, headers={"Content-Type": "image/png"}),
    ]
    bodies = [answer.json() for answer in answers]
    assert all(answer.status_code == 200 for answer in answers), bodies
    assert all(body["detections"] == bodies[0]["detections"] for body in bodies)
    assert [d["class"] for d in bodies[0]["detections"]] == ["FACE_FEMALE", "FACE_MALE"]
    assert bodies[0]["count"] == 2 and bodies[0]["image_size"] == [512, 512] and bodies[0]["inference_ms"] > 0


def test_options_filter_and_limit(yolo: str) -> None:
    encoded = base64.b64encode(image_bytes()).decode()
    only_male = requests.post(f"{yolo}/predict", json={"image": encoded, "confidence": 0.1, "classes": ["FACE_MALE"]})
    assert [d["class"] for d in only_male.json()["detections"]] == ["FACE_MALE"]
    one = requests.post(f"{yolo}/predict", json={"image": encoded, "confidence": 0.1, "max_detections": 1})
    assert one.json()["count"] == 1
    # Class ids are ASCII digits: '²' is a digit to str.isdigit and no int (it was a 500), so it is a name: 422.
    for classes in ("\u00b2", ["\u00b2"]):
        unicode_digit = requests.post(f"{yolo}/predict", json={"image": encoded, "classes": classes})
        assert unicode_digit.status_code == 422 and "no class" in unicode_digit.json()["message"], unicode_digit.text


def test_two_independent_detectors_agree_on_the_face(yolo: str, faces: str, eyes: str) -> None:
    raw = image_bytes()
    yolo_face = requests.post(f"{yolo}/predict", data=raw, headers={"Content-Type": "image/png"}).json()["detections"][0]
    haar_faces = requests.post(f"{faces}/predict", data=raw, headers={"Content-Type": "image/png"}).json()["detections"]
    assert yolo_face["class"] == "FACE_FEMALE"
    assert max(iou(yolo_face["bbox"], face["bbox"]) for face in haar_faces) > 0.5
    found_eyes = requests.post(f"{eyes}/predict", data=raw, headers={"Content-Type": "image/png"}).json()["detections"]
    face = max(haar_faces, key=lambda candidate: iou(yolo_face["bbox"], candidate["bbox"]))
    assert found_eyes and all(face["bbox"][0] <= eye["bbox"][0] and eye["bbox"][2] <= face["bbox"][2]
                              and face["bbox"][1] <= eye["bbox"][1] and eye["bbox"][3] <= face["bbox"][3]
                              for eye in found_eyes)


@pytest.mark.parametrize("kwargs, status", [
    ({"json": {"image": "!!not base64!!"}}, 400),
    ({"json": {"image": base64.b64encode(b"plain text, not an image").decode()}}, 422),
    ({"json": {"picture": "x"}}, 400),
    ({"json": {"image": base64.b64encode(b"x").decode(), "confidence": 7}}, 400),
    ({"data": b"", "headers": {"Content-Type": "image/jpeg"}}, 422),
    ({"data": b"", "headers": {"Content-Type": "application/json"}}, 400),
    ({"files": {"other": ("a.txt", b"x")}}, 400),
    ({"data": b"\x89PNG" + b"0" * MAX_IMAGE_BYTES, "headers": {"Content-Type": "image/png"}}, 413),
])
def test_bad_input_is_a_4xx_and_the_service_keeps_serving(yolo: str, kwargs: dict, status: int) -> None:
    answer = requests.post(f"{yolo}/predict", **kwargs)
    assert answer.status_code == status and set(answer.json()) == {"error", "message"}, answer.text
    assert requests.get(f"{yolo}/health", timeout=5).ok


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_an_image_sent_untyped_is_recognised_by_its_bytes(yolo: str, content_type: str | None) -> None:
    with open(ASTRONAUT, "rb") as handle:
        raw = handle.read()
    typed = requests.post(f"{yolo}/predict", data=raw, headers={"Content-Type": "image/png"}, timeout=30).json()
    request = requests.Request("POST", f"{yolo}/predict", data=raw,
                               headers={"Content-Type": content_type} if content_type else {}).prepare()
    if content_type is None:
        request.headers.pop("Content-Type", None)  # as requests.post(data=bytes) sends it: none
    answer = requests.Session().send(request, timeout=30)
    assert answer.status_code == 200 and answer.json()["detections"] == typed["detections"], answer.text
    junk = requests.post(f"{yolo}/predict", data=b"not an image, not JSON", timeout=30)  # control: still a 400
    assert junk.status_code == 400 and "not valid JSON" in junk.json()["message"]


def test_an_image_without_faces(yolo: str, faces: str) -> None:
    with open(COFFEE, "rb") as handle:
        raw = handle.read()
    assert requests.post(f"{faces}/predict", data=raw, headers={"Content-Type": "image/png"}).json()["count"] == 0
    assert requests.post(f"{yolo}/predict", data=raw, headers={"Content-Type": "image/png"}).status_code == 200


def service_rss(url: str) -> int:
    """Resident bytes of the service listening at ``url`` (master and worker)."""
    port = urllib.parse.urlsplit(url).port
    pid = next(connection.pid for connection in psutil.net_connections("tcp")
               if connection.laddr.port == port and connection.status == psutil.CONN_LISTEN)
    master = psutil.Process(pid)
    return sum(process.memory_info().rss for process in [master, *master.children(recursive=True)])


@pytest.mark.parametrize("side", [30000, 65000])
def test_a_decompression_bomb_is_refused_from_its_header(yolo: str, faces: str, side: int) -> None:
    bomb = png_bomb(side, side)
    assert len(bomb) < MAX_IMAGE_BYTES  # small on the wire: only its header gives it away
    for service in (yolo, faces):
        answer = requests.post(f"{service}/predict", data=bomb, headers={"Content-Type": "image/png"}, timeout=60)
        assert answer.status_code == 413 and answer.json()["error"] == "payload_too_large", answer.text
        assert "pixels" in answer.json()["message"]
        assert service_rss(service) < 1 << 30  # decoding it would take 2.7 GB and more
        # control: the same service decodes a real image
        assert requests.post(f"{service}/predict", data=image_bytes(), headers={"Content-Type": "image/png"},
                             timeout=60).status_code == 200


@pytest.mark.parametrize("flag, lines", [((), 0), (("--access-log",), 2)])
def test_requests_are_logged_only_when_asked(tmp_path, flag: tuple[str, ...], lines: int) -> None:
    """A line per request would grow a log nothing rotates at a model's rates; /metrics counts them. The
    control (``--access-log``) shows the lines are looked for where they would be."""
    for url in standalone_service(tmp_path, "cnet-inference-opencv", "--cascade", "face", *flag):
        assert predict(url)["count"] == 1
        refused = requests.post(f"{url}/predict", data=b"not an image", headers={"Content-Type": "image/png"})
        assert refused.status_code == 422
    log = next(tmp_path.glob("opencv_service_*.log")).read_text()
    assert "loaded" in log  # the service's own lines are there either way
    assert len([line for line in log.splitlines() if '"POST /predict HTTP/1.1"' in line]) == lines
