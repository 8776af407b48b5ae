"""The scheduler decides one request at a time, and its serial thread never waits on slow work: a model's
check, a program's stop. Each test holds a real slow step for as long as it likes (the model check's process
stopped with SIGSTOP; a process that ignores SIGTERM until its stop timeout), and a plain submission answers
in the meantime. The control is that the slow request itself is still under way when the other one answers.
(Before this was so, the same tests waited: the submission queued behind the check or the stop.)"""
from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tests.support.assets import YOLO_MODEL
from tests.support.model_checks import stopped_model_check
from tests.support.nodes import Node, wait_for

pytestmark = pytest.mark.node
SLEEP = {"command": "sleep", "args": ["600"]}
ANSWERS_WITHIN_S = 5.0  # generous on a loaded machine: a plain submission takes milliseconds


def test_a_process_submission_answers_while_a_model_check_is_under_way(node: Node) -> None:
    with ThreadPoolExecutor(1) as pool:
        model = pool.submit(node.submit, {"model_type": "yolo", "model_path": YOLO_MODEL}, {"cpu": 1},
                            workload_type="mlmodel", fresh_connection=True)
        check = stopped_model_check(node)
        try:
            started = time.monotonic()
            answer = node.submit(SLEEP)
            elapsed_s = time.monotonic() - started
            assert answer.status_code == 201 and answer.json()["status"] == "running", answer.text
            assert elapsed_s < ANSWERS_WITHIN_S, elapsed_s
            assert not model.done() and check.status() == psutil.STATUS_STOPPED  # the control: still checking
            # Record, then act: the model's workload is admitted, its resources held, while it is checked.
            held = node.resources()["allocated"]["cpu"]
            assert held == 1.0, node.resources()
        finally:
            check.send_signal(signal.SIGCONT)
        deployed = model.result(timeout=120)
    assert deployed.status_code == 201 and deployed.json()["status"] == "running", deployed.text
    for record in (answer.json(), deployed.json()):
        assert node.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200


def test_a_submission_answers_while_a_stop_waits_for_its_program(node: Node) -> None:
    # sh ignores SIGTERM here, and so does its sleep: the stop waits out the stop timeout, then kills.
    stubborn = node.submit({"command": "sh", "args": ["-c", "trap '' TERM; echo deaf; sleep 600 & wait"]}).json()
    assert stubborn["status"] == "running", stubborn
    # Running is said once it is spawned: on a loaded machine a stop sent at once beat sh to its trap.
    wait_for(lambda: "deaf" in node.api("GET", f"/api/workloads/{stubborn['id']}/logs").json()["stdout"])
    with ThreadPoolExecutor(1) as pool:
        stopping = pool.submit(node.api, "POST", f"/api/workloads/{stubborn['id']}/stop", fresh_connection=True)
        wait_for(lambda: node.api("GET", f"/api/workloads/{stubborn['id']}").json()["desired"] == "stop")
        started = time.monotonic()
        answer = node.submit(SLEEP)
        elapsed_s = time.monotonic() - started
        assert answer.status_code == 201 and answer.json()["status"] == "running", answer.text
        assert elapsed_s < 2.0 and not stopping.done(), elapsed_s  # the control: the stop still waits
        assert stopping.result(timeout=60).json()["status"] == "stopped"
    for record in (stubborn, answer.json()):
        assert node.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200
