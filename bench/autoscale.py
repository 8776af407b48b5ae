"""Autoscaling under a load step, and starts from zero, against the same deployment's steady state in one run.

    .venv/bin/python bench/autoscale.py [--high 12] [--measure-s 10] [--cold-starts 3]

One node on loopback; a YOLO deployment (min 1, max 3, upscale_delay_s 2, downscale_delay_s 10, a 2 s window;
1 cpu and one inference thread per replica). One client, then a step to 12, then none. Prints JSON:
- reaction: from the step to the first answer of a second replica (goal <= 5 s with upscale_delay_s 2,
  against Ray Serve's default upscale_delay_s of 30 s), split into the decision and the replica's start;
- throughput at 12 clients on one replica (before the decision) and on three (the last measure_s);
- failed requests throughout (goal 0);
- time back to min_replicas after the load stops (the downscale delay, the drain, the stop);
- cold start from zero: a deployment with min_replicas 0 idles to zero, then one request is held while a
  replica starts (goal <= 1.5 s, the model cache warm and its check kept by sha256), against the same
  request to a warm replica.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.assets import ASTRONAUT, YOLO_MODEL  # noqa: E402
from tests.support.load import PredictionLoad, per_second  # noqa: E402
from tests.support.nodes import Node, running, wait_for  # noqa: E402

IMAGE = Path(ASTRONAUT).read_bytes()
POLICY = {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 2, "upscale_delay_s": 2,
          "downscale_delay_s": 10, "metrics_window_s": 2}
MODEL = {"model_type": "yolo", "model_path": YOLO_MODEL}


def step(node: Node, high: int, measure_s: float) -> dict:
    deployment = node.submit(MODEL, {"cpu": 1}, workload_type="mlmodel", id="stepped", autoscale=POLICY,
                             spread="any").json()
    assert deployment["deployment"]["healthy"] == 1, deployment
    url = f"{node.url}/api/workloads/stepped/predict"
    wall_offset = time.time() - time.monotonic()
    with PredictionLoad(url, clients=1) as one:
        one.wait_for_answers(20)
        low_start = time.monotonic()
        time.sleep(measure_s)
        low_per_s = round(per_second(one.answers, low_start, time.monotonic()), 1)
        step_at = time.monotonic()
        with PredictionLoad(url, clients=high - 1) as rest:
            wait_for(lambda: node.workload("stepped")["deployment"]["healthy"] == 3, timeout_s=300, interval_s=0.1)
            time.sleep(measure_s)
            end_at = time.monotonic()
    stopped_at = time.monotonic()
    answers = one.answers + rest.answers
    up = node.workload("stepped")["deployment"]["autoscale"]["history"][0]
    decided_s = up["at"] - wall_offset - step_at
    second = min(answer.answered_at for answer in answers if answer.headers.get("X-Cnet-Replica") != "stepped-r0")
    wait_for(lambda: [item["id"] for item in node.workload("stepped")["deployment"]["instances"]] == ["stepped-r0"],
             timeout_s=300, interval_s=0.1)
    back_s = time.monotonic() - stopped_at
    node.api("DELETE", "/api/workloads/stepped")
    reaction_s = second - step_at
    one_replica_per_s = round(per_second(answers, step_at + 0.5, step_at + decided_s), 1)
    three_replicas_per_s = round(per_second(answers, end_at - measure_s, end_at), 1)
    return {
        "reaction_s": {"value": round(reaction_s, 2), "decision_s": round(decided_s, 2),
                       "start_s": round(second - step_at - decided_s, 2), "goal": "<= 5 (upscale_delay_s 2)",
                       "met": reaction_s <= 5, "ray_serve_default_upscale_delay_s": 30},
        "throughput_per_s": {"1_client_1_replica": low_per_s,
                             f"{high}_clients_1_replica": one_replica_per_s,
                             f"{high}_clients_3_replicas": three_replicas_per_s},
        "failed_requests": {"value": sum(not answer.ok for answer in answers), "of": len(answers), "goal": 0,
                            "met": all(answer.ok for answer in answers)},
        "back_to_min_s": {"value": round(back_s, 1), "downscale_delay_s": POLICY["downscale_delay_s"]},
    }


def cold_starts(node: Node, count: int) -> dict:
    policy = {**POLICY, "min_replicas": 0, "downscale_delay_s": 1, "metrics_window_s": 1}
    node.submit(MODEL, {"cpu": 1}, workload_type="mlmodel", id="sleepy", autoscale=policy)
    url = f"{node.url}/api/workloads/sleepy/predict"
    held, reported = [], []
    with requests.Session() as session:
        for _ in range(count):
            wait_for(lambda: node.resources()["allocated"]["cpu"] == 0, timeout_s=120, interval_s=0.1)
            started = time.monotonic()
            answer = session.post(url, data=IMAGE, headers={"Content-Type": "image/png"}, timeout=60)
            held.append(time.monotonic() - started)
            assert answer.status_code == 200, answer.text
            reported.append(float(answer.headers["X-CNET-Cold-Start-Ms"]) / 1000)
        warm = []
        for _ in range(20):
            started = time.monotonic()
            assert session.post(url, data=IMAGE, headers={"Content-Type": "image/png"}, timeout=60).ok
            warm.append(time.monotonic() - started)
    node.api("DELETE", "/api/workloads/sleepy")
    median = statistics.median(held)
    return {"first_request_s": {"median": round(median, 3), "all": [round(value, 3) for value in held],
                                "goal": "<= 1.5 (YOLO, cache warm)", "met": median <= 1.5},
            "held_reported_s": [round(value, 3) for value in reported],
            "warm_request_s": {"median": round(statistics.median(warm), 3)},
            "cold_over_warm": round(median / statistics.median(warm), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--high", type=int, default=12, help="clients after the step")
    parser.add_argument("--measure-s", type=float, default=10.0)
    parser.add_argument("--cold-starts", type=int, default=3)
    args = parser.parse_args()
    node = Node({"cpu": 8, "memory": 2**34, "gpu": 0, "storage": 2**33}, health={"interval_s": 0.5})
    with running(node):
        result = {"high_clients": args.high, "policy": POLICY, "step": step(node, args.high, args.measure_s),
                  "from_zero": cold_starts(node, args.cold_starts)}
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
