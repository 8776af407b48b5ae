"""Mesh CURVE (mesh.curve, from `cnetd keygen`): nodes holding the cluster key exchange heartbeats; a
subscriber without it reads nothing and a publisher without it cannot feed a node heartbeats. Each refusal
has a control with the right key, so the checks can fail."""
from __future__ import annotations

import subprocess
import time
from typing import Iterator

import pytest
import yaml
import zmq

from cnetd.core.config import ConfigError, parse_config
from mesh import curve
from mesh.messages import HEARTBEAT_TOPIC, Heartbeat
from tests.support.nodes import VENV_BIN, Node, free_port, link, nodes_view, running, wait_for

PERIOD_S = 0.5
LISTEN_S = 5.0  # ten heartbeat periods


def keygen() -> dict[str, str]:
    output = subprocess.run([str(VENV_BIN / "cnetd"), "keygen"], capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(output)["mesh"]["curve"]


CLUSTER = keygen()


@pytest.fixture(scope="module")
def curve_pair() -> Iterator[tuple[Node, Node]]:
    parent = link(Node(), heartbeat_period_s=PERIOD_S)
    child = link(Node(), parent=parent, heartbeat_period_s=PERIOD_S)
    for node in (parent, child):
        node.config["mesh"]["curve"] = CLUSTER
    with running(parent, child):
        wait_for(lambda: (child.node_id, "online") in nodes_view(parent)["children"], timeout_s=30)
        yield parent, child


def subscriber(endpoint: str, keys: curve.ClusterKeys | None, server_key: bytes | None = None) -> zmq.Socket:
    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_TOPIC)
    if keys is not None:
        curve.join(socket, keys)
        if server_key is not None:  # knows the (public) cluster key, but holds another pair
            socket.curve_serverkey = server_key
    socket.connect(endpoint)
    return socket


def heartbeats_within(socket: zmq.Socket, seconds: float) -> int:
    received, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        if socket.poll(100):
            socket.recv_multipart()
            received += 1
    socket.close()
    return received


def test_nodes_with_the_cluster_key_see_each_other(curve_pair: tuple[Node, Node]) -> None:
    parent, child = curve_pair  # the fixture waited for the parent to see the child; now the other way round
    wait_for(lambda: nodes_view(child)["parent"] == (parent.node_id, "online"), timeout_s=30,
             diagnose=lambda: nodes_view(child))
    child_beat = parent.api("GET", "/api/nodes").json()["children"][0]
    assert child_beat["resources"]["capacity"]["cpu"] == child.config["resources"]["cpu"]


def test_only_holders_of_the_cluster_key_can_read(curve_pair: tuple[Node, Node]) -> None:
    parent, _ = curve_pair
    endpoint = f"tcp://127.0.0.1:{parent.mesh_port}"
    keyed = curve.ClusterKeys.parse(CLUSTER["public_key"], CLUSTER["secret_key"])
    assert heartbeats_within(subscriber(endpoint, keyed), LISTEN_S) > 0  # control: the right key reads
    assert heartbeats_within(subscriber(endpoint, None), LISTEN_S) == 0  # plain ZeroMQ
    assert heartbeats_within(subscriber(endpoint, curve.ClusterKeys.generate(), keyed.public), LISTEN_S) == 0


@pytest.mark.parametrize("publisher_keys, accepted", [("cluster", True), ("other", False), (None, False)])
def test_a_publisher_without_the_key_cannot_inject(curve_pair: tuple[Node, Node], publisher_keys: str | None,
                                                    accepted: bool) -> None:
    parent, _ = curve_pair
    port = free_port()
    publisher = zmq.Context.instance().socket(zmq.PUB)
    publisher.setsockopt(zmq.LINGER, 0)
    if publisher_keys is not None:
        pair = CLUSTER if publisher_keys == "cluster" else keygen()
        curve.serve(publisher, curve.ClusterKeys.parse(pair["public_key"], pair["secret_key"]))
    publisher.bind(f"tcp://127.0.0.1:{port}")
    node_id = f"forger-{publisher_keys}"
    mesh_endpoint = f"tcp://127.0.0.1:{port}"
    try:
        registration = {"node_id": node_id, "api_url": "http://127.0.0.1:9", "mesh_endpoint": mesh_endpoint}
        assert parent.api("POST", "/api/nodes/register", json=registration).status_code == 200
        forged = Heartbeat(node_id=node_id, seq=1, boot_id="b", api_url=registration["api_url"],
                           mesh_endpoint=mesh_endpoint, capacity={"cpu": 64.0}, allocated={"cpu": 0.0},
                           available={"cpu": 64.0}, workloads={}, ledger_version=1,
                           subtree={"nodes": 1, "online": 1, "capacity": {"cpu": 64.0}, "allocated": {"cpu": 0.0},
                                    "available_max": {"cpu": 64.0}})
        deadline, seen = time.monotonic() + LISTEN_S, False
        while time.monotonic() < deadline and not seen:
            publisher.send_multipart(forged.encode())
            seen = (node_id, "online") in nodes_view(parent)["children"]
            time.sleep(0.1)
        assert seen == accepted
    finally:
        publisher.close()


def test_tap_with_the_config_reads_the_mesh(curve_pair: tuple[Node, Node]) -> None:
    parent, _ = curve_pair
    tap = subprocess.run([str(VENV_BIN / "cnet-tap"), f"tcp://127.0.0.1:{parent.mesh_port}", "--count", "2",
                          "--config", str(parent.config_path)], capture_output=True, text=True, timeout=30)
    assert tap.returncode == 0 and tap.stdout.count(parent.node_id) == 2, tap.stderr


@pytest.mark.parametrize("curve_section, words", [
    ({"public_key": "short", "secret_key": "short"}, "40 Z85 characters"),
    ({"public_key": CLUSTER["public_key"], "secret_key": keygen()["secret_key"]}, "not one pair"),
    ({"public_key": CLUSTER["public_key"]}, "40 Z85 characters"),
    ({"secret": "x"}, "public_key and secret_key"),
])
def test_bad_keys_are_config_errors(curve_section: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_config({"agent": {"node_id": "n"}, "resources": {"cpu": 1, "memory": 1, "gpu": 0, "storage": 0},
                      "mesh": {"curve": curve_section}})
