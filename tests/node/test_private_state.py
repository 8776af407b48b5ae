"""Private runtime state: a runtime dir someone else made is refused, links in it are never written
through, and what the node writes there is readable by its user only. Each attack has its control."""
from __future__ import annotations

import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.http_recorder import PROXY_VARIABLES, HttpRecorder
from tests.support.nodes import VENV_BIN, Node, running, wait_for

TOKEN = "private-state-token"
NOBODY = pwd.getpwnam("nobody")


def start_refused(node: Node) -> subprocess.CompletedProcess:
    node.config_path.write_text(yaml.safe_dump(node.config))
    return subprocess.run([str(VENV_BIN / "cnetd"), "-config", str(node.config_path)], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory owned by another user")
def test_a_runtime_dir_made_by_another_user_is_refused() -> None:
    node = Node(token=TOKEN)
    try:
        node.runtime_dir.mkdir()
        os.chown(node.runtime_dir, NOBODY.pw_uid, NOBODY.pw_gid)  # a local user got there first
        result = start_refused(node)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert str(node.runtime_dir) in result.stderr and "owned by nobody" in result.stderr
        assert not (node.runtime_dir / "node.json").exists()
        os.chown(node.runtime_dir, 0, 0)  # control: the same dir, owned by the node's user, is taken
        node.start()
        node.stop()
    finally:
        node.cleanup()


def test_a_link_planted_in_the_runtime_dir_is_not_written_through(tmp_path: Path) -> None:
    bait = tmp_path / "theirs.txt"
    bait.write_text("the attacker's file")
    node = Node(token=TOKEN)
    node.runtime_dir.mkdir(mode=0o700)
    (node.runtime_dir / "node.json").symlink_to(bait)
    (node.runtime_dir / "supervisord.conf").symlink_to(bait)
    with running(node):
        assert bait.read_text() == "the attacker's file"  # the token never went there
        for name in ("node.json", "supervisord.conf"):
            info = os.lstat(node.runtime_dir / name)
            assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
        assert TOKEN in (node.runtime_dir / "node.json").read_text()  # control: it was written, privately


def test_everything_the_node_writes_is_its_users_only() -> None:
    with running(Node(token=TOKEN)) as node:
        record = node.submit({"command": "sh", "args": ["-c", "echo hello; sleep 60"]}).json()
        wait_for(lambda: node.api("GET", f"/api/workloads/{record['id']}/logs").json()["stdout"] == "hello\n")
        assert stat.S_IMODE(os.stat(node.runtime_dir).st_mode) == 0o700
        open_to_others = []
        for path in node.runtime_dir.rglob("*"):
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if not path.is_symlink() and mode & 0o077:
                open_to_others.append(f"{path.relative_to(node.runtime_dir)} {oct(mode)}")
        assert not open_to_others, open_to_others
        names = {path.name for path in node.runtime_dir.rglob("*")}
        assert {"node.json", "data.mdb", "supervisor.sock", "scheduler.sock", "api.log",
                f"wl-{record['id']}.stdout.log"} <= names  # control: the check saw them all


def test_a_workload_gets_its_own_environment_not_the_nodes() -> None:
    node = Node(token=TOKEN)
    node.environment = {"CNET_TOKEN": TOKEN, "NODE_ONLY_SECRET": "do-not-leak"}  # as an operator may run it
    with running(node):
        record = node.submit({"command": "printenv", "env": {"MINE": "mine"}}).json()
        wait_for(lambda: node.workload(record["id"])["status"] == "completed")
        printed = node.api("GET", f"/api/workloads/{record['id']}/logs").json()["stdout"]
        assert TOKEN not in printed and "do-not-leak" not in printed and "PROMETHEUS" not in printed, printed
        variables = dict(line.split("=", 1) for line in printed.splitlines())
        assert variables["MINE"] == "mine" and variables["CNET_WORKLOAD_ID"] == record["id"]  # control
        assert set(variables) <= {"PATH", "HOME", "LANG", "MINE", "CNET_WORKLOAD_ID", "CNET_NODE_ID",
                                  "CNET_RUNTIME_DIR", "CUDA_VISIBLE_DEVICES", "PWD"}, variables


def test_a_site_proxy_in_the_nodes_environment_gets_none_of_its_calls() -> None:
    """An operator behind a site's proxy starts the node with http_proxy and its kin set. The node's calls to
    itself (the launcher's wait for its API, ``cnetd health``) and to its services (the monitor's health
    checks) go straight: a proxy cannot reach 127.0.0.1 of this machine, and would get the cluster's token.
    The unit tests (tests/unit/test_no_env_proxy.py) show this recorder sees calls that do go through it."""
    with HttpRecorder(status=502, body=b"proxy cannot reach it") as proxy:
        node = Node(token=TOKEN, health={"interval_s": 0.5})
        proxies = {variable: proxy.url for variable in PROXY_VARIABLES}
        node.environment = proxies
        with running(node):
            record = node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv").json()
            assert record["status"] == "running", record  # it passed the monitor's health check
            health = subprocess.run([str(VENV_BIN / "cnetd"), "health", "-config", str(node.config_path)],
                                    env={**os.environ, **proxies}, capture_output=True, text=True, timeout=30)
            assert health.returncode == 0 and node.node_id in health.stdout, health
        assert proxy.seen == []
