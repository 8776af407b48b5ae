"""A program's removal from its group (twiddler's ``removeProcessFromGroup``; cnetd's supervisord removes it at the
cost of that program alone, ``cnetd.launcher.program_removal``): the same answers as twiddler's own on stock
supervisor, on real supervisords with programs in each state a workload's program comes to rest in."""
from __future__ import annotations

import xmlrpc.client
from pathlib import Path

import pytest

from cnetd.common.paths import WORKLOAD_GROUP
from cnetd.core.supervisor_rpc import Faults
from tests.support.supervisord import CNETD, PROGRAMS_AT_REST, STOCK, programs_at_rest, workload_infos

SLEEP = {"command": "/bin/sleep 600", "autorestart": "false", "startsecs": "0", "stdout_logfile": "NONE",
         "stderr_logfile": "NONE"}


@pytest.mark.parametrize("module", [STOCK, CNETD])
def test_a_program_at_rest_leaves_its_group_whole_and_a_running_or_unknown_one_is_refused(
        module: str, tmp_path: Path) -> None:
    with programs_at_rest(module, tmp_path) as (supervisord, proxy):
        for name, fault in (("running", Faults.STILL_RUNNING), ("no-such-program", Faults.BAD_NAME)):
            with pytest.raises(xmlrpc.client.Fault) as refused:
                proxy.twiddler.removeProcessFromGroup(WORKLOAD_GROUP, name)
            assert refused.value.faultCode == fault
        resting = [name for name, (*_, state) in PROGRAMS_AT_REST.items() if state != "RUNNING"]
        for name in resting:
            assert proxy.twiddler.removeProcessFromGroup(WORKLOAD_GROUP, name) is True
        assert [(info["name"], info["statename"]) for info in workload_infos(proxy)] == [("running", "RUNNING")]
        # Each name is free again: its config left the group with it (twiddler refuses a name that one holds).
        for name in resting:
            assert supervisord.client.add_and_start(name, SLEEP)["statename"] == "RUNNING"
        assert sorted(info["name"] for info in workload_infos(proxy)) == sorted(["running", *resting])
