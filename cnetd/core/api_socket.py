"""The API's listening socket, handed from the api program that serves to the next one (a reload's standby,
then the new api), so that the port always has a server: the one that starts asks a running one for it
(over a unix socket of that program's, as SCM_RIGHTS) and serves the same socket, whose queue keeps what
arrives meanwhile. When no api program runs, nothing holds the port, and connections are refused at once,
as a dead API should be (a delegating neighbour then tries its next target)."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from pathlib import Path

log = logging.getLogger("api-socket")


def handover_path(folder: Path, pid: int) -> Path:
    """Where api program ``pid`` hands its listening socket over."""
    return folder / f"{pid}.sock"


def serve_handover(listener: socket.socket, folder: Path) -> Path:
    """Hand ``listener`` to whoever connects to this process's hand-over socket (in ``folder``, which is the
    node user's alone), from a daemon thread, for as long as this process lives."""
    path = handover_path(folder, os.getpid())
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)

    def serve() -> None:
        while True:
            connection, _ = server.accept()
            with connection:
                try:
                    socket.send_fds(connection, [b"api"], [listener.fileno()])
                except OSError as exc:
                    log.warning("could not hand the API socket over: %s", exc)
    threading.Thread(target=serve, name="api-socket", daemon=True).start()
    return path


def take_over(folder: Path) -> int | None:
    """The listening socket of an api program that runs now, as a new descriptor of this process; None when
    no running one hands it over (the first start, or one after a crash: the caller binds the port)."""
    for path in sorted(folder.glob("*.sock")):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.connect(str(path))
                _, descriptors, _, _ = socket.recv_fds(connection, 16, 1)
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()  # what an api program that ended left
            continue
        if descriptors:
            os.set_inheritable(descriptors[0], True)
            return descriptors[0]
    return None
