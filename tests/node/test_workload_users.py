"""Unprivileged workloads: process workloads and services run as workloads.user (nobody by default), never as the node's
root unless the config says so, and cannot read the node's private state. Each attack has its control."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import uuid
import xmlrpc.client
from pathlib import Path

import psutil
import pytest
from supervisor.xmlrpc import SupervisorTransport

from tests.support.assets import YOLO_MODEL
from tests.support.nodes import Node, running, wait_for
from tests.support.services import predict

NOBODY = pwd.getpwnam("nobody")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a node run as root")



def output_of(node: Node, config: dict) -> tuple[str, dict]:
    record = node.submit(config).json()
    final = wait_for(lambda: (view := node.workload(record["id"]))["status"] in ("completed", "failed") and view)
    return node.api("GET", f"/api/workloads/{record['id']}/logs").json()["stdout"], final


def test_a_process_runs_as_nobody_and_cannot_read_the_node(shared_node: Node) -> None:
    stdout, final = output_of(shared_node, {"command": "sh", "args": [
        "-c", "grep -E '^(Uid|Gid|Groups):' /proc/self/status; echo ok > here; cat here"]})
    # Real, effective, saved and filesystem ids all nobody's, with its groups only; and it writes its own dir.
    groups = " ".join(map(str, os.getgrouplist(NOBODY.pw_name, NOBODY.pw_gid)))
    assert final["status"] == "completed" and stdout.split("\n")[:4] == [
        "Uid:\t" + "\t".join([str(NOBODY.pw_uid)] * 4), "Gid:\t" + "\t".join([str(NOBODY.pw_gid)] * 4),
        f"Groups:\t{groups} ", "ok"], stdout
    _, peek = output_of(shared_node, {"command": "cat", "args": [str(shared_node.runtime_dir / "node.json")]})
    assert peek["status"] == "failed" and peek["exit_code"] == 1  # the node's private state is not its


def test_a_workload_may_not_ask_for_root(shared_node: Node) -> None:
    answer = shared_node.submit({"command": "id", "user": "root"})
    assert answer.status_code == 422 and "workloads.allow_root" in answer.json()["message"], answer.text
    unknown = shared_node.submit({"command": "id", "user": "no-such-user-here"})
    assert unknown.status_code == 422, unknown.text


def test_allow_root_lets_a_workload_run_as_root() -> None:
    with running(Node(workloads={"allow_root": True})) as node:  # control: the same asks, allowed
        stdout, final = output_of(node, {"command": "sh", "args": ["-c", f"id -u; cat {node.runtime_dir}/node.json"],
                                         "user": "root"})
        assert final["status"] == "completed" and stdout.startswith("0\n"), stdout
        stdout, _ = output_of(node, {"command": "id", "args": ["-u"]})
        assert stdout == f"{NOBODY.pw_uid}\n"  # the default stays unprivileged


def test_services_run_as_nobody_and_get_a_copy_of_a_model_only_root_can_read(shared_node: Node, tmp_path) -> None:
    private_model = tmp_path / "model.onnx"  # tmp_path is root's, 0700: nobody cannot reach it
    shutil.copy(YOLO_MODEL, private_model)
    runs = {}
    for name, model in (("readable", YOLO_MODEL), ("private", str(private_model))):
        record = shared_node.submit({"model_type": "yolo", "model_path": model}, {"cpu": 1}, workload_type="mlmodel").json()
        assert record["status"] == "running", record
        runs[name] = (record, psutil.Process(record["process_pid"]))
    opencv = shared_node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv").json()
    try:
        for record, process in runs.values():
            assert process.uids().real == NOBODY.pw_uid and predict(record["endpoint"])["count"] == 1
        assert psutil.Process(opencv["process_pid"]).uids().real == NOBODY.pw_uid
        readable, private = (process.cmdline() for _, process in runs.values())
        assert readable[readable.index("--model") + 1] == YOLO_MODEL  # control: a model nobody can read stays put
        copy = Path(private[private.index("--model") + 1])
        assert copy.parent == shared_node.workload_dir(runs["private"][0]["id"]) and copy.stat().st_uid == NOBODY.pw_uid
    finally:
        for record in (*(record for record, _ in runs.values()), opencv):
            shared_node.api("DELETE", f"/api/workloads/{record['id']}")


def test_secrets_never_appear_in_a_command_line(start_node, open_dir: Path) -> None:
    node: Node = start_node(gateway={"allowed_roots": [str(open_dir)]})
    password, secret_key = f"hunter2-{uuid.uuid4().hex}", f"gateway-secret-{uuid.uuid4().hex}"
    worker = node.submit({"command": "sh", "args": ["-c", "echo $DB_PASSWORD; sleep 60"],
                                 "env": {"DB_PASSWORD": password}}).json()
    gateway = node.submit({"base_path": str(open_dir), "access_key": "AKCNET", "secret_key": secret_key},
                                 {"cpu": 0.1}, workload_type="datagateway").json()
    gateway = node.workload(gateway["id"])  # running: its secret is in use
    try:
        assert gateway["status"] == "running", gateway
        # Control: the values do reach the programs that need them.
        wait_for(lambda: password in node.api("GET", f"/api/workloads/{worker['id']}/logs").json()["stdout"])
        assert psutil.Process(gateway["process_pid"]).environ()["CNET_GATEWAY_SECRET_KEY"] == secret_key
        transport = SupervisorTransport(None, None, f"unix://{node.runtime_dir / 'supervisor.sock'}")
        configs = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor.getAllConfigInfo()
        programs = [config["command"] for config in configs]
        assert any(worker["id"] in command for command in programs)
        command_lines = [" ".join(process.info["cmdline"] or []) for process in psutil.process_iter(["cmdline"])]
        for shown in (*programs, *command_lines):
            assert password not in shown and secret_key not in shown, shown
    finally:
        for record in (worker, gateway):
            node.api("DELETE", f"/api/workloads/{record['id']}")


def test_uploaded_data_is_readable_by_workloads_and_no_other_user(shared_node: Node) -> None:
    answer = shared_node.api("POST", "/api/workloads", data={"type": "data"},
                             files=[("file", ("secret-plans.txt", b"plans\n"))]).json()
    stored = Path(answer["config"]["path"]) / "secret-plans.txt"
    try:
        stdout, final = output_of(shared_node, {"command": "cat", "args": [str(stored)]})  # as nobody
        assert final["status"] == "completed" and stdout == "plans\n", final  # control: workloads read it
        as_daemon = subprocess.run(["setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups", "cat", str(stored)],
                                   capture_output=True, text=True)
        assert as_daemon.returncode != 0 and "Permission denied" in as_daemon.stderr  # another user does not
    finally:
        shared_node.api("DELETE", f"/api/workloads/{answer['id']}")
