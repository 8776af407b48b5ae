"""Client of the node's supervisord over its unix socket: add, start, stop, inspect and remove workload programs."""
from __future__ import annotations

import http.client
import pwd
import shlex
import shutil
import threading
import time
import xmlrpc.client
from enum import IntEnum
from pathlib import Path
from typing import Any

import orjson

from cnetd.common.errors import CnetError, NodeStopping
from cnetd.common.unix_http import UnixHTTPConnection
from cnetd.common.paths import RUNTIME_DIR_ENV, WORKLOAD_GROUP

STOPPED_STATES = frozenset({"STOPPED", "EXITED", "FATAL"})
# The events the monitor settles workloads on (its subscription): a program coming to rest, and TICK_5 for a
# settlement of every workload. A passing state (STARTING, BACKOFF, STOPPING) settles nothing, and its own
# next state (RUNNING, FATAL, STOPPED, EXITED) follows with its event; supervisord need not send it.
SETTLING_EVENTS = ("PROCESS_STATE_RUNNING", "PROCESS_STATE_EXITED", "PROCESS_STATE_STOPPED", "PROCESS_STATE_FATAL")
SETTLE_ALL_EVENT = "TICK_5"
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 1  # a workload log rotated at LOG_MAX_BYTES keeps this many older files: <log>.1, ...
# Every program supervisord runs gets SIGKILL from the kernel when supervisord dies (util-linux setpriv sets
# the parent-death signal, which survives the exec): a node never outlives its supervisord.
DIE_WITH_SUPERVISORD = [shutil.which("setpriv") or "/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]
WORKLOAD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXEC_WAIT_S = 5.0  # how long a stop waits for a program only just started to leave supervisord's copy


class Faults(IntEnum):
    """The fault codes of supervisord's XML-RPC interface that CNET tells apart (``supervisor.xmlrpc.Faults``)."""
    UNKNOWN_METHOD = 1
    SHUTDOWN_STATE = 6
    BAD_NAME = 10
    SPAWN_ERROR = 50
    ALREADY_STARTED = 60
    NOT_RUNNING = 70
    STILL_RUNNING = 91


class UnixTransport(xmlrpc.client.Transport):
    """xmlrpc.client's transport (one kept connection) to supervisord's unix socket, each socket operation
    bounded by ``timeout_s`` (None: blocking). supervisor's own ``SupervisorTransport`` also reaches the
    socket, but takes no timeout, and importing ``supervisor.xmlrpc`` costs each node process that talks to
    supervisord 1.2 to 2.1 MiB (it brings importlib.metadata, among others)."""

    def __init__(self, socket_path: str, timeout_s: float | None = None) -> None:
        super().__init__()
        self._socket_path, self._timeout_s = socket_path, timeout_s

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self._connection[1] is None:
            self._connection = host, UnixHTTPConnection(self._socket_path, self._timeout_s)
        return self._connection[1]


def escape(value: str) -> str:
    """Protect a value from supervisor's %(name)s expansion."""
    return value.replace("%", "%%")


class Supervisor:
    """A process's client of supervisord's XML-RPC interface (supervisor + twiddler namespaces). Each thread
    that uses it gets a connection of its own: an XML-RPC connection serves one call at a time."""

    def __init__(self, socket_path: str) -> None:
        self._socket_path = socket_path
        self._connections = threading.local()
        self._group_states = True  # whether this supervisord has the cnet namespace (one of an older version lacks it)

    @property
    def _proxy(self) -> xmlrpc.client.ServerProxy:
        proxy = getattr(self._connections, "proxy", None)
        if proxy is None:
            proxy = self._connections.proxy = xmlrpc.client.ServerProxy("http://localhost",
                                                                        transport=UnixTransport(self._socket_path))
        return proxy

    def add_and_start(self, process_name: str, options: dict[str, str]) -> dict[str, Any]:
        """Add a program to the workload group, start it, and return its process info: one round trip.

        supervisord spawns inside startProcess, so the pid is known when it returns; with startsecs=0
        the program is RUNNING at its next state transition.
        """
        program = f"{WORKLOAD_GROUP}:{process_name}"
        added, started, info = self._proxy.system.multicall([
            {"methodName": "twiddler.addProgramToGroup", "params": [WORKLOAD_GROUP, process_name, options]},
            {"methodName": "supervisor.startProcess", "params": [program, False]},
            {"methodName": "supervisor.getProcessInfo", "params": [program]},
        ])
        fault = next((result for result in (added, started, info) if isinstance(result, dict) and "faultCode" in result), None)
        if fault is not None:
            if added is True:
                self.remove(program)
            if fault["faultCode"] == Faults.SHUTDOWN_STATE:
                raise NodeStopping(f"the node is stopping: supervisord starts nothing more ({process_name} not started)")
            raise CnetError(f"supervisord could not start {process_name}: {fault['faultString']}")
        return info

    def start(self, program: str, wait: bool = False) -> None:
        """Start an existing program (``wait``: until it is RUNNING, past its startsecs)."""
        self._ignoring(self._proxy.supervisor.startProcess, program, wait, ignored=(Faults.ALREADY_STARTED,))

    def restart(self, program: str) -> None:
        """Start a workload's program again after it ended. One that cannot be started (its directory gone,
        say) is FATAL a moment later, and the monitor settles that event; one removed meanwhile (its workload
        deleted) has nothing to start."""
        self._ignoring(self._proxy.supervisor.startProcess, program, False,
                       ignored=(Faults.ALREADY_STARTED, Faults.SPAWN_ERROR, Faults.BAD_NAME))

    def reread(self) -> set[str]:
        """Read supervisord.conf again: the groups whose definition is new or changed (applied by
        ``replace_group``). The workloads' group is never among them: its programs are not in the file."""
        added, changed, _ = self._proxy.supervisor.reloadConfig()[0]
        return {*added, *changed} - {WORKLOAD_GROUP}

    def replace_group(self, group: str) -> None:
        """Stop a group's programs, and add the group again as supervisord.conf now defines it (its
        autostart programs start)."""
        self._ignoring(self._proxy.supervisor.stopProcessGroup, group, True, ignored=(Faults.BAD_NAME,))
        self._ignoring(self._proxy.supervisor.removeProcessGroup, group, ignored=(Faults.BAD_NAME,))
        self._proxy.supervisor.addProcessGroup(group)

    def stop(self, program: str) -> None:
        """Stop a program and wait until it has stopped; a program that is not running is left as it is.

        A program started a moment ago may not have executed its command yet: until it does, its process is
        supervisord's forked copy, closing descriptors, and supervisord's own handler takes a SIGTERM there
        and loses it; the program then runs on until its stopwaitsecs end in a SIGKILL. Measured: 32 of 60
        stops sent right after their start went that way. So the stop waits for the exec first. The supervisord
        of this version starts a program executed already (``cnetd.launcher.program_spawn``), and the wait
        finds nothing to wait for; a reload keeps the supervisord of the version the node started with."""
        info = self.info(program)
        if info is not None and info["pid"]:
            _wait_for_exec(info["pid"])
        self._ignoring(self._proxy.supervisor.stopProcess, program, True, ignored=(Faults.NOT_RUNNING, Faults.BAD_NAME))

    def remove(self, program: str) -> None:
        group, _, name = program.partition(":")
        self._ignoring(self._proxy.twiddler.removeProcessFromGroup, group, name,
                       ignored=(Faults.BAD_NAME, Faults.STILL_RUNNING, Faults.SHUTDOWN_STATE))

    def info(self, program: str) -> dict[str, Any] | None:
        try:
            return self._proxy.supervisor.getProcessInfo(program)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == Faults.BAD_NAME:
                return None
            raise

    def workload_infos(self) -> dict[str, dict[str, Any]]:
        """The process info of every workload program (at least its fields that tell its state: ``statename``,
        ``pid``, ``start``, ``stop``, ``exitstatus``, ``spawnerr``), keyed by ``group:name`` (``NodeStopping`` once
        supervisord shuts down: it answers no more)."""
        try:
            infos = self._workload_states()
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == Faults.SHUTDOWN_STATE:
                raise NodeStopping("the node is stopping: supervisord lists no programs") from None
            raise
        return {f"{info['group']}:{info['name']}": info for info in infos if info["group"] == WORKLOAD_GROUP}

    def _workload_states(self) -> list[dict[str, Any]]:
        """The workload programs' state fields of their process info (``cnetd.launcher.group_states``). The
        supervisord that a node of an older version started, kept by a reload to this one, lacks that namespace:
        it gives every program's whole info."""
        if self._group_states:
            try:
                return orjson.loads(self._proxy.cnet.getGroupStates(WORKLOAD_GROUP))
            except xmlrpc.client.Fault as fault:
                if fault.faultCode != Faults.UNKNOWN_METHOD:
                    raise
                self._group_states = False
        return self._proxy.supervisor.getAllProcessInfo()

    def shutdown(self, timeout_s: float = 2.0) -> bool:
        """Ask supervisord to stop everything and exit; whether it took the request within ``timeout_s``.
        Through its socket it acts at once: a signal waits for its event loop's next second."""
        timed = xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport(self._socket_path, timeout_s))
        try:
            timed.supervisor.shutdown()
        except (OSError, xmlrpc.client.Error):
            return False
        finally:
            timed("close")()
        return True

    def answers(self) -> bool:
        """Whether supervisord takes requests on its socket (a request also ends the wait of its loop's poll)."""
        try:
            self._proxy.supervisor.getState()
        except (OSError, xmlrpc.client.Error):
            return False
        return True

    def shutting_down(self) -> bool:
        try:
            return self._proxy.supervisor.getState()["statename"] == "SHUTDOWN"
        except (OSError, xmlrpc.client.Error):
            return True  # supervisord no longer answers: it is going away

    @staticmethod
    def _ignoring(call: Any, *args: Any, ignored: tuple[int, ...]) -> None:
        try:
            call(*args)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode not in ignored:
                raise


def not_yet_executed(pid: int) -> bool:
    """Whether ``pid`` is still the copy of its parent that fork made: it runs its parent's command line."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        parent = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        return Path(f"/proc/{pid}/cmdline").read_bytes() == Path(f"/proc/{parent}/cmdline").read_bytes()
    except (OSError, StopIteration):  # gone, or not ours to read: nothing to wait for
        return False


def _wait_for_exec(pid: int) -> None:
    deadline = time.monotonic() + EXEC_WAIT_S
    while not_yet_executed(pid) and time.monotonic() < deadline:
        time.sleep(0.001)


def workload_environment(env: dict[str, str], cwd: str, runtime_dir: str) -> dict[str, str]:
    """A workload's whole environment, built rather than inherited (supervisord's holds the node's own, a
    token in CNET_TOKEN perhaps): a minimal PATH / HOME / LANG, the runtime dir that names its node (the
    sweep after an unclean end finds it by that), and its own variables."""
    return {"PATH": WORKLOAD_PATH, "HOME": cwd, "LANG": "C.UTF-8", RUNTIME_DIR_ENV: runtime_dir, **env}


def environment_file(env: dict[str, str]) -> bytes:
    """A workload's whole environment as the file its command line sources (``sh`` syntax, every value
    quoted): its values, secrets among them, never appear in a command line anyone can read."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in env.items()).encode()


def rotated_log_files(log: Path) -> list[Path]:
    """A workload log and the older files its rotation may have left (``LOG_BACKUPS``)."""
    return [log, *(log.with_name(f"{log.name}.{number}") for number in range(1, LOG_BACKUPS + 1))]


def running_as(user: str | None) -> list[str]:
    """setpriv's options that make a program run as ``user``: its uid, its primary group and every group that
    lists it, real, effective and saved, as supervisor's ``user=`` makes it (none for None: supervisord's own)."""
    if user is None:
        return []
    account = pwd.getpwnam(user)
    return [f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups"]


def workload_program_options(argv: list[str], env_file: str, cwd: str, stdout_log: str, stderr_log: str,
                             stop_timeout_s: int, user: str | None = None) -> dict[str, str]:
    """supervisord options of one workload program; ``env_file`` (``environment_file``) holds its whole
    environment, and ``user`` is who it runs as.

    The program starts with an empty environment (``env -i``; supervisord's holds the node's own) and a shell
    that exports what ``env_file`` sets, then becomes ``argv``: any value survives (supervisor's own
    ``environment=`` cannot quote every string) and nothing else gets in. setpriv, which already ties the
    program to supervisord's life, also switches to ``user`` (before it sets that tie, which a change of user
    would clear): supervisor's ``user=`` would make supervisord's start fork it
    (``cnetd.launcher.program_spawn``: Python starts a program with vfork only as supervisord's own user),
    1 ms more per start here. Restarts are the monitor's decision, never supervisord's.
    """
    command = [DIE_WITH_SUPERVISORD[0], *running_as(user), *DIE_WITH_SUPERVISORD[1:], "/usr/bin/env", "-i",
               "/bin/sh", "-c", 'set -a && . "$0" && exec "$@"', env_file, *argv]
    return {
        "command": escape(shlex.join(command)),
        "directory": escape(cwd),
        "autostart": "false",
        "autorestart": "false",
        "startsecs": "0",
        "startretries": "0",
        "stopasgroup": "true",
        "killasgroup": "true",
        "stopwaitsecs": str(stop_timeout_s),
        "stdout_logfile": escape(stdout_log),
        "stderr_logfile": escape(stderr_log),
        "stdout_logfile_maxbytes": str(LOG_MAX_BYTES),
        "stderr_logfile_maxbytes": str(LOG_MAX_BYTES),
        "stdout_logfile_backups": str(LOG_BACKUPS),
        "stderr_logfile_backups": str(LOG_BACKUPS),
    }
