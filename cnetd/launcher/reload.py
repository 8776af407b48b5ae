"""``cnetd reload -config FILE``: the node's own processes on the code installed now, its workloads untouched.

supervisord stays up (its programs, the workloads among them, die with it), so a reload replaces the node
programs through its XML-RPC, after writing the config and supervisord.conf that this (new) code renders:

- ``monitor``, ``scheduler``, ``register``: stopped and started again, at once (a program whose definition
  changed is re-read first). Each settles what happened meanwhile when it starts, as after a crash; the register keeps
  the node's boot id, so neighbours see a heartbeat gap of a second, not a restart.
- ``api``: without a moment unserved. ``api-standby`` (same program, new code) starts on the listening socket
  the running ``api`` hands it (``cnetd.core.api_socket``) and serves beside it; ``api`` stops, draining
  (what it serves finishes; a kept-alive connection's next request is answered with ``Connection: close``);
  ``api`` starts on the new code; then the standby stops, draining too. Connections that arrive meanwhile wait in the socket's queue: none is
  refused or reset.

The workloads are supervisord's programs, untouched: same pids, no restart counted. ``cnetd`` itself (the
launcher, supervisord's parent) stays on the code it started with, and an upgrade of supervisor itself
needs a full restart.
"""
from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from cnetd.common.private_files import write_private
from cnetd.core.api_socket import handover_path
from cnetd.core.config import NodeConfig
from cnetd.core.supervisor_rpc import Supervisor
from cnetd.launcher.supervisor_conf import API, API_STANDBY, MONITOR, render

READY_TIMEOUT_S = 60.0
FIXED = (("node_id", "agent.node_id"), ("runtime_dir", "agent.runtime_dir"), ("address", "agent.address"),
         ("port", "agent.port"), ("mesh_port", "mesh.port"))  # what a running node keeps until it restarts


class ReloadRefused(Exception):
    """The reload cannot be done (no node runs there, or the config changes what only a restart can)."""


def unchanged_fields(running: NodeConfig, new: NodeConfig) -> None:
    """Refuse a config that moves what the running node holds open (its addresses, its runtime dir)."""
    for field, key in FIXED:
        if getattr(running, field) != getattr(new, field):
            raise ReloadRefused(f"{key}: {getattr(running, field)} → {getattr(new, field)} needs a restart of the "
                                "node (a reload keeps its addresses and runtime dir)")


class Reload:
    def __init__(self, config: NodeConfig, python: str, say: Callable[[str], None]) -> None:
        self._config = config
        self._paths = config.paths
        self._python = python
        self._say = say
        self._supervisor = Supervisor(str(self._paths.supervisor_socket))

    def run(self) -> None:
        try:
            running = NodeConfig.from_runtime_dir(str(self._paths.root))
        except (OSError, TypeError, ValueError) as exc:
            raise ReloadRefused(f"no node has run in {self._paths.root} ({exc})") from None
        unchanged_fields(running, self._config)
        if self._supervisor.shutting_down():
            raise ReloadRefused(f"no node runs in {self._paths.root} (its supervisord does not answer)")
        self._config.save()
        write_private(self._paths.supervisord_conf, render(self._config, self._python).encode())
        self._paths.reload_marker.touch()
        try:
            changed = self._supervisor.reread()
            # Independent of each other (each settles what happened meanwhile when it starts): at once.
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(lambda program: self._restart(program, program in changed),
                              (MONITOR, "scheduler", "register")))
            self._replace_api(changed)
        finally:
            self._paths.reload_marker.unlink(missing_ok=True)

    def _restart(self, program: str, changed: bool) -> None:
        name = f"{program}:{program}"
        before = self._supervisor.info(name)
        started = time.monotonic()
        if changed:
            self._supervisor.replace_group(program)  # re-read: it starts with its new definition
        else:
            self._supervisor.stop(name)
            self._supervisor.start(name, wait=True)
        after = self._running(name)
        self._say(f"{program}: pid {before and before['pid']} → {after and after['pid']} "
                  f"({time.monotonic() - started:.1f} s)")

    def _replace_api(self, changed: set[str]) -> None:
        """Serve from the standby while api is replaced, so that the socket always has a server. An api that
        does not hand its socket over (a version before 0.3) can only be restarted in place: its port is
        closed for the second that takes."""
        running = self._supervisor.info(f"{API}:{API}")
        if not running or not handover_path(self._paths.api_handover_dir, running["pid"]).exists():
            self._say("api: the running api does not hand its socket over (it predates 0.3): it restarts in "
                      "place, its port closed for that second")
            self._restart(API, API in changed)
            return
        started = time.monotonic()
        if API_STANDBY in changed:
            self._supervisor.replace_group(API_STANDBY)  # stopped (autostart=false): re-read, not started
        standby = self._start_serving(API_STANDBY, lambda: self._supervisor.start(f"{API_STANDBY}:{API_STANDBY}",
                                                                                 wait=True))
        before = self._supervisor.info(f"{API}:{API}")
        self._supervisor.stop(f"{API}:{API}")  # drains: the reload marker is there
        if API in changed:
            api = self._start_serving(API, lambda: self._supervisor.replace_group(API))
        else:
            api = self._start_serving(API, lambda: self._supervisor.start(f"{API}:{API}", wait=True))
        self._supervisor.stop(f"{API_STANDBY}:{API_STANDBY}")
        self._say(f"api: pid {before and before['pid']} → {api} (standby {standby} served meanwhile; "
                  f"{time.monotonic() - started:.1f} s)")

    def _running(self, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            info = self._supervisor.info(name)
            if info and info["statename"] == "RUNNING":
                return info
            time.sleep(0.05)
        raise ReloadRefused(f"{name} did not come up on the new code (see {self._paths.logs_dir})")

    def _start_serving(self, program: str, start: Callable[[], Any]) -> int:
        """Start an api program and wait until it serves (its worker says so in the ready dir)."""
        start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            info = self._supervisor.info(f"{program}:{program}")
            if info and info["statename"] == "RUNNING" and (self._paths.ready_dir / f"api.{info['pid']}").exists():
                return info["pid"]
            if info and info["statename"] in ("FATAL", "EXITED", "BACKOFF"):
                break
            time.sleep(0.05)
        raise ReloadRefused(f"{program} did not come up on the new code (see {self._paths.logs_dir / (program + '.log')})")


def clear_ready_markers(ready_dir: Path) -> None:
    """Markers of api programs that ran before this start of the node."""
    for marker in ready_dir.glob("api.*"):
        with contextlib.suppress(OSError):
            marker.unlink()

