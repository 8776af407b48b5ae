"""Wall-clock steps on a parent (libfaketime, ``tests/support/clocks.py``; its monotonic clock left alone, as when NTP
steps a real machine's clock), on real test hosts. What a node decides by the passing of time (is a neighbour
online, has a child been silent long enough to forget, is a fence old enough to drop) does not move with its wall
clock: a clock step forward forgets no live child and drops no fence early, and one back keeps no dead child
online."""
from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import pytest

from tests.support.clocks import step_clock, with_own_clock
from tests.support.hosts import make_hosts
from tests.support.nodes import Node, kill_node, link, nodes_view, running, wait_for

TOKEN = "clock-steps"
FORGET_AFTER_S = 600.0


@pytest.fixture
def pair() -> Iterator[tuple[Node, Node]]:
    with make_hosts(2) as hosts:
        parent = with_own_clock(link(Node(token=TOKEN, host=hosts[0]), heartbeat_period_s=1.0))
        parent.config["mesh"]["forget_after_s"] = FORGET_AFTER_S
        child = link(Node(token=TOKEN, host=hosts[1]), parent=parent, heartbeat_period_s=1.0)
        with running(parent, child):
            wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "online")], timeout_s=30,
                     diagnose=lambda: nodes_view(parent))
            yield parent, child


def test_a_clock_step_forward_past_forget_after_forgets_no_live_child(pair: tuple[Node, Node]) -> None:
    """The child's heartbeats pause for two seconds (its register stopped) across the step, so the parent's
    sweep surely looks at a heartbeat stamped before it: by the wall clock, an hour ago."""
    parent, child = pair
    with child.paused("register"):
        step_clock(parent, int(FORGET_AFTER_S) * 6)
        listed = []
        deadline = time.monotonic() + 3  # the step is read within a second; the parent sweeps each second
        while time.monotonic() < deadline:
            listed.append([node_id for node_id, _ in nodes_view(parent)["children"]])
            time.sleep(0.2)
    assert all(children == [child.node_id] for children in listed), listed
    wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "online")], timeout_s=15,
             diagnose=lambda: nodes_view(parent))


def test_a_child_that_dies_goes_offline_though_its_parents_clock_stepped_back(pair: tuple[Node, Node]) -> None:
    """The child's last heartbeat was stamped before the step: by the wall clock it came an hour from now."""
    parent, child = pair
    kill_node(child)
    step_clock(parent, -3600)
    wait_for(lambda: nodes_view(parent)["children"] == [(child.node_id, "offline")], timeout_s=20,
             diagnose=lambda: nodes_view(parent))


def test_a_clock_step_forward_drops_no_fence_early() -> None:
    """A forward settled as never arrived is fenced off for an hour: should it still arrive (held up in a slow
    link, a stopped API), it is refused. A wall clock stepped two hours forward must not age the fence."""
    node = with_own_clock(Node(token=TOKEN))
    forward = {"id": "late", "type": "process", "config": {"command": "sleep", "args": ["60"]},
               "requirements": {"cpu": 0.1}, "delegation": {"visited": ["tsender"], "attempt": "attempt-1"}}
    with running(node):
        settle = {**forward, "delegation": {**forward["delegation"], "settle": True}}
        assert node.api("POST", "/api/workloads", json=settle).status_code == 404  # never arrived: fenced now
        step_clock(node, 2 * 3600)
        time.sleep(1.5)  # read by the node's processes
        scheduler = node.program_pid("scheduler")
        os.kill(scheduler, signal.SIGKILL)  # a scheduler starting afresh prunes old fences in its first round
        wait_for(lambda: node.program_pid("scheduler") not in (0, scheduler), timeout_s=30)
        wait_for(lambda: node.api("GET", "/api/workloads").status_code == 200, timeout_s=30)
        time.sleep(3)  # a few rounds
        late = node.api("POST", "/api/workloads", json=forward)
        assert late.status_code == 409 and late.json()["error"] == "delegation_refused", late.text

