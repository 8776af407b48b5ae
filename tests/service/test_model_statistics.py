"""Triton's statistics extension, read by Triton's own client (``get_inference_statistics``), and dynamic
batching seen through it: every request and execution counted, a batch of two tensors two inferences in
one execution, a failed request a fail; with batching on, requests sent together run together and each
gets its own image's answer; the control, a batch delay of 0, runs every request alone."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.services import standalone_service

ASTRONAUT_PNG = Path(ASTRONAUT).read_bytes()
MIRRORED_PNG = cv2.imencode(".png", cv2.flip(cv2.imread(ASTRONAUT), 1))[1].tobytes()


def service(tmp_path: Path, *options: str) -> Iterator[str]:
    return standalone_service(tmp_path, "cnet-inference-yolo", "--model", YOLO_MODEL, "--name", "faces",
                              "--threads", "2", *options)


@pytest.fixture(scope="module")
def yolo(tmp_path_factory) -> Iterator[str]:
    yield from service(tmp_path_factory.mktemp("stats"))


def statistics(url: str) -> dict[str, Any]:
    answer = triton.InferenceServerClient(url.removeprefix("http://")).get_inference_statistics("faces")
    (model,) = answer["model_stats"]
    return model


def detections(url: str, image: bytes, session: requests.Session | None = None) -> list[dict[str, Any]]:
    answer = (session or requests).post(f"{url}/predict", data=image, headers={"Content-Type": "image/png"},
                                        timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["detections"]


def test_each_request_and_execution_is_counted_with_its_phases(yolo: str) -> None:
    before = statistics(yolo)
    for _ in range(3):
        detections(yolo, ASTRONAUT_PNG)
    tensor = np.random.default_rng(3).random((2, 3, 320, 320), dtype=np.float32)
    request = triton.InferInput("images", list(tensor.shape), "FP32")
    request.set_data_from_numpy(tensor, binary_data=True)
    triton.InferenceServerClient(yolo.removeprefix("http://")).infer("faces", [request])
    refused = requests.post(f"{yolo}/predict", data=b"not an image", headers={"Content-Type": "image/png"}, timeout=30)
    assert refused.status_code == 422
    after = statistics(yolo)

    def grew(*path: str) -> int:
        old, new = before, after
        for key in path:
            old, new = old[key], new[key]
        return new - old
    assert grew("inference_count") == 5 and grew("execution_count") == 4  # the batch of two: two, in one
    assert grew("inference_stats", "success", "count") == 4 and grew("inference_stats", "fail", "count") == 1
    for phase in ("compute_input", "compute_infer", "compute_output"):
        assert grew("inference_stats", phase, "count") == 4 and grew("inference_stats", phase, "ns") > 0
    assert grew("inference_stats", "compute_infer", "ns") < grew("inference_stats", "success", "ns")
    sizes = {entry["batch_size"]: entry["compute_infer"]["count"] for entry in after["batch_stats"]}
    assert sizes.get(2, 0) >= 1 and sizes[1] >= 3
    assert after["last_inference"] > before["last_inference"]  # milliseconds since the epoch, 0 before any
    every = requests.get(f"{yolo}/v2/models/stats", timeout=10).json()["model_stats"]
    assert [model["name"] for model in every] == ["faces"]
    with pytest.raises(InferenceServerException):  # control: another name has no statistics here
        triton.InferenceServerClient(yolo.removeprefix("http://")).get_inference_statistics("nobody")


def send_together(url: str, clients: int, each: int) -> dict[bytes, list[list[dict[str, Any]]]]:
    """``clients`` threads each sending ``each`` requests back to back, half of them the astronaut, half
    its mirror image; the answers per image."""
    answers: dict[bytes, list[list[dict[str, Any]]]] = {ASTRONAUT_PNG: [], MIRRORED_PNG: []}
    lock = threading.Lock()

    def client(image: bytes) -> None:
        session = requests.Session()
        for _ in range(each):
            found = detections(url, image, session)
            with lock:
                answers[image].append(found)
    threads = [threading.Thread(target=client, args=([ASTRONAUT_PNG, MIRRORED_PNG][index % 2],))
               for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def same_detections(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    return [item["class"] for item in got] == [item["class"] for item in expected] and all(
        np.allclose(a["bbox"], b["bbox"], atol=0.05) and abs(a["confidence"] - b["confidence"]) < 1e-3
        for a, b in zip(got, expected))


def test_dynamic_batching_runs_requests_together_and_answers_each_its_own(yolo: str, tmp_path: Path) -> None:
    expected = {image: detections(yolo, image) for image in (ASTRONAUT_PNG, MIRRORED_PNG)}
    assert not same_detections(expected[ASTRONAUT_PNG], expected[MIRRORED_PNG])  # control: the two differ
    for url in service(tmp_path, "--batch-max-size", "4", "--batch-max-delay-ms", "50"):
        answers = send_together(url, clients=8, each=3)
        for image, found in answers.items():
            assert len(found) == 12 and all(same_detections(each, expected[image]) for each in found), found
        batched = statistics(url)
        assert batched["inference_count"] == 24
        assert batched["execution_count"] < 24, batched
        assert max(entry["batch_size"] for entry in batched["batch_stats"]) > 1, batched["batch_stats"]
        assert max(entry["batch_size"] for entry in batched["batch_stats"]) <= 4
    for url in service(tmp_path, "--batch-max-size", "4", "--batch-max-delay-ms", "0"):  # control: no wait
        send_together(url, clients=8, each=3)
        alone = statistics(url)
        assert alone["inference_count"] == alone["execution_count"] == 24, alone
        assert [entry["batch_size"] for entry in alone["batch_stats"]] == [1]


def ongoing(url: str) -> float:
    line = next(line for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines()
                if line.startswith("cnet_service_ongoing_requests "))
    return float(line.split()[1])


def test_ongoing_requests_count_what_waits_for_a_batch_and_executes_and_fall_back_to_zero(tmp_path: Path) -> None:
    """The per-service gauge: eight clients against four request threads that wait for a batch (one thread
    answers /metrics) show more than one request in the service; refused requests (a broken image, a bad
    tensor) leave nothing counted. Requests waiting for a request thread are the HTTP server's, not counted
    here: the balancer's gauge of a deployment counts those (the autoscaler's signal)."""
    for url in service(tmp_path, "--batch-max-size", "4", "--batch-max-delay-ms", "50"):
        assert ongoing(url) == 0  # the control: idle
        stop, seen = threading.Event(), []

        def client() -> None:
            with requests.Session() as session:
                while not stop.is_set():
                    detections(url, ASTRONAUT_PNG, session)
        clients = [threading.Thread(target=client) for _ in range(8)]
        for thread in clients:
            thread.start()
        try:
            for _ in range(40):
                seen.append(ongoing(url))
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=60)
        assert 1 < max(seen) <= 3, seen  # together in a batch: more than one at once, at most the threads left
        assert requests.post(f"{url}/predict", data=b"no image", headers={"Content-Type": "image/png"},
                             timeout=30).status_code == 422
        assert requests.post(f"{url}/v2/models/faces/infer", json={"inputs": [{"name": "images"}]},
                             timeout=30).status_code == 400
        assert ongoing(url) == 0
