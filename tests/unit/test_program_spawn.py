"""supervisord as cnetd runs it starts a program with ``subprocess`` (``cnetd.launcher.program_spawn``): the same
program as stock supervisord makes it (user, groups, directory, umask, environment, descriptors, process
group), and already executed when ``startProcess`` returns.

Each case runs a real supervisord, stock (``python -m supervisor.supervisord``, the control) and cnetd's, on
one config: ``minfds`` at the descriptor limit, so that stock supervisord's copy spends a while closing
descriptors before it executes the program."""
from __future__ import annotations

import os
import resource
import signal
import time
import xmlrpc.client
from pathlib import Path
from typing import Any, Iterator

import pytest

from cnetd.core.supervisor_rpc import not_yet_executed
from tests.support.supervisord import CNETD, STOCK, RunningSupervisord, running_supervisord, write_config

SIGPIPE_BIT = 1 << (signal.SIGPIPE - 1)
PROBE_COMMAND = b"/bin/sleep\x0060\x00"
ROOT_ONLY = pytest.mark.skipif(os.getuid() != 0, reason="a program's user change needs supervisord as root")


def write_probe_config(directory: Path) -> Path:
    return write_config(
        directory, f"minfds={resource.getrlimit(resource.RLIMIT_NOFILE)[1]}\n",
        # LC_ALL=C: the program opens no locale file, which its descriptors would show
        "[program:probe]\ncommand=/bin/sleep 60\ndirectory=/\numask=027\nuser=nobody\n"
        'environment=PROBE="yes",LC_ALL="C"\nautostart=false\nautorestart=false\nstartsecs=0\n')


def start_probe(supervisord: RunningSupervisord) -> tuple[int, bool]:
    """Start the program: its pid, and whether it was still supervisord's copy when the start returned."""
    started, info = supervisord.client._proxy.system.multicall([
        {"methodName": "supervisor.startProcess", "params": ["probe", False]},
        {"methodName": "supervisor.getProcessInfo", "params": ["probe"]}])
    copy = not_yet_executed(info["pid"])
    assert started is True, started
    return info["pid"], copy


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    yield write_probe_config(tmp_path)


def environment_once_asleep(pid: int) -> dict[str, str]:
    """The program's environment, read once it sleeps in its own command: an exec under way shows no
    environment yet, and the loader holds libraries open for a moment."""
    deadline = time.monotonic() + 10
    while True:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        asleep = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "S"
        if Path(f"/proc/{pid}/cmdline").read_bytes() == PROBE_COMMAND and environ and asleep:
            return dict(item.split("=", 1) for item in environ.decode().split("\0") if item)
        assert time.monotonic() < deadline, "the program never ran its command"
        time.sleep(0.001)


def what_it_runs_as(pid: int) -> dict[str, Any]:
    environment = environment_once_asleep(pid)
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    descriptors = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}").split(":")[0] for fd in os.listdir(f"/proc/{pid}/fd")}
    return {
        "uid": status["Uid"].split(), "gid": status["Gid"].split(), "groups": status["Groups"].split(),
        "umask": status["Umask"].strip(), "directory": os.readlink(f"/proc/{pid}/cwd"),
        "process_group_leader": os.getpgid(pid) == pid, "session": os.getsid(pid) == os.getsid(0),
        "environment": environment, "descriptors": descriptors,
        "sigpipe_ignored": bool(int(status["SigIgn"], 16) & SIGPIPE_BIT),
    }


@ROOT_ONLY
def test_a_program_is_made_as_stock_supervisord_makes_it(config: Path) -> None:
    seen = {}
    for module in (STOCK, CNETD):
        with running_supervisord(module, config) as supervisord:
            pid, _ = start_probe(supervisord)
            seen[module] = what_it_runs_as(pid)
            supervisord.client.stop("probe")
    stock, cnetd = seen[STOCK], seen[CNETD]
    assert stock["uid"] == ["65534"] * 4 and stock["umask"] == "0027" and stock["environment"]["PROBE"] == "yes"
    assert stock["environment"]["SUPERVISOR_PROCESS_NAME"] == "probe" and stock["environment"]["PATH"] == os.environ["PATH"]
    assert stock["descriptors"] == {0: "pipe", 1: "pipe", 2: "pipe"}
    # The one difference, on purpose, and the sign that cnetd's spawn made it: SIGPIPE's default action.
    assert stock.pop("sigpipe_ignored") and not cnetd.pop("sigpipe_ignored")
    assert cnetd == stock


def test_a_program_has_executed_when_its_start_returns_and_under_stock_supervisord_it_may_not(config: Path) -> None:
    config.write_text(config.read_text().replace("user=nobody\n", ""))
    with running_supervisord(CNETD, config) as supervisord:
        for _ in range(5):
            assert start_probe(supervisord)[1] is False
            supervisord.client.stop("probe")
    with running_supervisord(STOCK, config) as supervisord:  # the control: its copy closes descriptors first
        copies = []
        for _ in range(5):
            copies.append(start_probe(supervisord)[1])
            supervisord.client.stop("probe")
        assert any(copies)


def test_a_directory_that_cannot_be_entered_is_a_spawn_error_at_once(config: Path) -> None:
    config.write_text(config.read_text().replace("user=nobody\n", "").replace("directory=/\n",
                                                                                f"directory={config.parent}/gone\n"))
    with running_supervisord(CNETD, config) as supervisord:
        with pytest.raises(Exception, match="SPAWN_ERROR"):
            supervisord.client._proxy.supervisor.startProcess("probe", False)
        assert "couldn't start probe" in (config.parent / "supervisord.log").read_text()


def test_a_restart_of_a_program_that_cannot_start_or_is_gone_is_an_outcome_not_an_error(config: Path) -> None:
    config.write_text(config.read_text().replace("user=nobody\n", "startretries=0\n").replace(  # as a workload's
        "directory=/\n", f"directory={config.parent}/gone\n"))
    with running_supervisord(CNETD, config) as supervisord:
        for program in ("probe", "removed-meanwhile"):  # the control: a plain start raises for both
            with pytest.raises(xmlrpc.client.Fault):
                supervisord.client.start(program)
        supervisord.client.restart("probe")
        supervisord.client.restart("removed-meanwhile")
        deadline = time.monotonic() + 10
        while supervisord.client.info("probe")["statename"] != "FATAL":  # whose event the monitor settles
            assert time.monotonic() < deadline
            time.sleep(0.05)
