"""Every test's plumbing: the shared fixtures (``tests.support.fixtures``), a marker per layer (the folder a
test lives in: ``pytest -m unit`` runs in seconds), and node logs on a failed test's report."""
from __future__ import annotations

from pathlib import Path
from typing import Generator

import pytest

from tests.support.nodes import LIVE

pytest_plugins = ("tests.support.fixtures",)
LAYERS = ("unit", "service", "node", "cluster", "browser", "containers", "gpu")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = Path(str(item.path)).parent.name
        if layer in LAYERS:
            item.add_marker(layer)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report ends with the logs of the nodes alive at that moment: CI output is all
    there is to read afterwards, and the nodes' folders are removed at teardown."""
    report = yield
    if report.failed and call.when != "teardown":
        for node in LIVE:
            report.sections.append((f"node {node.node_id} logs", node.log_tails()))
    return report
