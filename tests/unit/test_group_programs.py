"""A program's add to and removal from its group (twiddler's ``addProgramToGroup`` and ``removeProcessFromGroup``;
cnetd's supervisord does both at the cost of that program alone, ``cnetd.launcher.group_programs``): the same
answers as twiddler's own on stock supervisor, on real supervisords with programs in each state a workload's
program comes to rest in."""
from __future__ import annotations

import xmlrpc.client
from pathlib import Path

import pytest
from supervisor.xmlrpc import Faults

from cnetd.common.paths import WORKLOAD_GROUP
from tests.support.supervisord import CNETD, PROGRAMS_AT_REST, STOCK, programs_at_rest, workload_infos

SLEEP = {"command": "/bin/sleep 600", "autorestart": "false", "startsecs": "0", "stdout_logfile": "NONE",
         "stderr_logfile": "NONE"}


def _configured(proxy: xmlrpc.client.ServerProxy) -> list[str]:
    """The names of the workload group's program configs, sorted."""
    return sorted(config["name"] for config in proxy.supervisor.getAllConfigInfo() if config["group"] == WORKLOAD_GROUP)


def _refused(call: object, *args: object) -> int:
    with pytest.raises(xmlrpc.client.Fault) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.faultCode


@pytest.mark.parametrize("module", [STOCK, CNETD])
def test_a_program_at_rest_leaves_its_group_whole_and_a_running_or_unknown_one_is_refused(
        module: str, tmp_path: Path) -> None:
    with programs_at_rest(module, tmp_path) as (supervisord, proxy):
        remove = proxy.twiddler.removeProcessFromGroup
        assert _refused(remove, WORKLOAD_GROUP, "running") == Faults.STILL_RUNNING
        assert _refused(remove, WORKLOAD_GROUP, "no-such-program") == Faults.BAD_NAME
        resting = [name for name, (*_, state) in PROGRAMS_AT_REST.items() if state != "RUNNING"]
        for name in resting:
            assert remove(WORKLOAD_GROUP, name) is True
        assert [(info["name"], info["statename"]) for info in workload_infos(proxy)] == [("running", "RUNNING")]
        assert _configured(proxy) == ["running"]  # each one's config left the group with it
        for name in resting:  # and each name is free again
            assert supervisord.client.add_and_start(name, SLEEP)["statename"] == "RUNNING"
        assert sorted(info["name"] for info in workload_infos(proxy)) == _configured(proxy) == sorted(
            ["running", *resting])


@pytest.mark.parametrize("module", [STOCK, CNETD])
def test_an_add_of_a_name_the_group_holds_or_of_no_command_is_refused_and_changes_nothing(
        module: str, tmp_path: Path) -> None:
    with programs_at_rest(module, tmp_path) as (_, proxy):
        add = proxy.twiddler.addProgramToGroup
        before = workload_infos(proxy)
        for name in PROGRAMS_AT_REST:
            assert _refused(add, WORKLOAD_GROUP, name, SLEEP) == Faults.BAD_NAME
        assert _refused(add, WORKLOAD_GROUP, "no-command", {"autostart": "false"}) == Faults.INCORRECT_PARAMETERS
        assert _refused(add, "no-such-group", "new", SLEEP) == Faults.BAD_NAME
        assert [{**info, "now": 0} for info in workload_infos(proxy)] == [{**info, "now": 0} for info in before]
        assert _configured(proxy) == sorted(PROGRAMS_AT_REST)
