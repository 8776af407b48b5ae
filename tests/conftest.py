"""Fixtures: real nodes, started per test or per module, always torn down with a leftover-process check."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Generator, Iterator

import pytest

from tests.nodes import LIVE, Node, running


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report ends with the logs of the nodes alive at that moment: CI output is all
    there is to read afterwards, and the nodes' folders are removed at teardown."""
    report = yield
    if report.failed and call.when != "teardown":
        for node in LIVE:
            report.sections.append((f"node {node.node_id} logs", node.log_tails()))
    return report
