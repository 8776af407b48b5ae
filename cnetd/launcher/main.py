"""``cnetd`` / ``cnet-agent``: validate the config, prepare the runtime dir, run the node under supervisord.

The node runs in the foreground; Ctrl-C or SIGTERM stops supervisord, which stops every workload and
node process before this command returns. SIGHUP, or ``cnetd reload -config FILE``, puts the node's own
processes on the code installed now and leaves every workload running (``cnetd.launcher.reload``).
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import FrameType

import orjson
import psutil

from cnetd import __version__
from cnetd.core.capabilities import capabilities
from cnetd.core.config import ConfigError, NodeConfig, load_config
from cnetd.core.lifecycle import needs_a_program_here, without_its_program
from cnetd.launcher.reload import Reload, ReloadRefused, clear_ready_markers
from cnetd.launcher.supervisor_conf import render
from cnetd.core.supervisor_rpc import Supervisor
from cnetd.common.httpclient import TimedOut, Unreachable, call
from cnetd.common.paths import RUNTIME_DIR_ENV
from cnetd.common.private_files import (PRIVATE_UMASK, TRAVERSE_ONLY_MODE, UnsafeDirectory, make_private_dir,
                                        make_traversable_parents, owner_name, write_private)
from cnetd.launcher.metrics_dir import fresh_metrics_dir, remove_metrics_dir
from cnetd.launcher.sweep import end_processes_of
from ledger.store import Ledger
from mesh.curve import ClusterKeys
from workers.workload_files import first_closed_folder, open_to_workloads

READY_TIMEOUT_S = 60.0
OPEN_FILES_WANTED = 65536  # a parent holds a TCP connection per child node


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cnetd", description="Run one CNET node in the foreground "
                                     "(`cnetd keygen` prints a new CURVE key pair for mesh.curve; `cnetd reload "
                                     "-config FILE` puts a running node's processes on the code installed now, "
                                     "its workloads untouched; `cnetd health -config FILE` exits 0 when it "
                                     "answers).")
    parser.add_argument("-config", "--config", default="conf/config.yaml", help="node config (YAML)")
    parser.add_argument("--version", action="version", version=f"cnetd {__version__}")
    return parser.parse_args(argv)


def _port_in_use(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return True
    return False


def _closed_to_workloads(config: NodeConfig) -> str | None:
    """Why the workloads' user could not reach its work dirs or the data path, or None: a folder above them
    that it may not pass through (a 0700 home or ``mktemp -d``) fails every workload only once admitted."""
    user = config.workloads_user
    if user is None:
        return None
    for key, folder in (("agent.runtime_dir", config.paths.work_root), ("storage.sqlite.data_path",
                                                                        Path(config.data_path))):
        closed = first_closed_folder(folder, user)
        if closed is not None:
            return (f"{key}: {closed} does not let {user} (workloads.user) pass, so workloads could not reach "
                    f"{folder}; give it o+x (chmod o+x {closed}) or choose a folder outside it")
    return None


def _running_supervisord(config: NodeConfig) -> int | None:
    """The pid of a live supervisord of this runtime dir: a pid file alone may name a zombie or a reused pid."""
    try:
        pid = int(config.paths.supervisord_pid.read_text().strip())
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
        ours = str(config.paths.supervisord_conf) in process.cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if alive and ours else None


def _preflight(config: NodeConfig) -> str | None:
    """Why this node cannot start, or None. What a previous boot of this runtime dir left running (its
    supervisord was killed) is ended first: the ledger says what to relaunch."""
    try:
        make_private_dir(config.paths.root)
        make_private_dir(config.paths.work_root, TRAVERSE_ONLY_MODE)
    except UnsafeDirectory as exc:
        return f"agent.runtime_dir: {exc}"
    except OSError as exc:  # a folder above it this user cannot write (a volume of another user's)
        return f"agent.runtime_dir: cannot make {exc.filename or config.paths.root}: {exc.strerror} (the node runs " \
               f"as {owner_name(os.geteuid())})"
    try:  # uploads land here: workloads (a data gateway) must be able to reach them
        make_traversable_parents(Path(config.data_path))
        Path(config.data_path).mkdir(exist_ok=True)
        open_to_workloads(Path(config.data_path), config.workloads_user)
    except OSError as exc:
        return f"storage.sqlite.data_path: cannot make {config.data_path} ready: {exc.strerror}"
    closed = _closed_to_workloads(config)
    if closed is not None:
        return closed
    pid = _running_supervisord(config)
    if pid is not None:
        return f"a node already runs in {config.runtime_dir} (supervisord pid {pid}); `cnetd reload -config " \
               "FILE` puts it on the code installed now"
    ended = end_processes_of(config.paths.root)
    if ended:
        print(f"cnetd: ended {ended} process(es) left by an earlier run of {config.runtime_dir}", flush=True)
    for key, port in (("agent.port", config.port), ("mesh.port", config.mesh_port)):
        if _port_in_use(config.address, port):
            return f"{key}: {config.address}:{port} is already in use"
    return None


def _raise_open_files_limit() -> None:
    """Raise the soft limit for supervisord and everything it starts. Not through supervisord's ``minfds``:
    its children close every fd below it between fork and exec, and a large value makes each spawn slow
    enough for a stop signal to land in supervisord's own handler and be lost."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_WANTED)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _prepare(config: NodeConfig) -> None:
    config.paths.create()
    fresh_metrics_dir(config.paths.metrics_dir)  # counters start at zero with the node
    clear_ready_markers(config.paths.ready_dir)
    config.save()
    ledger = Ledger(str(config.paths.ledger_dir))
    ledger.set_node({"node_id": config.node_id, "api_url": config.api_url,
                     "mesh_endpoint": config.mesh_endpoint, "started_at": time.time(),
                     "boot_id": uuid.uuid4().hex}, config.capacity, list(config.gpu_devices))
    ledger.set_capabilities(capabilities(config))
    # supervisord starts afresh, so no workload's program runs: recorded before the API can read the records
    # (the scheduler's reconcile then relaunches them), not the last run's "running" and pids until it does.
    ledger.update_every(lambda record: without_its_program(record) if needs_a_program_here(record) else None)
    ledger.close()
    write_private(config.paths.supervisord_conf, render(config, sys.executable).encode())


def _wait_ready(config: NodeConfig, supervisord: subprocess.Popen) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    supervisor = Supervisor(str(config.paths.supervisor_socket))
    # supervisord spawns its autostart programs in the first turn of its loop, after a poll that waits up to
    # a second for requests: the node's programs spawned 1.0 s after "supervisord started" on every start.
    # A request as soon as its socket takes one ends that wait.
    while time.monotonic() < deadline and supervisord.poll() is None and not supervisor.answers():
        time.sleep(0.01)
    while time.monotonic() < deadline and supervisord.poll() is None:
        try:
            if call("GET", f"{config.api_url}/api/health", timeout_s=1)[0] == 200:
                return True
        except (Unreachable, TimedOut):
            pass
        time.sleep(0.1)
    return False


KEYGEN_TEMPLATE = """\
# The cluster's CURVE key pair: put this in the config of every node of the cluster (and give
# `cnet-tap --config` a config holding it). Keep the secret key as secret as auth.token.
mesh:
  curve:
    public_key: "{public}"
    secret_key: "{secret}"
"""


def keygen() -> int:
    """`cnetd keygen`: print a new cluster key pair as a config snippet."""
    keys = ClusterKeys.generate()
    print(KEYGEN_TEMPLATE.format(public=keys.public.decode(), secret=keys.secret.decode()), end="")
    return 0


def reload(argv: list[str]) -> int:
    """`cnetd reload -config FILE`: the running node of that config on the code installed now."""
    args = _parse_args(argv)
    os.umask(PRIVATE_UMASK)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"cnetd: config error in {args.config}: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        Reload(config, sys.executable, lambda line: print(f"cnetd: {line}", flush=True)).run()
    except ReloadRefused as exc:
        print(f"cnetd: cannot reload node {config.node_id}: {exc}", file=sys.stderr)
        return 1
    print(f"cnetd: node {config.node_id} reloaded on cnetd {__version__} in {time.monotonic() - started:.1f} s; "
          "its workloads ran on", flush=True)
    return 0


def health(argv: list[str]) -> int:
    """`cnetd health -config FILE`: 0 when the node of that config answers /api/health on this machine (a
    container's health check), else 1 with the reason."""
    args = _parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"cnetd: config error in {args.config}: {exc}", file=sys.stderr)
        return 2
    address = "127.0.0.1" if config.address == "0.0.0.0" else config.address
    try:
        status, answer = call("GET", f"http://{address}:{config.port}/api/health", timeout_s=4)
    except (Unreachable, TimedOut) as exc:
        print(f"cnetd: node {config.node_id} does not answer on {address}:{config.port}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"cnetd: node {config.node_id} answers /api/health with HTTP {status}: {answer}", file=sys.stderr)
        return 1
    print(orjson.dumps(answer).decode())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keygen"]:
        return keygen()
    if argv[:1] == ["reload"]:
        return reload(argv[1:])
    if argv[:1] == ["health"]:
        return health(argv[1:])
    args = _parse_args(argv)
    os.umask(PRIVATE_UMASK)  # the ledger, logs and sockets it and supervisord create: this user's only
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"cnetd: config error in {args.config}: {exc}", file=sys.stderr)
        return 2
    problem = _preflight(config)
    if problem:
        print(f"cnetd: cannot start node {config.node_id}: {problem}", file=sys.stderr)
        return 1
    _prepare(config)
    _raise_open_files_limit()
    conf = str(config.paths.supervisord_conf)
    supervisord = subprocess.Popen([sys.executable, "-m", "cnetd.launcher.supervisord", "-n", "-c", conf],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, RUNTIME_DIR_ENV: str(config.paths.root)})

    def stop(signum: int, frame: FrameType | None) -> None:
        if supervisord.poll() is None and not Supervisor(str(config.paths.supervisor_socket)).shutdown():
            supervisord.send_signal(signal.SIGTERM)

    def reload_on_new_code(signum: int, frame: FrameType | None) -> None:
        """The reload runs as a command of the code installed now, not of this process's."""
        subprocess.Popen([sys.executable, "-m", "cnetd.launcher.main", "reload", "-config", args.config])
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    signal.signal(signal.SIGHUP, reload_on_new_code)

    if _wait_ready(config, supervisord):
        print(f"cnetd: node {config.node_id} ready: api {config.api_url}, mesh {config.mesh_endpoint}\n"
              f"cnetd: runtime dir {config.runtime_dir} (logs in {config.paths.logs_dir})\n"
              f"cnetd: processes: supervisorctl -c {conf} status", flush=True)
    elif supervisord.poll() is None:
        print(f"cnetd: node {config.node_id} not healthy after {READY_TIMEOUT_S:.0f} s; "
              f"see {config.paths.logs_dir}", file=sys.stderr, flush=True)
    code = supervisord.wait()
    ended = end_processes_of(config.paths.root)  # none after a clean stop; everything if supervisord was killed
    remove_metrics_dir(config.paths.metrics_dir)  # they held the memory of this run's counters
    if ended:
        print(f"cnetd: supervisord ended (code {code}); ended the {ended} process(es) it left", flush=True)
    print(f"cnetd: node {config.node_id} stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
