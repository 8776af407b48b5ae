"""CNET's container image: build time (cold and warm base cache), size, start time, and /predict throughput
of a YOLO service in a node container against the same service on a node on the host, in one run.

    .venv/bin/python bench/image.py [--clients 4] [--seconds 15] [--keep-base]

Cold: the cached root filesystem and the base image removed first (debootstrap runs); warm: built again
with the base there (``--keep-base`` skips the cold build). Start: ``podman run`` to /api/health answering.
Throughput: one YOLO service of 1 cpu (one inference thread) on each node, the same clients posting the
astronaut through each node's predict relay (goal: container / host >= 0.95). Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.assets import YOLO_MODEL  # noqa: E402
from tests.support.load import PredictionLoad  # noqa: E402
from tests.support.nodes import GIB, Node, free_port, running, wait_until_answers  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "cnet"


def make_image() -> float:
    started = time.monotonic()
    subprocess.run(["make", "image"], cwd=REPO, check=True, capture_output=True, timeout=1800)
    return round(time.monotonic() - started, 1)


def cold_build() -> float:
    for tarball in CACHE.glob("rootfs-*.tar"):
        tarball.unlink()
    bases = subprocess.run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/cnet-base"],
                           capture_output=True, text=True).stdout.split()
    subprocess.run(["podman", "rmi", "--force", *bases, "localhost/cnet:latest"], capture_output=True)
    return make_image()


def throughput(url: str, workload_id: str, clients: int, seconds: float, headers: dict[str, str]) -> float:
    with PredictionLoad(f"{url}/api/workloads/{workload_id}/predict", clients=clients, headers=headers) as load:
        load.wait_for_answers(clients * 3)
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
    assert not load.failed(), load.failed()[:3]
    return round(sum(start <= answer.answered_at < end for answer in load.answers) / (end - start), 1)


def yolo_on(url: str, headers: dict[str, str], model_path: str) -> str:
    answer = requests.post(f"{url}/api/workloads", headers=headers, timeout=180, json={
        "type": "mlmodel", "id": "bench-yolo", "requirements": {"cpu": 1},
        "config": {"model_type": "yolo", "model_path": model_path}})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def in_container(clients: int, seconds: float) -> tuple[float, float]:
    """Seconds from podman run to a healthy node, and the YOLO service's answers per second through it."""
    port, name, token = free_port(), f"cnet-bench-{uuid.uuid4().hex[:8]}", "bench"
    headers = {"Authorization": f"Bearer {token}"}
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    subprocess.run(["podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "-e",
                    "CNET__AGENT__NODE_ID=bench", "-e", f"CNET__AUTH__TOKEN={token}", "-e", "CNET__RESOURCES__CPU=2",
                    "localhost/cnet:latest"], check=True, capture_output=True)
    try:
        wait_until_answers(f"{url}/api/health", timeout_s=120)
        start_s = round(time.monotonic() - started, 2)
        with open(YOLO_MODEL, "rb") as handle:
            stored = requests.post(f"{url}/api/workloads", files=[("file", ("m.onnx", handle))], headers=headers,
                                   timeout=60).json()
        workload_id = yolo_on(url, headers, f"data://{stored['data_key']}/m.onnx")
        return start_s, throughput(url, workload_id, clients, seconds, headers)
    finally:
        subprocess.run(["podman", "rm", "--force", "--volumes", name], capture_output=True)


def on_host(clients: int, seconds: float) -> float:
    node = Node({"cpu": 2, "memory": 8 * GIB, "gpu": 0, "storage": 2 * GIB})
    with running(node):
        workload_id = yolo_on(node.url, dict(node.http.headers), YOLO_MODEL)
        return throughput(node.url, workload_id, clients, seconds, dict(node.http.headers))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--keep-base", action="store_true", help="skip the cold build")
    args = parser.parse_args()
    cold_s = None if args.keep_base else cold_build()
    warm_s = make_image()
    size = int(json.loads(subprocess.run(["podman", "image", "inspect", "localhost/cnet:latest"], check=True,
                                         capture_output=True, text=True).stdout)[0]["Size"])
    start_s, container_per_s = in_container(args.clients, args.seconds)
    host_per_s = on_host(args.clients, args.seconds)
    ratio = round(container_per_s / host_per_s, 3)
    print(orjson.dumps({
        "build_s": {"cold_base": cold_s, "warm_base": warm_s},
        "image_mb": {"value": round(size / 1e6), "goal": "<= 700", "met": size <= 700e6},
        "run_to_healthy_s": start_s,
        "predict_per_s": {"clients": args.clients, "container": container_per_s, "host": host_per_s},
        "container_over_host": {"value": ratio, "goal": ">= 0.95", "met": ratio >= 0.95},
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
