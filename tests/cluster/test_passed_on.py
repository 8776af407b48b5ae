"""A forwarded submission refused on the first node of its plan and passed on, across real test hosts: refused
by the node it reached (a working directory only that node's child has) and passed on to the child; or refused
by the child that node ranked first (the directory is only the node's) and run on the node itself. Its sender,
settling a forward that outlasted its timeout, asks the node what became of it: the node must never answer
"never arrived" (404) while it passes the submission on, and must not fence the forward off, since it is placed
(a retry of it is that placement)."""
from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.hosts import make_hosts
from tests.support.nodes import GIB, Node, link, metric, nodes_view, running, wait_for

TOKEN = "passed-on"
SETTLERS = 4  # threads asking, back to back, while each submission is refused and passed on
TRIES = 5


@pytest.fixture(scope="module")
def only_one_has() -> Iterator[Path]:
    """A directory whose subdirectory ``work`` one host hides (an empty tmpfs there) and the other sees."""
    folder = Path(tempfile.mkdtemp(prefix="cnet-only-the-child-"))
    (folder / "work").mkdir()
    for path in (folder, folder / "work"):
        path.chmod(0o755)
    yield folder / "work"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module", params=["refused_here", "refused_by_the_child"])
def pair(request: pytest.FixtureRequest, only_one_has: Path) -> Iterator[tuple[Node, Node, Node]]:
    """The node, its child, and the one of them that can run the submission (the other's host hides the
    directory). Refused by the child: the node ranks it first (``spread``, and the child has more room)."""
    hidden = str(only_one_has.parent)
    with make_hosts(2) as hosts:
        if request.param == "refused_here":
            node = link(Node(token=TOKEN, host=hosts[0].hiding(hidden)), heartbeat_period_s=1.0)
            child = link(Node(token=TOKEN, host=hosts[1]), parent=node, heartbeat_period_s=1.0)
        else:
            node = link(Node({"cpu": 2, "memory": 8 * GIB, "gpu": 0, "storage": 0}, token=TOKEN, host=hosts[0]),
                        heartbeat_period_s=1.0)
            node.config["scheduler"] = {"strategy": "spread"}
            child = link(Node({"cpu": 16, "memory": 8 * GIB, "gpu": 0, "storage": 0}, token=TOKEN,
                              host=hosts[1].hiding(hidden)), parent=node, heartbeat_period_s=1.0)
        with running(node, child):
            wait_for(lambda: nodes_view(node)["children"] == [(child.node_id, "online")], timeout_s=30,
                     diagnose=lambda: nodes_view(node))
            yield node, child, child if request.param == "refused_here" else node


def _forward(workload_id: str, working_dir: Path, attempt: str, settle: bool = False) -> dict[str, Any]:
    """The body a sender node ("tsender") posts: the forward itself, or its settling."""
    return {"id": workload_id, "type": "process",
            "config": {"command": "sleep", "args": ["600"], "working_dir": str(working_dir)},
            "requirements": {"cpu": 0.1},
            "delegation": {"visited": ["tsender"], "attempt": attempt, **({"settle": True} if settle else {})}}


def _settle_until(node: Node, body: dict[str, Any], done: threading.Event, answers: list[int]) -> None:
    while not done.is_set():
        answers.append(node.api("POST", "/api/workloads", json=body, fresh_connection=True).status_code)


def test_a_forward_refused_and_passed_on_is_never_settled_as_absent(
        pair: tuple[Node, Node, Node], only_one_has: Path) -> None:
    """The settlers ask under another attempt, so that those asking before the forward arrives (404, rightly)
    fence off nothing of the forward itself. Per settler, once an answer says the workload is there, none
    may say it is not. Control: the old order (the record or pointer removed in the pool thread that saw the
    refusal, then the serial thread passing it on) gives 404 between 202s, and, refused here, a retry 409
    "already settled as not arrived"."""
    node, child, runner = pair
    placed = []
    try:
        for number in range(TRIES):
            workload_id, attempt = f"passed-on-{number}", f"attempt-{number}"
            done, answers = threading.Event(), [[] for _ in range(SETTLERS)]
            settling = _forward(workload_id, only_one_has, f"settler-{number}", settle=True)
            settlers = [threading.Thread(target=_settle_until, args=(node, settling, done, answers[index]))
                        for index in range(SETTLERS)]
            for settler in settlers:
                settler.start()
            try:
                answer = node.api("POST", "/api/workloads", json=_forward(workload_id, only_one_has, attempt))
            finally:
                done.set()
                for settler in settlers:
                    settler.join(timeout=30)
            assert answer.status_code == 201, answer.text
            placed.append(workload_id)
            assert answer.json()["node"] == runner.node_id, answer.json()
            for seen in answers:
                there = [index for index, status in enumerate(seen) if status != 404]
                assert not there or 404 not in seen[there[0]:], seen
            again = node.api("POST", "/api/workloads", json=_forward(workload_id, only_one_has, attempt))
            assert again.status_code == 201 and again.json()["node"] == runner.node_id, again.text
        # Each was tried first where it cannot run, as meant.
        if runner is child:
            refused_here = [line for line in node.log("scheduler.log").splitlines()
                            if "refused here (config.working_dir" in line and "passed-on-" in line]
            assert len(refused_here) == TRIES, node.log("scheduler.log")[-3000:]
        else:
            fell_back = metric(node, "cnet_delegations_total", outcome="fell_back_local")
            assert fell_back == TRIES, fell_back
    finally:
        for workload_id in placed:
            node.api("DELETE", f"/api/workloads/{workload_id}")
    wait_for(lambda: not node.workloads() and not child.workloads(), timeout_s=30,
             diagnose=lambda: (node.workloads(), child.workloads()))
