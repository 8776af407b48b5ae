"""The GPU check of issue 9, for a machine with an NVIDIA GPU (runs on a CPU machine too, reporting 0 GPUs).

    .venv/bin/python bench/gpu_check.py

Starts a node with ``gpu: auto``, shows the detected devices in /api/resources, deploys the test's YOLO
model as a ``pytorch`` (TorchScript) service with ``"gpu": 1`` when there is a GPU, runs /predict, shows
/info naming the device, and compares /predict latency (median of 50, astronaut.png) against the same
service on the CPU in the same run. Prints JSON.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.assets import ASTRONAUT, YOLO_MODEL  # noqa: E402
from tests.support.nodes import Node, running  # noqa: E402
from tests.support.onnx_to_torch import export_torchscript  # noqa: E402

SAMPLES = 50


def predict_ms(endpoint: str, image: bytes) -> tuple[float, list[dict]]:
    session, timings, answer = requests.Session(), [], {}
    for _ in range(SAMPLES + 5):
        started = time.perf_counter()
        answer = session.post(f"{endpoint}/predict", data=image, headers={"Content-Type": "image/png"}).json()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings[5:]), 2), answer["detections"]


def main() -> None:
    image = Path(ASTRONAUT).read_bytes()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as scratch:
        model = f"{scratch}/320n.torchscript"
        export_torchscript(YOLO_MODEL, model)
        node = Node({"cpu": 4, "memory": 2**34, "gpu": "auto", "storage": 0})
        with running(node):
            resources = node.resources()
            results["detected_gpus"] = resources["gpus"]
            for label, gpu in (("cpu", 0), ("gpu", 1)):
                if gpu > resources["capacity"]["gpu"]:
                    continue
                workload = node.submit({"model_type": "pytorch", "model_path": model}, {"cpu": 2, "gpu": gpu},
                                       workload_type="mlmodel").json()
                info = requests.get(f"{workload['endpoint']}/info", timeout=30).json()
                median_ms, found = predict_ms(workload["endpoint"], image)
                results[label] = {"gpu_devices": workload["gpu_devices"], "device": info["device"],
                                  "predict_ms_median": median_ms, "detections": found[:2]}
                node.api("DELETE", f"/api/workloads/{workload['id']}")
            if "gpu" in results:
                results["cpu_over_gpu"] = round(results["cpu"]["predict_ms_median"] / results["gpu"]["predict_ms_median"], 2)
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
