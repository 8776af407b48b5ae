"""Heartbeat fan-in at a parent with thousands of children, and its sender check.

- 2,000 simulated children (tests/support/simulated_children.py: sockets in helper processes speaking the
  protocol as a child does) register, send their heartbeats up, and are all online; /api/nodes pages through
  them with a summary first. The parent holds one connection per child and no socket of its own per child:
  its register's descriptors grow by about one per child while they are connected, and come back down when
  they leave.
- Children that vanish without closing their connections (the parent's host cut off) are not held for
  ever: the parent sends no PINGs (at thousands of children their timers cost its IO thread most of its
  time), and the kernel ends each connection whose heartbeats go unacknowledged for 15 periods.
- A heartbeat sent up in another child's name (signed with the sender's own key) is refused and counted; the
  control: the same sender in its own name is heard. A correctly signed heartbeat of a node that did not
  register to send up is not taken either.
- A frame larger than any message, sent up by anyone who can reach the mesh port (no registration, no key):
  ZeroMQ ends the connection at the frame's header, so the register never holds it, and goes on hearing its
  children.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import orjson
import psutil
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from cnetd.common.httpclient import call, node_headers
from mesh.fanin import SUBSCRIBE, signed
from mesh.messages import HEARTBEAT_TOPIC, Heartbeat
from mesh.liveness import PUBLISHER_UNACKNOWLEDGED_PERIODS
from tests.support.heartbeats import heartbeat
from tests.support.hosts import make_hosts
from tests.support.nodes import VENV_BIN, Node, free_port, link, running, wait_for
from tests.support.simulated_children import SimulatedChildren

pytestmark = pytest.mark.cluster
TOKEN = "fan-in"
PERIOD_S = 1.0
CHILDREN = 2000
FLOOD_BYTES = 128 * 2**20  # a frame 2,048 times the largest message (mesh.messages.MAX_MESSAGE_BYTES)


@pytest.fixture(scope="module")
def parent() -> Iterator[Node]:
    with running(link(Node(token=TOKEN), heartbeat_period_s=PERIOD_S)) as node:
        yield node


def register_fds(node: Node) -> int:
    return psutil.Process(node.program_pid("register")).num_fds()


def all_children(node: Node) -> list[dict[str, Any]]:
    """Every child, page by page (at most 1,000 a page)."""
    children, after = [], ""
    while True:
        page = node.api("GET", f"/api/nodes?limit=1000&after={after}").json()
        children += page["children"]
        if page["next"] is None:
            return children
        after = page["next"]


def test_2000_children_are_all_online_paged_and_leave_no_descriptor_behind(parent: Node) -> None:
    before = register_fds(parent)
    with SimulatedChildren(parent.url, CHILDREN, PERIOD_S, token=TOKEN) as children:
        assert children.wait_registered() == CHILDREN
        wait_for(lambda: parent.api("GET", "/api/nodes").json()["summary"]["children_online"] == CHILDREN,
                 timeout_s=60, diagnose=lambda: parent.api("GET", "/api/nodes").json()["summary"])
        first = parent.api("GET", "/api/nodes").json()
        assert first["summary"]["children"] == CHILDREN and len(first["children"]) == 100 and first["next"]
        listed = all_children(parent)
        assert len({child["id"] for child in listed}) == CHILDREN
        shown = {every: orjson.loads(subprocess.run(
            [str(VENV_BIN / "cnet"), "nodes", *every, "-o", "json"], capture_output=True, check=True, timeout=60,
            env={**os.environ, "CNET_ADDR": parent.url, "CNET_TOKEN": TOKEN}).stdout) for every in ((), ("--all",))}
        assert len(shown[()]["children"]) == 100 and shown[()]["next"]  # the first page alone
        assert {child["id"] for child in shown[("--all",)]["children"]} == {child["id"] for child in listed}
        assert shown[("--all",)]["next"] is None
        assert all(child["status"] == "online" for child in listed), [c for c in listed if c["status"] != "online"][:3]
        connected = register_fds(parent)
        # One connection per child, and no socket (with its own descriptors) per child as before fan-in.
        assert CHILDREN * 0.9 <= connected - before <= CHILDREN * 1.2, (before, connected)
        subtree = parent.api("GET", "/api/nodes").json()["self"]
        assert subtree["status"] == "online"
    wait_for(lambda: register_fds(parent) <= before + 5, timeout_s=30,
             diagnose=lambda: (before, register_fds(parent)))
    wait_for(lambda: parent.api("GET", "/api/nodes").json()["summary"]["children_online"] == 0, timeout_s=30)
    for child in all_children(parent):
        parent.api("DELETE", f"/api/nodes/{child['id']}")
    assert parent.api("GET", "/api/nodes").json()["summary"]["children"] == 0


def test_connections_of_children_cut_off_end_at_the_parent_without_pings() -> None:
    period_s, count = 0.3, 40
    with make_hosts(1) as hosts, running(link(Node(token=TOKEN, host=hosts[0]), heartbeat_period_s=period_s)) as parent:
        before = register_fds(parent)
        with SimulatedChildren(parent.url, count, period_s, token=TOKEN) as children:
            assert children.wait_registered() == count
            wait_for(lambda: parent.api("GET", "/api/nodes").json()["summary"]["children_online"] == count,
                     timeout_s=30, diagnose=lambda: parent.api("GET", "/api/nodes").json()["summary"])
            connected = register_fds(parent)
            assert connected - before >= count * 0.9, (before, connected)
            hosts[0].cut()  # nothing in or out: no FIN or RST reaches the parent, its sends go unanswered
            try:
                # Ended after 15 periods unacknowledged (4.5 s here): the bound leaves room for a loaded machine.
                wait_for(lambda: register_fds(parent) <= before + 5,
                         timeout_s=PUBLISHER_UNACKNOWLEDGED_PERIODS * period_s + 20,
                         diagnose=lambda: (before, connected, register_fds(parent)))
            finally:
                hosts[0].heal()


def test_a_bad_page_is_a_400(parent: Node) -> None:
    for query in ("limit=0", "limit=1001", "limit=x", "limit=1&limit=2", "after=" + "x" * 300):
        answer = parent.api("GET", f"/api/nodes?{query}")
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request", (query, answer.text)


def beat(node_id: str, cpu: float, seq: int) -> Heartbeat:
    return heartbeat(node_id, {"cpu": cpu}, seq)


def register(parent: Node, node_id: str, fan_in: bool) -> bytes | None:
    registration = {"node_id": node_id, "api_url": "http://127.0.0.1:9",
                    "mesh_endpoint": f"tcp://127.0.0.1:{free_port()}", "fan_in": fan_in}
    status, answer = call("POST", f"{parent.url}/api/nodes/register", registration, headers=node_headers(TOKEN))
    assert status == 200, answer
    return bytes.fromhex(answer["heartbeat_key"]) if fan_in else None


def child_view(parent: Node, node_id: str) -> dict[str, Any]:
    return next(child for child in parent.api("GET", "/api/nodes").json()["children"] if child["id"] == node_id)


def dropped(parent: Node, reason: str) -> float:
    line = next((line for line in parent.api("GET", "/metrics").text.splitlines()
                 if line.startswith(f'cnet_heartbeats_dropped_total{{reason="{reason}"}}')), None)
    return float(line.split()[-1]) if line else 0.0


def uplink_to(parent: Node) -> zmq.Socket:
    """An XSUB connected to the parent's mesh port, as a child's uplink is: what it sends goes up."""
    uplink = zmq.Context.instance().socket(zmq.XSUB)
    uplink.setsockopt(zmq.LINGER, 0)
    uplink.send(SUBSCRIBE + HEARTBEAT_TOPIC)
    uplink.connect(f"tcp://127.0.0.1:{parent.mesh_port}")
    return uplink


def peak_memory_bytes(pid: int) -> int:
    """The most memory process ``pid`` has held so far (its VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) * 1024


def test_a_heartbeat_sent_up_in_another_childs_name_is_refused(parent: Node) -> None:
    honest_key, mallory_key = register(parent, "honest", True), register(parent, "mallory", True)
    legacy_key = register(parent, "legacy", True)
    register(parent, "legacy", False)  # registered again, to be subscribed to: what it sends up no longer counts
    uplink = uplink_to(parent)
    try:
        uplink.send_multipart(signed(beat("honest", 1.0, 1).encode(), honest_key))
        wait_for(lambda: child_view(parent, "honest")["status"] == "online", timeout_s=10)
        wrong_before = dropped(parent, "wrong_sender")
        seq = iter(range(2, 10_000))
        # In honest's name, signed with mallory's own key: refused, so honest never shows a million free cpus.
        wait_for(lambda: uplink.send_multipart(signed(beat("honest", 1e6, next(seq)).encode(), mallory_key)) or
                 dropped(parent, "wrong_sender") > wrong_before, timeout_s=10, interval_s=0.2)
        assert child_view(parent, "honest")["resources"]["available"]["cpu"] == 1.0
        # Signed right, by a node now registered without fan-in (it is subscribed to): not taken either.
        unknown_before = dropped(parent, "unknown_sender")
        wait_for(lambda: uplink.send_multipart(signed(beat("legacy", 1e6, next(seq)).encode(), legacy_key)) or
                 dropped(parent, "unknown_sender") > unknown_before, timeout_s=10, interval_s=0.2)
        assert child_view(parent, "legacy")["status"] == "offline"
        # The control: mallory in its own name is heard.
        wait_for(lambda: uplink.send_multipart(signed(beat("mallory", 1e6, next(seq)).encode(), mallory_key)) or
                 child_view(parent, "mallory")["status"] == "online", timeout_s=10, interval_s=0.2)
        assert child_view(parent, "mallory")["resources"]["available"]["cpu"] == 1e6
    finally:
        uplink.close()
        for node_id in ("honest", "mallory", "legacy"):
            parent.api("DELETE", f"/api/nodes/{node_id}")


def test_a_frame_too_large_for_any_message_ends_its_connection_before_it_is_held(parent: Node) -> None:
    register_pid = parent.program_pid("register")
    peak_before, malformed_before = peak_memory_bytes(register_pid), dropped(parent, "malformed")
    flood = uplink_to(parent)  # nobody's: no registration, no key
    ended = flood.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        flood.send_multipart([HEARTBEAT_TOPIC, b" " * FLOOD_BYTES, b"0" * 64])
        # Ended at the frame's header; without the cap, read whole and dropped by the decoder as malformed.
        wait_for(lambda: ended.poll(0) or dropped(parent, "malformed") > malformed_before, timeout_s=60, interval_s=0.2)
        assert dropped(parent, "malformed") == malformed_before  # it never reached the register's code
        assert recv_monitor_message(ended)["event"] == zmq.EVENT_DISCONNECTED
        grown = peak_memory_bytes(register_pid) - peak_before
        assert grown < FLOOD_BYTES // 8, grown  # measured: 40 KB (without the cap: 268 MB, 2x the frame)
    finally:
        flood.disable_monitor()
        ended.close()
        flood.close()
    # The register goes on: the same process hears a child.
    key = register(parent, "after-flood", True)
    uplink = uplink_to(parent)
    try:
        wait_for(lambda: uplink.send_multipart(signed(beat("after-flood", 1.0, 1).encode(), key)) or
                 child_view(parent, "after-flood")["status"] == "online", timeout_s=10, interval_s=0.2)
        assert parent.program_pid("register") == register_pid
    finally:
        uplink.close()
        parent.api("DELETE", "/api/nodes/after-flood")
