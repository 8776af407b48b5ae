"""A real supervisord of a test's own, for the tests of what cnetd changes in it: stock supervisor's
(``python -m supervisor.supervisord``, the control) or cnetd's (``python -m cnetd.launcher.supervisord``)."""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any, Iterator

from cnetd.common.paths import WORKLOAD_GROUP
from cnetd.core.supervisor_rpc import Supervisor, UnixTransport
from cnetd.launcher.supervisor_conf import rpc_interface
from tests.support.fresh_python import REPO

STOCK, CNETD = "supervisor.supervisord", "cnetd.launcher.supervisord"
START_TIMEOUT_S = 30.0
AT_REST_WAIT_S = 30.0
# Programs in each state a workload's program comes to rest in (stock supervisord's and cnetd's alike): each one's
# command, its startsecs (one that exits within them, with no retries, is FATAL), whether it is started, and the
# state it rests in.
PROGRAMS_AT_REST = {
    "running": ("/bin/sleep 600", "0", True, "RUNNING"),
    "exited": ("/bin/sh -c 'exit 3'", "0", True, "EXITED"),
    "fatal": ("/bin/sh -c 'exit 1'", "1", True, "FATAL"),
    "never-started": ("/bin/sleep 600", "0", False, "STOPPED"),
    "stopped": ("/bin/sleep 600", "0", True, "STOPPED"),  # stopped after its start
}


def write_config(directory: Path, settings: str, sections: str) -> Path:
    """``supervisord.conf`` in ``directory``: its socket, log and pid file there, in the foreground, with
    supervisor's RPC interface, ``settings`` more in ``[supervisord]``, and ``sections`` after."""
    config = directory / "supervisord.conf"
    config.write_text(
        f"[unix_http_server]\nfile={directory}/s.sock\n"
        f"[supervisord]\nlogfile={directory}/supervisord.log\npidfile={directory}/supervisord.pid\n"
        f"childlogdir={directory}\nnodaemon=true\n{settings}"
        f"{rpc_interface('supervisor')}{sections}")
    return config


class RunningSupervisord:
    """``module``'s supervisord on ``config``, answering on its socket."""

    def __init__(self, module: str, config: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", module, "-c", str(config)], cwd=REPO,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = Supervisor(str(config.parent / "s.sock"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.client.answers():
            assert self.process.poll() is None and time.monotonic() < deadline, "supervisord did not start"
            time.sleep(0.05)

    def end(self) -> None:
        self.client.shutdown()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running_supervisord(module: str, config: Path) -> Iterator[RunningSupervisord]:
    """A supervisord for the block's time, shut down with its programs also when the block fails."""
    supervisord = RunningSupervisord(module, config)
    try:
        yield supervisord
    finally:
        supervisord.end()


def workload_infos(proxy: xmlrpc.client.ServerProxy) -> list[dict[str, Any]]:
    """``getAllProcessInfo`` of the workload group's programs."""
    return [info for info in proxy.supervisor.getAllProcessInfo() if info["group"] == WORKLOAD_GROUP]


@contextlib.contextmanager
def programs_at_rest(module: str, directory: Path, namespaces: str = "") -> Iterator[
        tuple[RunningSupervisord, xmlrpc.client.ServerProxy]]:
    """``module``'s supervisord with twiddler's namespace (and ``namespaces``), its workload group holding
    ``PROGRAMS_AT_REST`` in their states; with a proxy of its XML-RPC interface."""
    config = write_config(directory, "",
                          f"{rpc_interface('twiddler')}{namespaces}[group:{WORKLOAD_GROUP}]\nprograms=\n")
    with running_supervisord(module, config) as supervisord:
        proxy = xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport(str(directory / "s.sock")))
        for name, (command, startsecs, started, _) in PROGRAMS_AT_REST.items():
            proxy.twiddler.addProgramToGroup(WORKLOAD_GROUP, name, {
                "command": command, "autostart": "false", "autorestart": "false", "startsecs": startsecs,
                "startretries": "0", "stdout_logfile": "NONE", "stderr_logfile": "NONE"})
            if started:
                supervisord.client.start(f"{WORKLOAD_GROUP}:{name}")
        supervisord.client.stop(f"{WORKLOAD_GROUP}:stopped")
        deadline = time.monotonic() + AT_REST_WAIT_S
        while {info["name"]: info["statename"] for info in workload_infos(proxy)} != \
                {name: state for name, (*_, state) in PROGRAMS_AT_REST.items()}:
            assert time.monotonic() < deadline, f"not at rest: {workload_infos(proxy)}"
            time.sleep(0.05)
        yield supervisord, proxy
