"""A model rollout under load, against the same deployment in steady state, in one run.

    .venv/bin/python bench/rollout.py [--clients 16] [--steady-s 10]

One node on loopback; a YOLO deployment of 3 replicas whose models come from a local HTTP server (so the
first use of each is a fetch into the node's cache). 16 clients predict through the node throughout. Prints
JSON: failed requests during the rollout (goal 0), p50 / p99 latency and throughput during it against steady
state (goal: p99 during at most 2x steady), and the time from PATCH to every replica on the new revision
against the time of one deployment, with the model's cache cold (v1 → v2, v2 fetched) and warm (the undo
back to v1, which is cached).
"""
from __future__ import annotations

import argparse
import ast
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.assets import YOLO_MODEL  # noqa: E402
from tests.support.file_server import FileServer  # noqa: E402
from tests.support.load import PredictionLoad  # noqa: E402
from tests.support.nodes import Node, running, wait_for  # noqa: E402

REPLICAS = 3


def variant(folder: Path) -> None:
    """v1 as it is; v2 the same network with other class names (other bytes, other answers)."""
    (folder / "v1.onnx").write_bytes(Path(YOLO_MODEL).read_bytes())
    model = onnx.load(YOLO_MODEL)
    for entry in model.metadata_props:
        if entry.key == "names":
            entry.value = str({index: f"{name}_V2" for index, name in ast.literal_eval(entry.value).items()})
    onnx.save(model, str(folder / "v2.onnx"))


def window(load: PredictionLoad, start: float, end: float) -> dict[str, float]:
    answers = [answer for answer in load.answers if start <= answer.sent_at and answer.answered_at <= end]
    latencies = sorted((answer.answered_at - answer.sent_at) * 1000 for answer in answers if answer.ok)
    if not latencies:
        return {"requests": 0}
    return {"requests": len(answers), "failed": sum(not answer.ok for answer in answers),
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
            "per_s": round(len(answers) / (end - start), 1)}


def roll(node: Node, deployment_id: str, change: dict, revision: int) -> float:
    started = time.monotonic()
    answer = node.api("PATCH", f"/api/workloads/{deployment_id}", json=change) if change else \
        node.api("POST", f"/api/workloads/{deployment_id}/rollback")
    assert answer.status_code == 200, answer.text

    def done() -> bool:
        shown = node.workload(deployment_id)["deployment"]
        return shown["revision"] == revision and shown["rollout"] is None and \
            [item["revision"] for item in shown["instances"] if not item["retired_because"]] == [revision] * REPLICAS
    wait_for(done, timeout_s=600, interval_s=0.1)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--steady-s", type=float, default=10.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cnet-rollout-bench-"))
    folder.chmod(0o755)
    variant(folder)
    node = Node({"cpu": 8, "memory": 2**34, "gpu": 0, "storage": 2**33})
    with FileServer(folder) as server, running(node):
        config = {"model_type": "yolo", "model_path": f"{server.url}/v1.onnx"}
        started = time.monotonic()
        single = node.submit(config, {"cpu": 0.6}, workload_type="mlmodel", replicas=1).json()
        deploy_cold_s = time.monotonic() - started
        node.api("DELETE", f"/api/workloads/{single['id']}")
        started = time.monotonic()
        single = node.submit(config, {"cpu": 0.6}, workload_type="mlmodel", replicas=1).json()
        deploy_warm_s = time.monotonic() - started
        node.api("DELETE", f"/api/workloads/{single['id']}")
        deployment = node.submit(config, {"cpu": 0.6}, workload_type="mlmodel", replicas=REPLICAS, spread="any").json()
        assert deployment["deployment"]["healthy"] == REPLICAS, deployment
        load = PredictionLoad(f"{node.url}/api/workloads/{deployment['id']}/predict", clients=args.clients)
        with load:
            load.wait_for_answers(args.clients * 2)
            steady_start = time.monotonic()
            time.sleep(args.steady_s)
            steady = window(load, steady_start, time.monotonic())
            rollout_start = time.monotonic()
            cold_s = roll(node, deployment["id"], {"config": {**config, "model_path": f"{server.url}/v2.onnx"}}, 2)
            during = window(load, rollout_start, time.monotonic())
            undo_start = time.monotonic()
            warm_s = roll(node, deployment["id"], {}, 1)  # the undo: back to v1, which the cache holds
            during_undo = window(load, undo_start, time.monotonic())
    failed = during.get("failed", 0) + during_undo.get("failed", 0)
    result = {
        "clients": args.clients, "replicas": REPLICAS, "steady": steady,
        "during_rollout_v1_to_v2": during, "during_undo_v2_to_v1": during_undo,
        "failed_requests": {"value": failed, "goal": 0, "met": failed == 0},
        "p99_during_over_steady": {"value": round(during["p99_ms"] / steady["p99_ms"], 2), "goal": "<= 2.0",
                                   "met": during["p99_ms"] <= 2 * steady["p99_ms"]},
        "throughput_during_over_steady": {"value": round(during["per_s"] / steady["per_s"], 2),
                                          "goal": "measured (the new replicas load and warm up on the cores that "
                                                  "serve)"},
        "rollout_s": {"cold_cache": round(cold_s, 1), "warm_cache": round(warm_s, 1)},
        "one_deploy_s": {"cold_cache": round(deploy_cold_s, 2), "warm_cache": round(deploy_warm_s, 2)},
        "rollout_over_one_deploy": {"cold": round(cold_s / deploy_cold_s, 1), "warm": round(warm_s / deploy_warm_s, 1),
                                    "goal": f"measured: {REPLICAS} replicas one at a time, each healthy for "
                                            "update.min_healthy_s before the next"},
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
