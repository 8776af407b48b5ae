"""Nodes of another protocol major (docs/skew-policy.md), on one node: a child's registration and a peer of
another major are refused and marked "incompatible version" (in /api/nodes, `cnet nodes` and a metric),
never silent and never a crash loop; another minor is worked with. Node-to-node requests of another major
are refused with 409 naming both versions; a user's request, which says no version, passes."""
from __future__ import annotations

import http.server
import subprocess
import threading
from typing import Iterator

import orjson
import pytest
import requests

from cnetd import __version__
from cnetd.common.protocol import PROTOCOL_VERSION
from tests.support.nodes import VENV_BIN, Node, free_port, running, wait_for

pytestmark = pytest.mark.node


class FakePeer:
    """Just enough of a node for discovery to resolve it: /api/health saying a protocol version."""

    def __init__(self, protocol: str, agent: str) -> None:
        self.port = free_port()
        health = {"status": "ok", "node": f"peer-{protocol.replace('.', '-')}", "version": agent,
                  "protocol": protocol, "boot_id": "b", "api_url": f"http://127.0.0.1:{self.port}",
                  "mesh_endpoint": f"tcp://127.0.0.1:{free_port()}"}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = orjson.dumps(health)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.node_id = health["node"]
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def peers() -> Iterator[tuple[FakePeer, FakePeer]]:
    other_major, other_minor = FakePeer("2.0", "3.0.0"), FakePeer("1.9", "0.9.0")
    yield other_major, other_minor
    other_major.close()
    other_minor.close()


@pytest.fixture(scope="module")
def skewed(peers: tuple[FakePeer, FakePeer]) -> Iterator[Node]:
    node = Node(peers={"enabled": True, "addresses": [f"127.0.0.1:{peer.port}" for peer in peers]},
                mesh={"heartbeat_period_s": 1.0})
    with running(node):
        yield node


def neighbour(node: Node, node_id: str) -> dict | None:
    view = node.api("GET", "/api/nodes").json()
    return next((entry for entry in [view["parent"], *view["children"], *view["peers"]]
                 if entry and entry["id"] == node_id), None)


def test_a_peer_of_another_major_is_marked_and_one_of_another_minor_is_not(skewed: Node,
                                                                           peers: tuple[FakePeer, FakePeer]) -> None:
    other_major, other_minor = peers
    marked = wait_for(lambda: neighbour(skewed, other_major.node_id), timeout_s=15)
    assert marked["status"] == "incompatible", marked
    assert f"speaks protocol {PROTOCOL_VERSION} (agent {__version__})" in marked["incompatible"]
    assert "other protocol 2.0 (agent 3.0.0)" in marked["incompatible"]
    # The control: a peer of the same major and another minor is an ordinary peer (offline: it never beats).
    assert wait_for(lambda: neighbour(skewed, other_minor.node_id), timeout_s=15)["status"] == "offline"
    metrics = skewed.api("GET", "/metrics").text
    assert 'cnet_neighbours_incompatible_total{role="peer"} 1.0' in metrics
    shown = subprocess.run([str(VENV_BIN / "cnet"), "--addr", skewed.url, "nodes"], capture_output=True, text=True,
                           timeout=30, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    line = next(row for row in shown.stdout.splitlines() if other_major.node_id in row)
    assert "incompatible version" in line, shown.stdout
    assert skewed.api("GET", "/api/health").json()["protocol"] == PROTOCOL_VERSION
    # Not a crash loop: the register, whose discovery thread found it, keeps running (same pid).
    register_pid = skewed.program_pid("register")
    wait_for(lambda: "RUNNING" in skewed.supervisorctl("status", "register"), timeout_s=10)
    assert skewed.program_pid("register") == register_pid


def test_a_registration_of_another_major_is_refused_naming_both_versions(skewed: Node) -> None:
    child = {"node_id": "old-child", "api_url": "http://127.0.0.1:1", "mesh_endpoint": "tcp://127.0.0.1:2"}
    refused = requests.post(f"{skewed.url}/api/nodes/register", json=child, timeout=10,
                            headers={"X-CNET-Protocol": "2.3", "X-CNET-Agent": "4.0.0"})
    assert refused.status_code == 409 and refused.json()["error"] == "incompatible_version", refused.text
    assert "protocol 2.3 (agent 4.0.0)" in refused.json()["message"] and PROTOCOL_VERSION in refused.json()["message"]
    assert neighbour(skewed, "old-child")["status"] == "incompatible"
    minor = requests.post(f"{skewed.url}/api/nodes/register", json={**child, "node_id": "newer-child"}, timeout=10,
                          headers={"X-CNET-Protocol": "1.7", "X-CNET-Agent": "0.9.0"})
    assert minor.status_code == 200, minor.text  # the control: another minor registers
    unversioned = requests.post(f"{skewed.url}/api/nodes/register", json={**child, "node_id": "older-child"},
                                timeout=10)
    assert unversioned.status_code == 200, unversioned.text  # a node from before versions: protocol 1.0
    for node_id in ("old-child", "newer-child", "older-child"):
        assert skewed.api("DELETE", f"/api/nodes/{node_id}").status_code == 200


def test_node_requests_of_another_major_are_refused_and_users_requests_pass(skewed: Node) -> None:
    forward = {"type": "process", "config": {"command": "true"}}
    refused = requests.post(f"{skewed.url}/api/workloads", json=forward, timeout=10,
                            headers={"X-CNET-Protocol": "2.0"})
    assert refused.status_code == 409 and refused.json()["error"] == "incompatible_version"
    assert skewed.api("GET", "/api/workloads").json()["count"] == 0  # nothing ran
    answer = skewed.api("GET", "/api/health")
    assert answer.headers["X-CNET-Protocol"] == PROTOCOL_VERSION and answer.headers["X-CNET-Agent"] == __version__
