"""Throughput of a deployment with 1, 2 and 4 replicas, and the balancer's cost against calling a replica.

    .venv/bin/python bench/replicas.py [--requests 160] [--clients 16]

One node on loopback (cpu 4 declared, whatever the machine has). A YOLO deployment (the test model,
replicas of cpu 1: one onnxruntime thread each) is sent a 640×480 JPEG by 16 clients through the node's
``POST /api/workloads/{id}/predict``, for 1, 2 and 4 replicas (scaled with PATCH); ratios are against 1
replica in the same run. The balancer's overhead: one client, a 32×32 PNG to an OpenCV deployment of one
replica, through the balancer against straight to that replica's endpoint (and against the relay of a
single workload, which has no balancer: what the node's hop costs by itself). Prints JSON; medians in ms.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import at_least, at_most, measured  # noqa: E402
from bench.timing import median_ms  # noqa: E402
from tests.support.assets import ASTRONAUT, YOLO_MODEL  # noqa: E402
from tests.support.nodes import GIB, Node, running, wait_for  # noqa: E402

JPEG = {"Content-Type": "image/jpeg"}


def throughput(url: str, body: bytes, headers: dict[str, str], clients: int, total: int) -> dict[str, object]:
    sessions = [requests.Session() for _ in range(clients)]
    answered_by: dict[str, int] = {}

    def client(index: int) -> None:
        for _ in range(total // clients):
            answer = sessions[index].post(url, data=body, headers=headers)
            assert answer.status_code == 200, answer.text
            replica = answer.headers.get("X-Cnet-Replica", "-")
            answered_by[replica] = answered_by.get(replica, 0) + 1
    for _ in range(2):
        sessions[0].post(url, data=body, headers=headers)  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return {"rps": round((total // clients) * clients / (time.perf_counter() - started), 1),
            "answered_by": dict(sorted(answered_by.items()))}


def settled(node: Node, workload_id: str, replicas: int) -> bool:
    view = node.workload(workload_id)
    instances = view["deployment"]["instances"]
    return view["status"] == "running" and len(instances) == replicas


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    image = cv2.resize(cv2.imread(ASTRONAUT), (640, 480), interpolation=cv2.INTER_AREA)
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    tiny = cv2.imencode(".png", np.full((32, 32, 3), 128, np.uint8))[1].tobytes()
    results: dict[str, object] = {"clients": args.clients, "requests": args.requests, "image": "640x480 JPEG"}
    node = Node({"cpu": 4, "memory": 16 * GIB, "gpu": 0, "storage": GIB})
    with running(node):
        deployed = node.submit({"model_type": "yolo", "model_path": YOLO_MODEL}, {"cpu": 1}, workload_type="mlmodel",
                               id="yolo", replicas=1)
        assert deployed.status_code == 201, deployed.text
        url = f"{node.url}/api/workloads/yolo/predict"
        by_replicas = {}
        for replicas in (1, 2, 4):
            node.api("PATCH", "/api/workloads/yolo", json={"replicas": replicas})
            wait_for(lambda replicas=replicas: settled(node, "yolo", replicas), timeout_s=120)
            by_replicas[replicas] = throughput(url, jpeg, JPEG, args.clients, args.requests)
        results["throughput"] = by_replicas
        results["ratio_2_over_1"] = round(by_replicas[2]["rps"] / by_replicas[1]["rps"], 2)
        results["ratio_4_over_1"] = round(by_replicas[4]["rps"] / by_replicas[1]["rps"], 2)
        node.api("DELETE", "/api/workloads/yolo")

        faces = node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv", id="faces", replicas=1)
        single = node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv", id="single")
        assert faces.status_code == single.status_code == 201, (faces.text, single.text)
        endpoint = faces.json()["deployment"]["instances"][0]["endpoint"]
        session, png = requests.Session(), {"Content-Type": "image/png"}
        paths = {"direct_to_the_replica": f"{endpoint}/predict",
                 "through_the_balancer": f"{node.url}/api/workloads/faces/predict",
                 "through_the_relay_of_a_single_workload": f"{node.url}/api/workloads/single/predict"}
        for path in paths.values():
            for _ in range(20):
                assert session.post(path, data=tiny, headers=png).status_code == 200
        rounds = {name: [] for name in paths}
        for _ in range(5):  # interleaved, so that the machine's noise falls on all alike
            for name, path in paths.items():
                rounds[name].append(median_ms(lambda path=path: session.post(path, data=tiny, headers=png), 100))
        latency = {name: round(statistics.median(values), 3) for name, values in rounds.items()}
        results["tiny_png_p50_ms"] = latency
        results["balancer_overhead_p50_ms"] = round(latency["through_the_balancer"] - latency["direct_to_the_replica"], 3)
        results["balancing_over_plain_relay_p50_ms"] = round(
            latency["through_the_balancer"] - latency["through_the_relay_of_a_single_workload"], 3)
    results["goals"] = {"ratio_2_over_1": at_least(results["ratio_2_over_1"], 1.7),
                        "ratio_4_over_1": measured(results["ratio_4_over_1"], "reported beside the 2-replica goal"),
                        "balancer_overhead_p50_ms": at_most(results["balancer_overhead_p50_ms"], 1.0)}
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


if __name__ == "__main__":
    main()
