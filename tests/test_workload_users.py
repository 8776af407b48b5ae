"""Unprivileged workloads: process workloads run as workloads.user (nobody by default), never as the node's
root unless the config says so, and cannot read the node's private state. Each attack has its control."""
from __future__ import annotations

import os
import pwd

import pytest

from tests.nodes import Node, running, wait_for

NOBODY = pwd.getpwnam("nobody")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a node run as root")


def output_of(node: Node, config: dict) -> tuple[str, dict]:
    record = node.submit(config).json()
    final = wait_for(lambda: (view := node.workload(record["id"]))["status"] in ("completed", "failed") and view)
    return node.api("GET", f"/api/workloads/{record['id']}/logs").json()["stdout"], final


def test_a_process_runs_as_nobody_and_cannot_read_the_node(shared_node: Node) -> None:
    stdout, final = output_of(shared_node, {"command": "sh", "args": ["-c", "id -u; echo ok > here; cat here"]})
    assert final["status"] == "completed" and stdout.split() == [str(NOBODY.pw_uid), "ok"], stdout  # its own dir
    _, peek = output_of(shared_node, {"command": "cat", "args": [str(shared_node.runtime_dir / "node.json")]})
    assert peek["status"] == "failed" and peek["exit_code"] == 1  # the node's private state is not its


def test_a_workload_may_not_ask_for_root(shared_node: Node) -> None:
    answer = shared_node.submit({"command": "id", "user": "root"})
    assert answer.status_code == 400 and "workloads.allow_root" in answer.json()["message"], answer.text
    unknown = shared_node.submit({"command": "id", "user": "no-such-user-here"})
    assert unknown.status_code == 400, unknown.text


def test_allow_root_lets_a_workload_run_as_root() -> None:
    with running(Node(workloads={"allow_root": True})) as node:  # control: the same asks, allowed
        stdout, final = output_of(node, {"command": "sh", "args": ["-c", f"id -u; cat {node.runtime_dir}/node.json"],
                                         "user": "root"})
        assert final["status"] == "completed" and stdout.startswith("0\n"), stdout
        stdout, _ = output_of(node, {"command": "id", "args": ["-u"]})
        assert stdout == f"{NOBODY.pw_uid}\n"  # the default stays unprivileged
