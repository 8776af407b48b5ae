"""Stream workloads on a real node: a real RTSP camera (GStreamer's server, an H.264 clip of known pictures) and
an HTTP MJPEG one, an OpenCV face detector, events over Server-Sent Events, a webhook and a real mosquitto broker,
a camera that goes away and comes back, motion gating, bad input."""
from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy
import pytest
import requests

from tests.support.assets import ASTRONAUT, COFFEE, iou
from tests.support.nodes import VENV_BIN, Node, wait_for
from tests.support.streams import (FRAME_SIZE, RtspServer, decoded_frames, make_clip, mjpeg_server,
                                   mosquitto_with_subscriber, read_events, rtsp_server, webhook_receiver)

TOKEN = "stream-test-token"
NODE = {"token": TOKEN, "health": {"interval_s": 0.5}}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STREAM = {"cpu": 1, "memory": 256 * 2**20}
BLOCK_S = 1.5  # the clip: face, no face, face, no face, each this long
DETECTOR = "faces"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    folder.chmod(0o755)  # the streams run as nobody
    return make_clip(folder / "clip.mp4", [ASTRONAUT, COFFEE, ASTRONAUT, COFFEE], BLOCK_S)


@pytest.fixture(scope="module")
def detector(node: Node) -> str:
    answer = node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv", id=DETECTOR)
    assert answer.status_code == 201, answer.text
    return DETECTOR


@contextlib.contextmanager
def stream(node: Node, workload_id: str, **config: Any) -> Iterator[dict[str, Any]]:
    answer = node.submit({"detector": DETECTOR, **config}, STREAM, workload_type="stream", id=workload_id)
    assert answer.status_code == 201, answer.text
    try:
        yield answer.json()
    finally:
        node.api("DELETE", f"/api/workloads/{workload_id}")


def status(node: Node, workload_id: str) -> dict[str, Any]:
    return node.workload(workload_id).get("stream") or {}


def status_once(node: Node, workload_id: str, ready: Callable[[dict[str, Any]], bool],
                timeout_s: float = 30) -> dict[str, Any]:
    """The stream's status once ``ready(status)`` holds (it is written each second), failing with the last one."""
    def when_ready() -> dict[str, Any] | None:
        now = status(node, workload_id)
        return now if ready(now) else None
    return wait_for(when_ready, timeout_s=timeout_s, diagnose=lambda: status(node, workload_id))


def jpeg(path: str) -> bytes:
    return cv2.imencode(".jpg", cv2.resize(cv2.imread(path), FRAME_SIZE))[1].tobytes()


def in_a_face_block(position_ms: float) -> bool:
    """Within a face block of the clip, give or take a frame or two at its edges."""
    margin_ms = 250
    return any(start - margin_ms <= position_ms < start + BLOCK_S * 1000 + margin_ms for start in (0, 2 * BLOCK_S * 1000))


def test_rtsp_events_name_the_face_in_its_frames_and_no_others(node: Node, detector: str, clip: Path) -> None:
    face_frame = decoded_frames(clip)[5]  # the clip's frames decoded here; /predict on one with the face
    expected = node.api("POST", f"/api/workloads/{detector}/predict", data=cv2.imencode(".png", face_frame)[1].tobytes(),
                        headers={"Content-Type": "image/png"}).json()["detections"]
    assert [item["class"] for item in expected] == ["face"]
    with rtsp_server(clip) as camera, stream(node, "cam-rtsp", source=camera.url, fps=5, snapshot=True) as record:
        assert record["status"] == "running" and record["config"]["detector_signature"] == "********"
        answer, events = read_events(f"{node.url}/api/workloads/cam-rtsp/events", 8, timeout_s=40,
                                     headers={**AUTH, "Accept": "application/json"})  # SSE whatever Accept says
        assert answer.headers["Content-Type"].startswith("text/event-stream") and len(events) == 8
        for event in events:
            assert [item["class"] for item in event["detections"]] == ["face"], event
            assert iou(event["detections"][0]["bbox"], expected[0]["bbox"]) >= 0.9, (event, expected)
            assert in_a_face_block(event["position_ms"]), event
            assert event["latency_ms"] > 0 and event["snapshot"].startswith("snapshots/")
        # The frames without a face were sampled and sent too, and made no event (the control).
        seen = wait_for(lambda: (lambda now: now if now.get("frames_sent", 0) >= now.get("events", 0) + 5 else None)(
            status(node, "cam-rtsp")), timeout_s=30)
        assert seen["frames_sampled"] >= seen["frames_sent"] and seen["frames_read"] > seen["frames_sampled"]
        snapshot = node.api("GET", "/api/workloads/cam-rtsp/snapshots/latest")
        assert snapshot.headers["Content-Type"] == "image/jpeg"
        assert cv2.imdecode(numpy.frombuffer(snapshot.content, "uint8"), cv2.IMREAD_COLOR).shape == (480, 640, 3)
        _, replay = read_events(f"{node.url}/api/workloads/cam-rtsp/events", 100, timeout_s=10, headers=AUTH,
                                params={"last": 3, "follow": "false"})
        assert len(replay) == 3 and [event["seq"] for event in replay] == sorted(event["seq"] for event in replay)
        _, resumed = read_events(f"{node.url}/api/workloads/cam-rtsp/events", 100, timeout_s=10,
                                 headers={**AUTH, "Last-Event-ID": str(replay[0]["seq"])}, params={"follow": "false"})
        assert [event["seq"] for event in resumed][:2] == [event["seq"] for event in replay[1:]]
        printed = subprocess.run([str(VENV_BIN / "cnet"), "--addr", node.url, "--token", TOKEN, "events", "cam-rtsp",
                                  "--last", "2", "--json"], capture_output=True, text=True, timeout=30)
        printed_seqs = [json.loads(line)["seq"] for line in printed.stdout.splitlines()]  # events go on meanwhile
        assert len(printed_seqs) == 2 and printed_seqs[1] == printed_seqs[0] + 1 and printed_seqs[0] >= replay[1]["seq"]
        follower = subprocess.Popen([str(VENV_BIN / "cnet"), "--addr", node.url, "--token", TOKEN, "events", "cam-rtsp",
                                     "-f", "--last", "0", "--json"], stdout=subprocess.PIPE, text=True)
        try:  # -f prints what comes after it started
            followed = [json.loads(follower.stdout.readline()) for _ in range(2)]
            assert followed[0]["seq"] > printed_seqs[-1] and followed[1]["seq"] == followed[0]["seq"] + 1
        finally:
            follower.kill()
            follower.wait()
        metrics = node.api("GET", "/metrics").text
        assert 'cnet_stream_frames_total{outcome="sent",workload="cam-rtsp"}' in metrics
        assert 'cnet_stream_event_latency_seconds_count{workload="cam-rtsp"}' in metrics
    assert requests.get(f"{node.url}/api/workloads/{detector}/events").status_code == 401  # reads need the token


def test_a_camera_that_goes_away_is_reconnected_and_its_events_resume(node: Node, detector: str, clip: Path) -> None:
    camera = RtspServer(clip).start()
    try:
        with stream(node, "cam-flaky", source=camera.url, fps=5):
            _, first = read_events(f"{node.url}/api/workloads/cam-flaky/events", 1, timeout_s=30, headers=AUTH)
            assert first
            camera.stop()
            down = status_once(node, "cam-flaky", lambda now: now.get("state") == "reconnecting"
                               and "cannot open" in (now.get("last_error") or ""))
            time.sleep(3)  # it keeps trying, with backoff, and never crash-loops
            record = node.workload("cam-flaky")
            assert record["status"] == "running" and record["restarts"] == 0
            assert record["stream"]["reconnects"] > down["reconnects"] - 1
            camera.start()  # the same address again
            _, resumed = read_events(f"{node.url}/api/workloads/cam-flaky/events", 1, timeout_s=40, headers=AUTH)
            assert resumed and resumed[0]["seq"] > first[-1]["seq"]
            assert status(node, "cam-flaky")["state"] in ("running", "reconnecting")  # the clip ends and restarts
    finally:
        camera.stop()


def test_mjpeg_camera_motion_gating_classes_webhook_and_mqtt(node: Node, detector: str) -> None:
    still = [jpeg(ASTRONAUT)]  # a camera that sees the same picture: nothing moves
    with mjpeg_server(still) as camera, webhook_receiver() as (hook, posted), \
            mosquitto_with_subscriber("cnet/cam") as (broker_port, messages):
        with stream(node, "cam-gated", source=camera, fps=5, motion={"threshold": 0.02}), \
                stream(node, "cam-cats", source=camera, fps=5, classes=["cat"]), \
                stream(node, "cam-open", source=camera + "?user=admin&pwd=camera-secret", fps=5,
                       webhook=hook.replace("://", "://cnet:hook-secret@") + "/T01/B02/path-secret?sig=query-secret",
                       mqtt={"host": "127.0.0.1", "port": broker_port, "topic": "cnet/cam"}):
            wait_for(lambda: len(posted) >= 3 and len(messages) >= 3, timeout_s=40,
                     diagnose=lambda: status(node, "cam-open"))
            gated = status_once(node, "cam-gated", lambda now: now.get("frames_skipped_motion", 0) >= 5)
            assert gated["events"] == 1 and gated["frames_sent"] == 1  # the first frame only: nothing moved since
            assert status(node, "cam-open")["events"] >= 3  # the control: the same camera, no gating
            # The webhook's password, path and query are used (the posts above) and shown to no reader: a chat's
            # hook has its token in the path. A reader sees where it posts. A camera's query may hold its password.
            origin = hook.removesuffix("/hook").replace("://", "://cnet:********@")
            assert node.workload("cam-open")["config"]["webhook"] == f"{origin}/********"
            assert node.workload("cam-open")["config"]["source"] == f"{camera}?********"  # a camera's, likewise
            listed = node.api("GET", "/api/workloads").text
            secrets = ("hook-secret", "path-secret", "query-secret", "camera-secret")
            assert not any(secret in listed for secret in secrets)
            # The detector answers only the classes asked for: no cat, no event. Its counts are in the status the
            # stream writes each second, which can lag its start by more than the others took (a CI run: 0 read).
            cats = status_once(node, "cam-cats", lambda now: now.get("frames_sent", 0) >= 3)
            assert cats["events"] == 0, cats
            for body in (posted[0], json.loads(messages[0])):
                assert body["stream"] == "cam-open" and body["detections"][0]["class"] == "face"
            # the counts are in the status the stream writes each second: they follow what was received
            counts = status_once(node, "cam-open", lambda now: now["publishers"]["webhook"]["sent"] >= 3
                                 and now["publishers"]["mqtt"]["sent"] >= 3, timeout_s=10)["publishers"]
            assert counts["webhook"]["sent"] >= 3 and counts["mqtt"]["sent"] >= 3


def test_followers_are_bounded_and_answered_503(node: Node, detector: str) -> None:
    with mjpeg_server([jpeg(ASTRONAUT)]) as camera, stream(node, "cam-followed", source=camera, fps=2):
        url = f"{node.url}/api/workloads/cam-followed/events"
        # Earlier tests' followers have gone (a follower whose client closed its end is let go within a poll).
        wait_for(lambda: requests.get(url, headers=AUTH, params={"follow": "false"}, timeout=10).status_code == 200)
        held = [requests.get(url, headers=AUTH, stream=True, timeout=10) for _ in range(4)]
        try:
            assert all(answer.status_code == 200 for answer in held)
            refused = requests.get(url, headers=AUTH, timeout=10)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
            assert "followers" in refused.json()["message"]
            assert node.api("GET", "/api/health").status_code == 200  # the API still answers others
        finally:
            for answer in held:
                answer.close()
        wait_for(lambda: requests.get(url, headers=AUTH, params={"follow": "false"}, timeout=10).status_code == 200,
                 timeout_s=20)


def test_bad_streams_are_refused_and_leave_nothing(node: Node, detector: str, clip: Path, open_dir: Path) -> None:
    before = node.resources()
    garbage = open_dir / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 1000)
    cases = [({"source": "rtsp://127.0.0.1:1/none"}, 422, "cannot open"),
             ({"source": str(garbage)}, 422, "cannot open"),
             ({"source": str(open_dir / "absent.mp4")}, 422, "not a file"),
             ({"source": "clip.mp4"}, 400, "absolute path"),
             ({"source": str(clip), "detector": "nobody-knows"}, 422, "no model service"),
             ({"source": str(clip), "detector": ""}, 422, "no model service"),  # no ledger key: it was a 500
             ({"source": str(clip), "webhook": "ftp://127.0.0.1/hook"}, 400, "http"),
             ({"source": str(clip), "fps": 0}, 400, "fps"),
             ({"source": str(clip), "mqtt": {"host": "127.0.0.1", "topic": "a/#"}}, 400, "wildcards")]
    for config, expected, words in cases:
        answer = node.submit({"detector": DETECTOR, **config}, STREAM, workload_type="stream")
        assert answer.status_code == expected and words in answer.json()["message"], (config, answer.text)
    process = node.submit({"command": "sleep", "args": ["60"]}, {"cpu": 0.1}, id="not-a-detector")
    assert node.submit({"source": str(clip), "detector": "not-a-detector"}, STREAM,
                       workload_type="stream").json()["error"] == "unprocessable"
    node.api("DELETE", "/api/workloads/not-a-detector")
    # Forwarded without the detector's address and signature, which the node it was submitted to adds: 422, as the
    # schema lets it be sent (the fuzz found it a 400).
    forwarded = node.api("POST", "/api/workloads", json={
        "type": "stream", "config": {"source": str(clip), "detector": DETECTOR}, "requirements": STREAM,
        "delegation": {"visited": ["elsewhere"], "attempt": "a1", "budget_s": 5}})
    assert forwarded.status_code == 422 and "config.detector_api" in forwarded.json()["message"], forwarded.text
    inline = {"type": "opencv", "config": {"cascade_type": "face"}}  # and with its detector given whole (was 400)
    forwarded = node.api("POST", "/api/workloads", json={
        "type": "stream", "config": {"source": str(clip), "detector": inline}, "requirements": STREAM,
        "delegation": {"visited": ["elsewhere"], "attempt": "a2", "budget_s": 5}})
    assert forwarded.status_code == 422 and "given whole" in forwarded.json()["message"], forwarded.text
    assert process.status_code == 201 and node.resources() == before
    # A video damaged in its middle and cut off at its end (uploaded: a data:// source) plays through its damage,
    # then ends; never a crash.
    whole = bytearray(make_clip(open_dir / "whole.mp4", [ASTRONAUT], 3.0).read_bytes())
    whole[len(whole) // 2:len(whole) // 2 + 5000] = bytes(range(256)) * 19 + bytes(136)
    uploaded = node.api("POST", "/api/workloads", data={"type": "data", "name": "damaged"},
                        files=[("file", ("damaged.mp4", bytes(whole[:len(whole) * 5 // 6]), "video/mp4"))])
    assert uploaded.status_code == 201, uploaded.text
    with stream(node, "cam-damaged", source=f"data://{uploaded.json()['data_key']}/damaged.mp4", fps=5):
        ended = wait_for(lambda: (lambda record: record if record["status"] in ("completed", "failed") else None)(
            node.workload("cam-damaged")), timeout_s=30)
        assert ended["status"] == "completed" and ended["restarts"] == 0, ended
        assert ended["stream"]["state"] == "ended" and ended["stream"]["frames_read"] >= 15, ended["stream"]
        assert ended["stream"]["events"] >= 1
        # Ended, the stream holds its data no more (a stream not finished would: 409).
        assert node.api("DELETE", f"/api/data/{uploaded.json()['data_key']}").status_code == 200

def test_a_stream_with_its_own_detector_takes_it_along(node: Node) -> None:
    before = node.resources()
    own = {"type": "opencv", "config": {"cascade_type": "face"}, "requirements": {"cpu": 1}}
    refused = node.submit({"source": "rtsp://127.0.0.1:1/none", "detector": own}, STREAM, workload_type="stream",
                          id="cam-refused")
    assert refused.status_code == 422 and "cannot open" in refused.json()["message"]
    wait_for(lambda: node.resources() == before, timeout_s=20)  # its detector went with it
    assert node.api("GET", "/api/workloads/cam-refused-detector").status_code == 404
    with mjpeg_server([jpeg(ASTRONAUT)]) as camera:
        answer = node.submit({"source": camera, "detector": own, "fps": 5}, STREAM, workload_type="stream", id="cam-own")
        assert answer.status_code == 201, answer.text
        assert answer.json()["config"]["detector"] == "cam-own-detector"
        assert node.workload("cam-own-detector")["owned_by"] == "cam-own"
        _, events = read_events(f"{node.url}/api/workloads/cam-own/events", 2, timeout_s=30, headers=AUTH)
        assert len(events) == 2 and events[0]["detections"][0]["class"] == "face"
        assert node.api("DELETE", "/api/workloads/cam-own").status_code == 200
    assert node.api("GET", "/api/workloads/cam-own-detector").status_code == 404
    assert node.resources() == before
