"""supervisord's start of a program, made with ``subprocess`` (vfork and exec) instead of its fork of itself.

supervisor forks supervisord, a Python process of about 23 MiB, and the copy prepares the program in Python
(process group, standard descriptors, a close of every descriptor up to ``minfds``, user, environment,
directory, umask) before it executes the command. Measured here (strace of supervisord): the fork took
0.6 ms, and supervisord's next Python line ran 1.25 ms after it returned, its pages copied one by one as
both copies wrote to them. Until the copy executed, a SIGTERM sent to the program reached supervisord's own
handler in the copy and was lost.

Here ``Subprocess.spawn`` runs as before up to its fork, and the fork is ``subprocess.Popen`` with the same
preparation: Python's C child code, vfork where no user change is asked, and ``close_range``. Popen returns
once the command has executed, so a program's pid is never supervisord's copy, and a failure to execute (a
directory or user that cannot be taken) is supervisord's spawn error for that program at once, where the copy
wrote it to the program's log and exited 127. One thing differs on purpose: Popen gives a program the default
action of SIGPIPE and SIGXFSZ, which supervisord's copy left ignored as Python sets them.

``startProcess`` of a workload's command, 100 starts one after another: median 2.28 to 2.97 ms with stock
supervisord, 1.21 to 1.29 with this; supervisord's CPU per start and stop 5.1 to 6.4 ms, 3.4 to 4.4 with this.
(A workload's user is switched by its setpriv wrapper, not by ``user=``: Python does not vfork a child that
changes user.)
"""
from __future__ import annotations

import os
import pwd
import subprocess
from typing import Any

from supervisor.options import ServerOptions
from supervisor.process import Subprocess

SUPERVISOR_REAPS = -1  # the returncode a spawning Popen is left with: supervisord reaps its programs itself


def program_environment(process: Subprocess) -> dict[str, str]:
    """The environment supervisor gives a program: supervisord's own, its SUPERVISOR_* variables, and the
    program's ``environment=``."""
    config = process.config
    env = {**os.environ, "SUPERVISOR_ENABLED": "1", "SUPERVISOR_PROCESS_NAME": config.name}
    server_url = config.serverurl if config.serverurl is not None else config.options.serverurl
    if server_url:
        env["SUPERVISOR_SERVER_URL"] = server_url
    if process.group:
        env["SUPERVISOR_GROUP_NAME"] = process.group.config.name
    return {**env, **(config.environment or {})}


def identity(uid: int | None) -> dict[str, Any]:
    """Popen's arguments for the user a program runs as (supervisor's ``drop_privileges``: that user, its
    primary group, and every group that lists it); none when it is supervisord's own."""
    if uid is None or uid == os.getuid():
        return {}
    record = pwd.getpwuid(uid)
    return {"user": uid, "group": record.pw_gid, "extra_groups": os.getgrouplist(record.pw_name, record.pw_gid)}


def start_program(process: Subprocess) -> int:
    """Execute a program that supervisord has made its pipes for; its pid."""
    config, pipes = process.config, process.pipes
    filename, argv = process.get_execv_args()
    child = subprocess.Popen(
        argv, executable=filename, env=program_environment(process), cwd=config.directory,
        stdin=pipes["child_stdin"], stdout=pipes["child_stdout"],
        stderr=subprocess.STDOUT if config.redirect_stderr else pipes["child_stderr"],
        close_fds=True, process_group=0, umask=-1 if config.umask is None else config.umask,
        **identity(config.uid))
    child.returncode = SUPERVISOR_REAPS  # else Popen's finalizer would wait for the pid, and reap it first
    return child.pid


_spawning: Subprocess | None = None  # the program whose spawn is under way in supervisord's (one) thread
_spawn = Subprocess.spawn
_fork = ServerOptions.fork


def _spawn_noting_the_program(process: Subprocess) -> int | None:
    global _spawning
    _spawning = process
    try:
        return _spawn(process)
    finally:
        _spawning = None


def _fork_or_start(options: ServerOptions) -> int:
    """``ServerOptions.fork``, which supervisor calls only to spawn a program: the program started, its pid
    (never 0, so supervisor goes on as the parent). An OSError is supervisor's spawn error for it."""
    if _spawning is None:
        return _fork(options)
    try:
        return start_program(_spawning)
    except OSError as error:
        options.logger.warn(f"couldn't start {_spawning.config.name}: {error}")
        raise


def install() -> None:
    """Make supervisord start its programs with ``start_program``."""
    Subprocess.spawn = _spawn_noting_the_program
    ServerOptions.fork = _fork_or_start
