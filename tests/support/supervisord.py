"""A real supervisord of a test's own, for the tests of what cnetd changes in it: stock supervisor's
(``python -m supervisor.supervisord``, the control) or cnetd's (``python -m cnetd.launcher.supervisord``)."""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from cnetd.core.supervisor_rpc import Supervisor
from tests.support.fresh_python import REPO

STOCK, CNETD = "supervisor.supervisord", "cnetd.launcher.supervisord"
START_TIMEOUT_S = 30.0


def write_config(directory: Path, settings: str, sections: str) -> Path:
    """``supervisord.conf`` in ``directory``: its socket, log and pid file there, in the foreground, with
    supervisor's RPC interface, ``settings`` more in ``[supervisord]``, and ``sections`` after."""
    config = directory / "supervisord.conf"
    config.write_text(
        f"[unix_http_server]\nfile={directory}/s.sock\n"
        f"[supervisord]\nlogfile={directory}/supervisord.log\npidfile={directory}/supervisord.pid\n"
        f"childlogdir={directory}\nnodaemon=true\n{settings}"
        "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        f"{sections}")
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
