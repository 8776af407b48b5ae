"""Requests between node processes (``mesh.rpc``): each thread keeps its connection to the server, and a server
that is down, restarts, dies while handling, or answers late is told apart as before. The server runs in a
process of its own, killed and started again as supervisord does with the scheduler."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from cnetd.common.errors import SchedulerUnavailable
from mesh import rpc

REPO = Path(__file__).resolve().parents[2]
SERVER = """
import os, sys, time
from mesh.rpc import RpcServer
RpcServer(sys.argv[1], {"pid": lambda args: os.getpid(), "die": lambda args: os._exit(1),
                        "wait": lambda args: time.sleep(args["s"]) or "waited"}).run(lambda: None, 60)
"""


class Server:
    """The server process at ``endpoint``, started (again) on demand."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.endpoint = f"ipc://{socket_path}"
        self.process: subprocess.Popen | None = None

    def start(self) -> int:
        self.process = subprocess.Popen([sys.executable, "-c", SERVER, self.endpoint], cwd=REPO)
        return self.process.pid

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def connections(self) -> int:
        """Connections the server holds on its socket: the unix sockets at its path but the bound one (psutil
        gives unix sockets no status to tell it by)."""
        assert self.process is not None
        return sum(1 for each in psutil.Process(self.process.pid).net_connections("unix")
                   if each.laddr == str(self.socket_path)) - 1


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    served = Server(tmp_path / "rpc.sock")
    served.start()
    yield served
    if served.process is not None and served.process.poll() is None:
        served.kill()


def ask(server: Server, op: str, timeout_s: float = 10.0, **args: object) -> object:
    return rpc.request(server.endpoint, op, args, timeout_s)


def test_the_requests_of_one_thread_share_one_connection(server: Server) -> None:
    """Control: the same requests from threads of their own make a connection each."""
    assert len({ask(server, "pid") for _ in range(5)}) == 1
    assert server.connections() == 1
    asked, done = threading.Barrier(4), threading.Event()

    def ask_and_hold() -> None:  # a thread's connection goes with it
        ask(server, "pid")
        asked.wait()
        done.wait()
    threads = [threading.Thread(target=ask_and_hold) for _ in range(3)]
    for thread in threads:
        thread.start()
    asked.wait(timeout=30)
    try:
        assert server.connections() == 4
    finally:
        done.set()
        for thread in threads:
            thread.join()


def drop_heard(server: Server) -> None:
    """Wait until this thread's channel has heard its connection drop. A request sent before that goes down the
    dead connection, and is rightly answered "outcome not known" (the client cannot tell that from a server that
    died while handling it): a loaded machine's ZeroMQ I/O thread may take a while to read the EOF."""
    assert rpc._CHANNELS.by_endpoint[server.endpoint].monitor.poll(10_000)


def test_a_server_that_restarts_between_requests_is_reached_again(server: Server) -> None:
    """The connection kept from before each restart reports its drop; the next request is not misled by it."""
    for _ in range(3):
        before = ask(server, "pid")
        server.kill()
        drop_heard(server)
        started = server.start()
        assert ask(server, "pid") == started != before


def test_threads_that_end_with_their_channels_open_leave_the_process_connected(server: Server) -> None:
    """A thread's channels close with it, their monitors stopped first. Closed otherwise (by the garbage collector,
    monitor reader and socket in either order), a socket still being reaped whose connection then drops blocks
    ZeroMQ's I/O thread for good, and the process's every socket with it: here, no new connection within
    CONNECT_TIMEOUT_S. Control: without ``_Channel.__del__`` this fails within a few rounds."""
    for _ in range(15):
        asking = [threading.Thread(target=ask, args=(server, "pid")) for _ in range(8)]
        for thread in asking:
            thread.start()
        for thread in asking:
            thread.join()
        server.kill()
        started = server.start()
        with ThreadPoolExecutor(1) as fresh_thread:  # a channel of its own: none kept from before the restart
            assert fresh_thread.submit(ask, server, "pid").result() == started


def test_a_server_that_dies_while_handling_may_have_acted(server: Server) -> None:
    with pytest.raises(SchedulerUnavailable, match="ended while handling 'die'") as died:
        ask(server, "die")
    assert died.value.details["delivered"] is True
    started = server.start()
    assert ask(server, "pid") == started


def test_no_server_means_nothing_was_delivered(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.kill()
    monkeypatch.setattr(rpc, "CONNECT_TIMEOUT_S", 0.5)
    with pytest.raises(SchedulerUnavailable, match="not running") as down:
        ask(server, "pid")
    assert down.value.details["delivered"] is False


def test_a_late_reply_is_never_taken_for_the_next_request(server: Server) -> None:
    with pytest.raises(SchedulerUnavailable, match="did not answer 'wait'") as late:
        ask(server, "wait", timeout_s=0.3, s=1.0)
    assert late.value.details["delivered"] is True
    assert ask(server, "pid") == server.process.pid  # not the "waited" that then came for the first
    assert ask(server, "wait", s=0.0) == "waited"
