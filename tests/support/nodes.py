"""Test helper: runs a real CNET node (cnetd → supervisord → gunicorn …) on loopback with free ports, or on a
test host (``tests.support.hosts``: its own network namespace and address)."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import psutil
import requests
import yaml

from cnetd.common.paths import RuntimePaths
from cnetd.launcher.metrics_dir import remove_metrics_dir
from workers.container import remove_labelled

if TYPE_CHECKING:
    from tests.support.hosts import Host

VENV_BIN = Path(sys.executable).parent
GIB, MIB = 2**30, 2**20
LIVE: set["Node"] = set()  # nodes not cleaned up yet: a failed test's report carries their logs
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.05,
             diagnose: Callable[[], Any] | None = None) -> Any:
    """Poll until ``predicate`` returns something truthy; fail with its last value (and ``diagnose()``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; state: {diagnose()!r}" if diagnose is not None else ""
            raise AssertionError(f"condition not met within {timeout_s} s (last value: {value!r}){seen}")
        time.sleep(interval_s)


def wait_until_answers(url: str, timeout_s: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers with a success; fail early if ``process`` exits meanwhile."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # refused, or accepted by a listener whose worker is still booting: both are "not yet"
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout_s} s")
        time.sleep(0.1)


class Node:
    """One node under test; ``stop()`` must leave no process behind. On a ``host`` it listens on that host's
    address (ports 8080/8081: the host is its own machine) and runs inside its network namespace."""

    def __init__(self, resources: dict[str, Any] | None = None, token: str | None = None,
                 host: Host | None = None, **sections: Any) -> None:
        self.node_id = f"t{uuid.uuid4().hex[:8]}"
        self.host = host
        self.ip = host.address if host is not None else "127.0.0.1"
        self.port = 8080 if host is not None else free_port()
        self.mesh_port = 8081 if host is not None else free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cnet-", dir="/tmp"))
        self.root.chmod(0o711)  # as /var/lib is: an unprivileged workload passes through to its own dir
        self.runtime_dir = self.root / "rt"
        self.config_path = self.root / "node.yaml"
        self.config: dict[str, Any] = {
            "agent": {"node_id": self.node_id, "address": self.ip, "port": self.port,
                      "runtime_dir": str(self.runtime_dir)},
            "resources": resources or {"cpu": 8, "memory": 16 * GIB, "gpu": 0, "storage": 10 * GIB},
            "mesh": {"port": self.mesh_port},
            "logging": {"level": "info", "format": "text"},
            "storage": {"sqlite": {"db_path": str(self.root / "storage.db"), "data_path": str(self.root / "data")}},
            **sections,
        }
        self.url = f"http://{self.ip}:{self.port}"
        self.address = f"{self.ip}:{self.port}"
        self.http = requests.Session()
        if token:  # the helper's own requests carry it; tests of auth use plain requests
            self.config["auth"] = {**self.config.get("auth", {}), "token": token}
            self.http.headers["Authorization"] = f"Bearer {token}"
        self.process: subprocess.Popen | None = None
        self.environment: dict[str, str] = {}  # added to cnetd's environment
        self.bin_dir = VENV_BIN  # whose cnet-agent runs it (another version's: tests.support.packaging)
        LIVE.add(self)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, until: Callable[[], bool] | None = None) -> Node:
        """Start cnetd and return once it says it is ready; with ``until``, as soon as that holds instead (a test's
        stop then comes at the point of the start it chose)."""
        self.config_path.write_text(yaml.safe_dump(self.config))
        output_path = self.root / "cnetd.out"
        seen_bytes = output_path.stat().st_size if output_path.exists() else 0
        self.output = open(output_path, "ab")
        launcher = self.host.launcher() if self.host is not None else []
        self.process = subprocess.Popen([*launcher, str(self.bin_dir / "cnet-agent"), "-config", str(self.config_path)],
                                        stdout=self.output, stderr=subprocess.STDOUT, start_new_session=True,
                                        cwd=self.root,  # as a service would: not the checkout
                                        env={**os.environ, **self.environment})
        deadline = time.monotonic() + START_TIMEOUT_S
        started = until or (lambda: b"ready" in output_path.read_bytes()[seen_bytes:])
        while not started():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"node did not start:\n{self.log('cnetd.out')}")
            time.sleep(0.005 if until else 0.05)
        return self

    def stop(self) -> None:
        """SIGTERM the node as a user would (Ctrl-C), then check that nothing it started survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._kill_everything()
                raise
        self.output.close()
        leftovers = self.leftover_processes()
        self._kill_everything()
        assert not leftovers, f"processes left behind: {leftovers}"

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        LIVE.discard(self)
        self._kill_everything()
        try:
            self._remove_containers()
        finally:
            remove_metrics_dir(RuntimePaths(self.runtime_dir).metrics_dir)  # in memory: what a killed cnetd left
            shutil.rmtree(self.root, ignore_errors=True)

    def _remove_containers(self) -> None:
        """Containers of this node's workloads: a stopped node keeps them for inspection until a workload is
        deleted, so a test that ends before deleting (or fails) would leave them on the engine."""
        address = self.config.get("container", {}).get("engine")
        if address is not None:
            remove_labelled(address, f"cnet.node={self.node_id}")

    def leftover_processes(self) -> list[str]:
        found = []
        for process in psutil.process_iter(["pid", "cmdline", "environ"]):
            environ = process.info["environ"] or {}
            cmdline = " ".join(process.info["cmdline"] or [])
            if (environ.get("CNET_NODE_ID") == self.node_id or str(self.root) in cmdline
                    or environ.get("CNET_RUNTIME_DIR") == str(self.runtime_dir)):
                found.append(f"{process.info['pid']} {cmdline}")
        return found

    def _kill_everything(self) -> None:
        for line in self.leftover_processes():
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass

    # -- access ---------------------------------------------------------------------------------

    def api(self, method: str, path: str, fresh_connection: bool = False, **kwargs: Any) -> requests.Response:
        """A request on a kept-alive connection, or with ``fresh_connection`` on a new one: a connection idle
        for about the server's keep-alive (2 s) may be closed by it just as a request goes out, and the client
        then gets no answer for its own reasons (a test that counts answers must not see that)."""
        if not fresh_connection:
            return self.http.request(method, self.url + path, timeout=60, **kwargs)
        with requests.Session() as session:
            session.headers.update(self.http.headers)
            return session.request(method, self.url + path, timeout=60, **kwargs)

    def submit(self, config: dict[str, Any], requirements: dict[str, Any] | None = None,
               workload_type: str = "process", fresh_connection: bool = False, **fields: Any) -> requests.Response:
        body = {"type": workload_type, "config": config, "requirements": requirements or {}, **fields}
        return self.api("POST", "/api/workloads", fresh_connection, json=body)

    def workload(self, workload_id: str) -> dict[str, Any]:
        return self.api("GET", f"/api/workloads/{workload_id}").json()

    def workloads(self) -> list[dict[str, Any]]:
        return self.api("GET", "/api/workloads").json()["workloads"]

    def workload_dir(self, workload_id: str) -> Path:
        """A workload's own dir on this node (its cwd, a service's log)."""
        return RuntimePaths(self.runtime_dir).workload_dir(workload_id)

    def resources(self) -> dict[str, Any]:
        return self.api("GET", "/api/resources").json()

    def supervisorctl(self, *args: str) -> str:
        result = subprocess.run([str(VENV_BIN / "supervisorctl"), "-c", str(self.runtime_dir / "supervisord.conf"),
                                 *args], capture_output=True, text=True, timeout=30)
        return result.stdout

    def program_pid(self, name: str) -> int:
        return int(self.supervisorctl("pid", name).strip() or 0)

    @contextlib.contextmanager
    def paused(self, program: str) -> Iterator[None]:
        """One of the node's programs stopped (SIGSTOP to its process group) while inside: alive, answering
        nothing; continued on the way out, also on failure."""
        group = os.getpgid(self.program_pid(program))
        os.killpg(group, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(group, signal.SIGCONT)

    def log(self, name: str) -> str:
        path = self.root / name if name == "cnetd.out" else self.runtime_dir / "logs" / name
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tails(self, chars: int = 2000) -> str:
        """The end of every log this node wrote, for a failed test's report."""
        paths = [self.root / "cnetd.out", *sorted((self.runtime_dir / "logs").glob("*.log"))]
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}"
                         for path in paths if path.exists())


@contextlib.contextmanager
def running(*nodes: Node) -> Iterator[Node]:
    """Start ``nodes`` in order and give the first; on leaving, stop them in reverse (the leftover check
    included) and clean up every one, whatever happened."""
    try:
        for node in nodes:
            node.start()
        yield nodes[0]
        for node in reversed(nodes):
            node.stop()
    finally:
        for node in nodes:
            node.cleanup()


def link(child: Node, parent: Node | None = None, peers: tuple[Node, ...] = (),
         heartbeat_period_s: float | None = None) -> Node:
    """Set a node's parent, peers and heartbeat period in its config (before it starts)."""
    if parent is not None:
        child.config["parent"] = {"enabled": True, "address": parent.address}
    if peers:
        child.config["peers"] = {"enabled": True, "addresses": [peer.address for peer in peers]}
    if heartbeat_period_s is not None:
        child.config["mesh"]["heartbeat_period_s"] = heartbeat_period_s
    return child


ALLOCATING = ("starting", "running", "uploading", "stored")  # statuses whose requirements the ledger holds


def held_by(workloads: list[dict[str, Any]]) -> dict[str, float]:
    """The sum of the requirements of the workloads (as the API lists them) that hold resources on this node:
    what its ledger's allocated total must equal."""
    held = {"cpu": 0.0, "memory": 0, "gpu": 0, "storage": 0}
    for workload in workloads:
        if workload["status"] in ALLOCATING and not workload.get("delegated_to"):
            for kind, amount in workload["requirements"].items():
                held[kind] += amount
    return held


def nodes_view(node: Node) -> dict[str, Any]:
    """A node's /api/nodes reduced to ids and statuses by role."""
    body = node.api("GET", "/api/nodes").json()
    def brief(entry: dict[str, Any] | None) -> tuple[str, str] | None:
        return (entry["id"], entry["status"]) if entry else None
    return {"self": body["self"]["id"], "parent": brief(body["parent"]),
            "children": [brief(child) for child in body["children"]], "peers": [brief(peer) for peer in body["peers"]]}


def kill_node(node: Node) -> None:
    """kill -9 a whole node (cnetd, supervisord, node processes, workloads), as if its machine died."""
    node._kill_everything()
    if node.process is not None:
        node.process.wait(timeout=30)
    node.output.close()


def neighbours_holding(member: Node) -> list[str]:
    """The neighbours that ``member`` last heard holding some CPU."""
    view = member.api("GET", "/api/nodes").json()
    return [neighbour["id"] for neighbour in [view["parent"], *view["children"], *view["peers"]]
            if neighbour and neighbour["resources"]["allocated"]["cpu"] > 0]


def samples(node: Node, name: str, **labels: str) -> list[float]:
    """The values of /metrics' samples of ``name`` whose labels include ``labels``."""
    return [float(line.rsplit(" ", 1)[1]) for line in node.api("GET", "/metrics").text.splitlines()
            if line.startswith((f"{name}{{", f"{name} ")) and all(f'{key}="{value}"' in line
                                                                  for key, value in labels.items())]


def metric(node: Node, name: str, **labels: str) -> float | None:
    """A sample of /metrics whose labels include ``labels`` (None: not there)."""
    return next(iter(samples(node, name, **labels)), None)
