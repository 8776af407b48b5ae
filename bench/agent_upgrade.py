"""What an agent upgrade (`cnetd reload`) costs the workloads, against a node that is not upgraded, in one run.

    .venv/bin/python bench/agent_upgrade.py [--rounds 3] [--clients 2]

Two nodes on loopback, each with an OpenCV face service; clients predict continuously on each, straight to
the service and through the node's API. One node is reloaded each round; the other is not, over the same
seconds. Prints JSON: the reload's time from the command to every node process answering again, the
predictions that failed on each path (goal 0), and the longest gap one client saw between two answers on
the reloaded node against the same on the other (goal: no more than 1.5x, plus 100 ms).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.assets import ASTRONAUT  # noqa: E402
from tests.support.load import PredictionLoad  # noqa: E402
from tests.support.nodes import VENV_BIN, Node, running  # noqa: E402

NODE_PROCESSES = ("api", "register", "scheduler", "monitor")
SETTLE_S = 2.0  # predictions before and after the reload, so the gaps around it are measured whole


def service(node: Node) -> dict:
    record = node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv").json()
    assert record["status"] == "running", record
    return record


def small_face() -> bytes:
    """The astronaut's face at 128 x 128: a prediction costs about a millisecond, so the clients measure the
    node's answers, not the cores' queue."""
    import cv2
    image = cv2.imread(ASTRONAUT)[20:230, 140:350]
    return cv2.imencode(".png", cv2.resize(image, (128, 128)))[1].tobytes()


def loads(node: Node, record: dict, clients: int) -> dict[str, PredictionLoad]:
    image = small_face()
    return {"direct": PredictionLoad(f"{record['endpoint']}/predict", clients=clients, image=image),
            "api": PredictionLoad(f"{node.url}/api/workloads/{record['id']}/predict", clients=clients, image=image)}


def one_round(upgraded: Node, steady: Node, records: dict[str, dict], clients: int) -> dict[str, object]:
    pids = {name: upgraded.program_pid(name) for name in NODE_PROCESSES}
    on_upgraded, on_steady = loads(upgraded, records["upgraded"], clients), loads(steady, records["steady"], clients)
    everything = [*on_upgraded.values(), *on_steady.values()]
    for load in everything:
        load.__enter__()
    try:
        time.sleep(SETTLE_S)
        window_start = time.monotonic()
        started = time.monotonic()
        done = subprocess.run([str(VENV_BIN / "cnetd"), "reload", "-config", str(upgraded.config_path)],
                              capture_output=True, text=True, timeout=120)
        reload_s = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert all(upgraded.program_pid(name) != pids[name] for name in NODE_PROCESSES)
        time.sleep(SETTLE_S)
    finally:
        for load in everything:
            load.stop()
    return {"reload_s": round(reload_s, 2),
            "failed": {path: len(load.failed()) for path, load in on_upgraded.items()},
            "requests": {path: len(load.answers) for path, load in on_upgraded.items()},
            "longest_gap_ms": {path: round(load.longest_gap_s(window_start) * 1000, 1)
                               for path, load in on_upgraded.items()},
            "longest_gap_ms_not_upgraded": {path: round(load.longest_gap_s(window_start) * 1000, 1)
                                            for path, load in on_steady.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args()
    upgraded, steady = Node(), Node()
    with running(upgraded, steady):
        records = {"upgraded": service(upgraded), "steady": service(steady)}
        rounds = [one_round(upgraded, steady, records, args.clients) for _ in range(args.rounds)]
    failed = {path: sum(round_["failed"][path] for round_ in rounds) for path in ("direct", "api")}
    gap = {path: statistics.median(round_["longest_gap_ms"][path] for round_ in rounds) for path in ("direct", "api")}
    steady_gap = {path: statistics.median(round_["longest_gap_ms_not_upgraded"][path] for round_ in rounds)
                  for path in ("direct", "api")}
    result = {
        "rounds": rounds,
        "reload_s_median": {"value": statistics.median(round_["reload_s"] for round_ in rounds),
                            "goal": "every node process answers again (measured; no goal)"},
        "failed_predictions": {"value": failed, "goal": 0, "met": not any(failed.values())},
        "longest_gap_ms_median": {"value": gap, "not_upgraded": steady_gap,
                                  "goal": "<= 1.5x the node not upgraded + 100 ms",
                                  "met": all(gap[path] <= 1.5 * steady_gap[path] + 100 for path in gap)},
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
