"""/predict latency and throughput of the YOLO service against raw onnxruntime and nudenet, same run.

    .venv/bin/python bench/predict_latency.py [--requests 100] [--threads 2]

One JPEG of 640×480 (scikit-image's astronaut, resized) sent as base64 JSON. Baselines: raw
``session.run`` on the already-preprocessed tensor (the floor), and nudenet's own
``NudeDetector.detect`` on the same model and image (a peer serving the same model: compare speed,
not boxes). Throughput with 1, 4 and 16 concurrent clients. Prints JSON; medians in milliseconds.
"""
from __future__ import annotations

import argparse
import base64
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference import yolo_steps as steps  # noqa: E402
from inference.yolo_model import YoloModel  # noqa: E402
from tests.support.assets import ASTRONAUT, YOLO_MODEL  # noqa: E402
from tests.support.nodes import VENV_BIN, free_port, wait_until_answers  # noqa: E402


def timed_ms(action, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def median(timings: list[float]) -> float:
    return round(statistics.median(timings), 3)


def throughput(url: str, body: bytes, clients: int, total: int) -> float:
    session_per_thread = [requests.Session() for _ in range(clients)]

    def client(index: int) -> None:
        for _ in range(total // clients):
            answer = session_per_thread[index].post(url, data=body, headers={"Content-Type": "application/json"})
            assert answer.status_code == 200
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return round((total // clients) * clients / (time.perf_counter() - started), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="service threads (= the workload's cpu)")
    args = parser.parse_args()
    image = cv2.resize(cv2.imread(ASTRONAUT), (640, 480), interpolation=cv2.INTER_AREA)
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    body = orjson.dumps({"image": base64.b64encode(jpeg).decode(), "confidence": 0.25})
    results: dict[str, object] = {"requests": args.requests, "image": "640x480 JPEG", "jpeg_bytes": len(jpeg),
                                  "service_threads": args.threads}

    model = YoloModel(YOLO_MODEL, threads=args.threads)
    tensor = steps.to_tensor(steps.letterbox(image, model.input_size).image)
    raw = timed_ms(lambda: model.backend.run(tensor), args.requests)
    results["raw_session_run_ms"] = median(raw)

    from nudenet import NudeDetector
    with tempfile.NamedTemporaryFile(suffix=".jpg") as handle:
        handle.write(jpeg)
        handle.flush()
        detector = NudeDetector()
        results["nudenet_detect_ms"] = median(timed_ms(lambda: detector.detect(handle.name), args.requests))

    port = free_port()
    with tempfile.TemporaryDirectory() as log_dir:
        service = subprocess.Popen([str(VENV_BIN / "cnet-inference-yolo"), "--model", YOLO_MODEL, "--port", str(port),
                                    "--threads", str(args.threads), "--log-dir", log_dir],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/predict"
        try:
            wait_until_answers(f"http://127.0.0.1:{port}/health", process=service)
            session = requests.Session()
            for _ in range(5):  # warm-up
                session.post(url, data=body, headers={"Content-Type": "application/json"})
            predict = timed_ms(lambda: session.post(url, data=body, headers={"Content-Type": "application/json"}),
                               args.requests)
            results["predict_ms"] = median(predict)
            results["predict_over_raw_session_run"] = round(statistics.median(predict) / statistics.median(raw), 2)
            results["predict_vs_nudenet_detect"] = round(statistics.median(predict) / results["nudenet_detect_ms"], 2)
            results["throughput_rps"] = {clients: throughput(url, body, clients, max(args.requests, 4 * clients))
                                         for clients in (1, 4, 16)}
        finally:
            service.terminate()
            service.wait(timeout=30)
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


if __name__ == "__main__":
    main()
