"""Fixtures shared by every layer: real nodes started per test, per module or shared by a module, a node
pair, and a directory every user can read. Always torn down; a module sets ``NODE`` (Node's arguments) or
``NODE_PAIR`` (``parent`` and ``child`` arguments, ``heartbeat_period_s``) to shape its nodes."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.support.nodes import Node, link, running, wait_for


@pytest.fixture
def start_node() -> Iterator[Callable[..., Node]]:
    """Start nodes with given resources/sections; each is stopped (and checked for leftovers) after the test."""
    started: list[Node] = []

    def start(resources: dict[str, Any] | None = None, **sections: Any) -> Node:
        node = Node(resources, **sections)
        started.append(node)
        return node.start()

    yield start
    try:
        for node in started:
            node.stop()
    finally:
        for node in started:
            node.cleanup()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can read (pytest's tmp_path is private to root): for what workloads, running
    as nobody, must read."""
    folder = Path(tempfile.mkdtemp(prefix="cnet-open-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_node() -> Iterator[Node]:
    """One 8-CPU / 16 GiB node shared by a module's tests."""
    with running(Node()) as node:
        yield node


@pytest.fixture(scope="module")
def node(request: pytest.FixtureRequest) -> Iterator[Node]:
    """One node for a module's tests, made with the module's ``NODE`` arguments (none: the defaults)."""
    with running(Node(**getattr(request.module, "NODE", {}))) as started:
        yield started


@pytest.fixture(scope="module")
def parent_and_child(request: pytest.FixtureRequest) -> Iterator[tuple[Node, Node]]:
    """A parent and its child, made with the module's ``NODE_PAIR``; yielded once the child shows online."""
    shape = getattr(request.module, "NODE_PAIR", {})
    period_s = shape.get("heartbeat_period_s", 1.0)
    parent = link(Node(**shape.get("parent", {})), heartbeat_period_s=period_s)
    child = link(Node(**shape.get("child", {})), parent=parent, heartbeat_period_s=period_s)
    with running(parent, child):
        wait_for(lambda: parent.api("GET", "/api/nodes").json()["children"], timeout_s=30)
        yield parent, child
