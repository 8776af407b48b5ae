"""supervisord's ``cnet.getGroupStates`` (``cnetd.launcher.group_states``) against ``getAllProcessInfo``, on a real
supervisord with programs in each state a workload's program comes to rest in; and ``Supervisor.workload_infos``
through it, and through a supervisord without the namespace (one that a node of an older version started)."""
from __future__ import annotations

import xmlrpc.client
from pathlib import Path
from typing import Iterator

import orjson
import pytest

from cnetd.common.paths import WORKLOAD_GROUP
from cnetd.launcher.supervisor_conf import rpc_interface
from tests.support.supervisord import CNETD, PROGRAMS_AT_REST, RunningSupervisord, programs_at_rest, workload_infos

STATE_FIELDS = ("name", "group", "start", "stop", "state", "statename", "spawnerr", "exitstatus", "pid")


@pytest.fixture
def with_namespace(tmp_path: Path) -> Iterator[tuple[RunningSupervisord, xmlrpc.client.ServerProxy]]:
    with programs_at_rest(CNETD, tmp_path, rpc_interface("cnet")) as running:
        yield running


@pytest.fixture
def without_namespace(tmp_path: Path) -> Iterator[tuple[RunningSupervisord, xmlrpc.client.ServerProxy]]:
    with programs_at_rest(CNETD, tmp_path) as running:
        yield running


def test_group_states_are_the_state_fields_of_each_programs_process_info(
        with_namespace: tuple[RunningSupervisord, xmlrpc.client.ServerProxy]) -> None:
    _, proxy = with_namespace
    states = orjson.loads(proxy.cnet.getGroupStates(WORKLOAD_GROUP))
    assert states == [{field: info[field] for field in STATE_FIELDS} for info in workload_infos(proxy)]
    by_name = {state["name"]: state for state in states}  # what makes each state tell itself apart
    assert by_name["running"]["pid"] > 0 and by_name["running"]["start"] > 0
    assert by_name["exited"]["exitstatus"] == 3 and by_name["fatal"]["spawnerr"]
    assert by_name["stopped"]["stop"] >= by_name["stopped"]["start"] > 0 == by_name["never-started"]["start"]
    assert orjson.loads(proxy.cnet.getGroupStates("no-such-group")) == []


@pytest.mark.parametrize("supervisord", ["with_namespace", "without_namespace"])
def test_workload_infos_hold_every_workloads_state_with_or_without_the_namespace(
        supervisord: str, request: pytest.FixtureRequest) -> None:
    running, proxy = request.getfixturevalue(supervisord)
    infos = running.client.workload_infos()
    assert {program: {field: info[field] for field in STATE_FIELDS} for program, info in infos.items()} == \
        {f"{WORKLOAD_GROUP}:{info['name']}": {field: info[field] for field in STATE_FIELDS}
         for info in workload_infos(proxy)}
    assert len(infos) == len(PROGRAMS_AT_REST)
