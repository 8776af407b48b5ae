"""Authentication: with auth.token set, every request that changes something needs the bearer token."""
from __future__ import annotations

import subprocess

import pytest
import requests
import yaml

from tests.support.nodes import VENV_BIN, Node, link, nodes_view, running, wait_for

TOKEN = "correct-horse-battery-staple"


NODE = {"token": TOKEN}


def mutations(node: Node) -> list[tuple[str, str, dict]]:
    workload = node.submit({"command": "sleep", "args": ["60"]}).json()["id"]
    return [
        ("POST", "/api/workloads", {"json": {"type": "process", "config": {"command": "true"}}}),
        ("POST", "/api/workloads", {"data": {"type": "data"}, "files": [("file", ("f.txt", b"x"))]}),
        ("POST", f"/api/workloads/{workload}/stop", {}),
        ("DELETE", f"/api/workloads/{workload}", {}),
        ("POST", "/api/nodes/register", {"json": {"node_id": "kid", "api_url": "http://127.0.0.1:1",
                                                  "mesh_endpoint": "tcp://127.0.0.1:2"}}),
        ("DELETE", "/api/data/nope", {}),
        ("DELETE", "/api/nodes/nope", {}),
    ]


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_mutations_without_the_right_token_are_401_and_change_nothing(node: Node, header: str | None) -> None:
    for method, path, kwargs in mutations(node):
        before = (node.resources(), node.api("GET", "/api/workloads").json()["count"])
        headers = {"Authorization": header} if header else {}
        answer = requests.request(method, node.url + path, headers=headers, timeout=30, **kwargs)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["error"] == "unauthorized" and "auth.token" in answer.json()["message"]
        assert (node.resources(), node.api("GET", "/api/workloads").json()["count"]) == before


def test_mutations_with_the_token_work(node: Node) -> None:
    for method, path, kwargs in mutations(node):
        answer = requests.request(method, node.url + path, headers={"Authorization": f"Bearer {TOKEN}"},
                                  timeout=30, **kwargs)
        assert answer.status_code in (200, 201, 404), (method, path, answer.text)  # 404: …/nope


def test_signatures_that_are_not_ascii_digits_and_hex_are_401(node: Node) -> None:
    """A signed artifact link's ``expires`` and ``signature``, and a stream's signature header, come from anyone:
    unicode digits (``²`` passes ``str.isdigit`` and then fails ``int``) and characters beyond ASCII (which
    ``hmac.compare_digest`` refuses to compare as str) are a 401 like any wrong signature. Both were a 500."""
    artifact = f"{node.url}/api/artifacts/{'a' * 64}"
    for query in ({"expires": "\u00b2", "signature": "x"}, {"expires": "99999999999", "signature": "\u00e9"}):
        answer = requests.get(artifact, params=query, timeout=10)
        assert answer.status_code == 401 and answer.json()["error"] == "unauthorized", (query, answer.text)
    detector = node.submit({"command": "sleep", "args": ["60"]}).json()["id"]
    answer = requests.post(f"{node.url}/api/workloads/{detector}/predict", data=b"x", timeout=10,
                           headers={"Content-Type": "image/jpeg", "X-CNET-Stream": "cam",
                                    "X-CNET-Stream-Signature": "\u00e9".encode("latin-1")})
    assert answer.status_code == 401 and answer.json()["error"] == "unauthorized", answer.text


def test_open_reads_stay_open(node: Node) -> None:
    for path in ("/api/health", "/", "/ui/js/api.js", "/api/openapi.json", "/metrics"):
        assert requests.get(node.url + path, timeout=10).status_code == 200, path


def test_reading_secrets_needs_the_token(node: Node) -> None:
    record = node.submit({"command": "sh", "args": ["-c", "printenv DB_PASSWORD; sleep 60"],
                          "env": {"DB_PASSWORD": "hunter2"}}).json()
    wait_for(lambda: node.api("GET", f"/api/workloads/{record['id']}/logs").json()["stdout"] == "hunter2\n")
    for path in (f"/api/workloads/{record['id']}", f"/api/workloads/{record['id']}/logs", "/api/workloads",
                 "/api/workloads?ids=" + record["id"], "/api/data", "/api/nodes", "/api/resources"):
        answer = requests.get(node.url + path, timeout=10)
        assert answer.status_code == 401 and "hunter2" not in answer.text, (path, answer.text)
        # control: the same read with the token
        assert requests.get(node.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).ok, path
    assert "hunter2" in node.api("GET", f"/api/workloads/{record['id']}").text
    node.api("DELETE", f"/api/workloads/{record['id']}")


def test_open_reads_can_be_narrowed() -> None:
    with running(Node(token=TOKEN, auth={"open_reads": ["/api/health"]})) as node:
        assert requests.get(node.url + "/api/health", timeout=10).status_code == 200
        assert requests.get(node.url + "/metrics", timeout=10).status_code == 401


def test_a_reachable_node_without_a_token_refuses_to_start(tmp_path) -> None:
    config = tmp_path / "open.yaml"
    config.write_text(yaml.safe_dump({"agent": {"node_id": "open", "address": "0.0.0.0", "port": 1,
                                                "runtime_dir": str(tmp_path / "rt")}}))
    result = subprocess.run([str(VENV_BIN / "cnetd"), "-config", str(config)], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "auth.token" in result.stderr and "auth.insecure" in result.stderr


def test_delegation_and_registration_carry_the_token() -> None:
    parent = link(Node({"cpu": 1, "memory": 2**30, "gpu": 0, "storage": 0}, token=TOKEN), heartbeat_period_s=1.0)
    child = link(Node(token=TOKEN), parent=parent, heartbeat_period_s=1.0)
    with running(parent, child):
        wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "online")], timeout_s=15)
        answer = parent.submit({"command": "sleep", "args": ["60"]}, {"cpu": 2})
        assert answer.status_code == 201 and answer.json()["node"] == child.node_id
        assert parent.api("POST", f"/api/workloads/{answer.json()['id']}/stop").json()["status"] == "stopped"
        assert parent.api("DELETE", f"/api/workloads/{answer.json()['id']}").status_code == 200
