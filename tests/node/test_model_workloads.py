"""Model services as workloads on a real node: deploy, predict, stop, bad configs, crash loop, health."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.nodes import GIB, VENV_BIN, Node, free_port, running, wait_for
from tests.support.services import predict

YOLO = {"model_type": "yolo", "model_path": YOLO_MODEL}


NODE = {"health": {"interval_s": 0.5}}



def test_deploy_predict_stop_resources_back(node: Node) -> None:
    before = node.resources()
    answer = node.submit(YOLO, {"cpu": 2.0, "memory": 2 * GIB}, workload_type="mlmodel")
    assert answer.status_code == 201, answer.text
    record = answer.json()
    assert record["status"] == "running" and record["process_pid"] > 0
    assert record["endpoint"].startswith("http://127.0.0.1:")
    direct = predict(record["endpoint"])
    assert [d["class"] for d in direct["detections"]] == ["FACE_FEMALE"]
    with open(ASTRONAUT, "rb") as handle:  # the node relays predictions (the console's way to a service)
        relayed = node.api("POST", f"/api/workloads/{record['id']}/predict?confidence=0.25", data=handle.read(),
                           headers={"Content-Type": "image/png"})
    assert relayed.status_code == 200 and relayed.json()["detections"] == direct["detections"]
    assert node.api("POST", f"/api/workloads/{record['id']}/predict", data=b"not an image",
                    headers={"Content-Type": "image/png"}).status_code == 422
    assert node.resources()["available"]["cpu"] == before["available"]["cpu"] - 2
    port = record["config"]["service_port"]
    service_log = node.workload_dir(record["id"]) / f"yolo_service_{port}.log"  # in its own dir
    assert service_log.exists()
    assert "320n.onnx" in node.api("GET", f"/api/workloads/{record['id']}/logs").json()["stderr"]
    stopped = node.api("POST", f"/api/workloads/{record['id']}/stop").json()
    assert stopped["status"] == "stopped" and node.resources() == before
    refused = node.api("POST", f"/api/workloads/{record['id']}/predict", data=b"x", headers={"Content-Type": "image/png"})
    assert refused.status_code == 409 and refused.json()["error"] == "not_running"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{record['endpoint']}/health", timeout=2)
    assert node.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200
    assert not service_log.parent.exists()  # its dir and log go with it


def test_opencv_service_on_a_chosen_port(node: Node) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    record = node.submit({"cascade_type": "face", "service_port": port}, {"cpu": 1}, workload_type="opencv").json()
    assert record["status"] == "running" and record["endpoint"] == f"http://127.0.0.1:{port}"
    assert predict(record["endpoint"])["count"] >= 1
    node.api("DELETE", f"/api/workloads/{record['id']}")


@pytest.mark.parametrize("workload_type, config, status, words", [
    ("mlmodel", {"model_type": "keras", "model_path": YOLO_MODEL}, 400, "supported: yolo, pytorch, tflite, tensorflow"),
    ("mlmodel", {"model_type": "yolo", "model_path": "/nonexistent/model.onnx"}, 422, "does not exist"),
    ("mlmodel", {"model_type": "yolo", "model_path": ASTRONAUT}, 422, "not a loadable ONNX model"),
    ("mlmodel", {"model_type": "yolo"}, 400, "model_path"),
    ("mlmodel", {**YOLO, "service_port": 0}, 400, "service_port"),
    ("opencv", {"cascade_type": "nose"}, 400, "cascade_type"),
    ("opencv", {"cascade_type": "face", "colour": "red"}, 400, "unknown field"),
])
def test_bad_service_configs_are_refused_with_nothing_allocated(node: Node, workload_type, config, status,
                                                                 words) -> None:
    before = node.resources()
    answer = node.submit(config, {"cpu": 1}, workload_type=workload_type)
    assert answer.status_code == status and words in answer.json()["message"], answer.text
    assert node.resources() == before


def test_port_in_use_is_refused(node: Node) -> None:
    answer = node.submit({**YOLO, "service_port": node.port}, workload_type="mlmodel")
    assert answer.status_code == 409 and "already in use" in answer.json()["message"]


def test_crash_loop_ends_failed_after_three_restarts(node: Node) -> None:
    before = node.resources()
    record = node.submit({"cascade_type": "face"}, {"cpu": 1, "memory": GIB}, workload_type="opencv").json()
    pid = record["process_pid"]
    for restart in range(1, 4):
        os.kill(pid, signal.SIGKILL)
        current = wait_for(lambda: (view := node.workload(record["id"]))["restarts"] == restart
                           and view["status"] == "running" and view["process_pid"] not in (None, pid) and view,
                           timeout_s=30)
        pid = current["process_pid"]
    os.kill(pid, signal.SIGKILL)
    final = wait_for(lambda: (view := node.workload(record["id"]))["status"] == "failed" and view, timeout_s=30)
    assert final["restarts"] == 3 and "after 3 restart(s)" in final["message"]
    assert node.resources() == before


def test_frozen_service_is_restarted_by_its_health_checks(node: Node) -> None:
    record = node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv").json()
    os.killpg(record["process_pid"], signal.SIGSTOP)  # the server and its workers: alive, not answering
    try:
        back = wait_for(lambda: (view := node.workload(record["id"]))["restarts"] == 1
                        and view["status"] == "running" and view, timeout_s=60)
    finally:
        try:
            os.killpg(record["process_pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert back["process_pid"] != record["process_pid"] and predict(back["endpoint"])["count"] >= 1
    node.api("DELETE", f"/api/workloads/{record['id']}")


def test_a_service_that_cannot_load_its_model_exits_at_once(tmp_path) -> None:
    result = subprocess.run([str(VENV_BIN / "cnet-inference-yolo"), "--model", str(tmp_path / "gone.onnx"),
                             "--port", str(free_port()), "--log-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "does not exist" in result.stderr


def test_kill_9_of_a_service_costs_one_restart_and_leaves_no_worker(node: Node) -> None:
    record = node.submit(YOLO, {"cpu": 1}, workload_type="mlmodel").json()
    workers = psutil.Process(record["process_pid"]).children()
    assert workers
    for worker in workers:  # a frozen worker cannot notice its master is gone: only the kernel ends it
        worker.suspend()
    os.kill(record["process_pid"], signal.SIGKILL)
    wait_for(lambda: not any(worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE for worker in workers),
             timeout_s=10)
    back = wait_for(lambda: (view := node.workload(record["id"]))["status"] == "running"
                    and view["process_pid"] != record["process_pid"] and view, timeout_s=60)
    assert back["restarts"] == 1, back
    assert predict(back["endpoint"])["count"] >= 1
    node.api("DELETE", f"/api/workloads/{record['id']}")


def test_a_service_not_healthy_in_time_is_failed_and_released() -> None:
    with running(Node(health={"interval_s": 0.5, "start_timeout_s": 3})) as node:
        before = node.resources()
        workload_id = uuid.uuid4().hex[:12]
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(node.submit, YOLO, {"cpu": 1}, workload_type="mlmodel", id=workload_id)
            # Stopped as soon as it exists, before it can load its model (polling the API instead lost that race
            # on a loaded machine): alive, never answering its health check.
            pid = wait_for(lambda: _process_with(workload_id), timeout_s=30, interval_s=0.005)
            os.killpg(pid, signal.SIGSTOP)
            assert answer.result().status_code == 201
        failed = wait_for(lambda: (view := node.workload(workload_id))["status"] == "failed" and view, timeout_s=30,
                          diagnose=lambda: (node.workload(workload_id), node.log("monitor.log")[-3000:]))
        assert "start_timeout_s" in failed["message"]
        assert node.resources() == before
        wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)


def _process_with(workload_id: str) -> int | None:
    """The pid of the process whose command line names ``workload_id`` (its env file, then its log dir)."""
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any(workload_id in part for part in process.info["cmdline"] or ()):
            return process.info["pid"]
    return None


def test_a_relaunch_whose_model_is_gone_fails_and_releases(tmp_path) -> None:
    model = tmp_path / "model.onnx"
    shutil.copy(YOLO_MODEL, model)
    with running(Node()) as node:
        before = node.resources()
        record = node.submit({**YOLO, "model_path": str(model)}, {"cpu": 1}, workload_type="mlmodel").json()
        assert record["status"] == "running"
        node.stop()
        model.unlink()
        node.start()
        failed = wait_for(lambda: (view := node.workload(record["id"]))["status"] == "failed" and view, timeout_s=30)
        assert "relaunch failed" in failed["message"] and "does not exist" in failed["message"]
        assert node.resources() == before
