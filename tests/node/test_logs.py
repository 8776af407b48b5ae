"""Node logs follow logging.format: one JSON object (or one text line) per event, naming the node, the
process and, where one applies, the workload."""
from __future__ import annotations

import json

import pytest

from tests.support.nodes import Node, running, wait_for


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_workload_events_name_node_and_workload(log_format: str) -> None:
    node = Node(logging={"level": "info", "format": log_format})
    with running(node):
        workload_id = node.submit({"command": "sleep", "args": ["60"]}).json()["id"]
        node.api("DELETE", f"/api/workloads/{workload_id}")
        lines = wait_for(lambda: [line for line in node.log("scheduler.log").splitlines() if workload_id in line
                                  and "deleted" in line] and node.log("scheduler.log").splitlines())
    about_it = [line for line in lines if workload_id in line]
    assert len(about_it) >= 2  # started, deleted
    for line in about_it:
        if log_format == "json":
            event = json.loads(line)
            assert event["node"] == node.node_id and event["process"] == "scheduler"
            assert event["workload"] == workload_id and event["level"] == "info"
        else:
            assert f"node={node.node_id} process=scheduler workload={workload_id} " in line
