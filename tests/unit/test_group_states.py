"""supervisord's ``cnet.getGroupStates`` (``cnetd.launcher.group_states``) against ``getAllProcessInfo``, on a real
supervisord with programs in each state a workload's program comes to rest in; and ``Supervisor.workload_infos``
through it, and through a supervisord without the namespace (one that a node of an older version started)."""
from __future__ import annotations

import time
import xmlrpc.client
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest

from cnetd.common.paths import WORKLOAD_GROUP
from cnetd.core.supervisor_rpc import UnixTransport
from tests.support.supervisord import CNETD, RunningSupervisord, running_supervisord, write_config

TWIDDLER = "[rpcinterface:twiddler]\nsupervisor.rpcinterface_factory = " \
           "supervisor_twiddler.rpcinterface:make_twiddler_rpcinterface\n"
CNET = "[rpcinterface:cnet]\nsupervisor.rpcinterface_factory = cnetd.launcher.group_states:make_cnet_rpcinterface\n"
STATE_FIELDS = ("name", "group", "start", "stop", "state", "statename", "spawnerr", "exitstatus", "pid")
# Each program's command, its directory (one that is not there fails its spawn), whether it is started, and the
# state it comes to rest in.
PROGRAMS = {
    "running": ("/bin/sleep 600", "/", True, "RUNNING"),
    "exited": ("/bin/sh -c 'exit 3'", "/", True, "EXITED"),
    "fatal": ("/bin/sleep 600", "/nonexistent-directory", True, "FATAL"),
    "never-started": ("/bin/sleep 600", "/", False, "STOPPED"),
    "stopped": ("/bin/sleep 600", "/", True, "STOPPED"),  # stopped after its start
}
WAIT_S = 30.0


def _programs_at_rest(directory: Path, namespaces: str) -> Iterator[tuple[RunningSupervisord, xmlrpc.client.ServerProxy]]:
    config = write_config(directory, "", f"{TWIDDLER}{namespaces}[group:{WORKLOAD_GROUP}]\nprograms=\n")
    with running_supervisord(CNETD, config) as supervisord:
        proxy = xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport(str(directory / "s.sock")))
        for name, (command, working_directory, started, _) in PROGRAMS.items():
            proxy.twiddler.addProgramToGroup(WORKLOAD_GROUP, name, {
                "command": command, "directory": working_directory, "autostart": "false", "autorestart": "false", "startsecs": "0",
                "startretries": "0", "stdout_logfile": "NONE", "stderr_logfile": "NONE"})
            if started:
                supervisord.client.restart(f"{WORKLOAD_GROUP}:{name}")  # one that cannot spawn goes FATAL
        supervisord.client.stop(f"{WORKLOAD_GROUP}:stopped")
        deadline = time.monotonic() + WAIT_S
        while {info["name"]: info["statename"] for info in _infos(proxy)} != \
                {name: state for name, (*_, state) in PROGRAMS.items()}:
            assert time.monotonic() < deadline, f"not at rest: {_infos(proxy)}"
            time.sleep(0.05)
        yield supervisord, proxy


def _infos(proxy: xmlrpc.client.ServerProxy) -> list[dict[str, Any]]:
    return [info for info in proxy.supervisor.getAllProcessInfo() if info["group"] == WORKLOAD_GROUP]


@pytest.fixture
def with_namespace(tmp_path: Path) -> Iterator[tuple[RunningSupervisord, xmlrpc.client.ServerProxy]]:
    yield from _programs_at_rest(tmp_path, CNET)


@pytest.fixture
def without_namespace(tmp_path: Path) -> Iterator[tuple[RunningSupervisord, xmlrpc.client.ServerProxy]]:
    yield from _programs_at_rest(tmp_path, "")


def test_group_states_are_the_state_fields_of_each_programs_process_info(
        with_namespace: tuple[RunningSupervisord, xmlrpc.client.ServerProxy]) -> None:
    _, proxy = with_namespace
    states = orjson.loads(proxy.cnet.getGroupStates(WORKLOAD_GROUP))
    assert states == [{field: info[field] for field in STATE_FIELDS} for info in _infos(proxy)]
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
        {f"{WORKLOAD_GROUP}:{info['name']}": {field: info[field] for field in STATE_FIELDS} for info in _infos(proxy)}
    assert len(infos) == len(PROGRAMS)
