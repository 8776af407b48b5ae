"""The chaos run's cluster: a parent, two children and a peer of the first child, each a real node on its own
test host, with a token, its own runtime dir, its data on a small tmpfs of its own (so a full disk is a fault
that can be made and taken back), and a wall clock of its own (``tests/support/clocks.py``: libfaketime, so a
clock step is a fault too). Always torn down: nodes, mounts, hosts, also on Ctrl-C."""
from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.support.clocks import with_own_clock
from tests.support.hosts import Host, make_hosts
from tools.chaos_history import Told
from tests.support.nodes import GIB, Node, kill_node, link, nodes_view, running, wait_for

TOKEN = "chaos-token"
PERIOD_S = 1.0
DATA_TMPFS_BYTES = 256 * 2**20
NAMES = ("parent", "child1", "child2", "peer")
RESOURCES = {"cpu": 8, "memory": 16 * GIB, "gpu": 0, "storage": DATA_TMPFS_BYTES // 2}


class ChaosCluster:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.hosts: dict[str, Host] = {}
        self._stack = contextlib.ExitStack()
        self.told = Told()  # what the load was answered, across rounds

    def __enter__(self) -> ChaosCluster:
        try:
            hosts = self._stack.enter_context(make_hosts(len(NAMES)))
            self.hosts = dict(zip(NAMES, hosts))
            # Invariant 1 looks for every workload ever admitted: none is deleted for being old.
            sections: dict[str, Any] = {"health": {"interval_s": 0.5}, "workloads": {"keep_finished": 10**9}}
            parent = link(Node(RESOURCES, token=TOKEN, host=self.hosts["parent"], **sections), heartbeat_period_s=PERIOD_S)
            child1 = link(Node(RESOURCES, token=TOKEN, host=self.hosts["child1"], **sections), parent=parent,
                          heartbeat_period_s=PERIOD_S)
            child2 = link(Node(RESOURCES, token=TOKEN, host=self.hosts["child2"], **sections), parent=parent,
                          heartbeat_period_s=PERIOD_S)
            peer = link(Node(RESOURCES, token=TOKEN, host=self.hosts["peer"], **sections), peers=(child1,),
                        heartbeat_period_s=PERIOD_S)
            link(child1, peers=(peer,))
            self.nodes = {name: with_own_clock(node) for name, node in zip(NAMES, (parent, child1, child2, peer))}
            mounts = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="cnet-chaos-")))
            mounts.chmod(0o711)  # workloads (nobody) pass through to their node's data
            for name, node in self.nodes.items():
                data = mounts / name
                data.mkdir(mode=0o755)
                subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DATA_TMPFS_BYTES},mode=0755", "chaos-data",
                                str(data)], check=True)
                self._stack.callback(subprocess.run, ["umount", "-l", str(data)], check=False)
                node.config["storage"]["sqlite"]["data_path"] = str(data)
            self._stack.enter_context(running(*self.nodes.values()))  # stopped before the mounts go
            wait_for(self.linked, timeout_s=60, interval_s=0.5, diagnose=lambda: nodes_view(parent))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def linked(self) -> bool:
        """Each node sees its neighbours online: the parent its two children, the first child its peer."""
        try:
            parent = nodes_view(self.nodes["parent"])
            child1 = nodes_view(self.nodes["child1"])
        except Exception:  # a node restarting, a connection reset after a partition
            return False
        return sorted(parent["children"]) == sorted((self.nodes[name].node_id, "online") for name in ("child1", "child2")) \
            and child1["peers"] == [(self.nodes["peer"].node_id, "online")]

    def name_of(self, node_id: str) -> str:
        return next(name for name, node in self.nodes.items() if node.node_id == node_id)

    def data_path(self, name: str) -> Path:
        return Path(self.nodes[name].config["storage"]["sqlite"]["data_path"])

    def alive(self, name: str) -> bool:
        node = self.nodes[name]
        return node.process is not None and node.process.poll() is None

    def kill(self, name: str) -> None:
        """kill -9 a whole node, as if its machine died."""
        kill_node(self.nodes[name])

    def restart(self, name: str) -> None:
        """Start a node again after its supervisord or the whole node was killed: it relaunches from its ledger."""
        node = self.nodes[name]
        if node.process is not None and node.process.poll() is None:
            node.process.wait(timeout=30)  # cnetd ends once its supervisord is gone
        if not node.output.closed:
            node.output.close()
        node._kill_everything()  # what the dead node's processes might have left
        node.start()

    def stop_all(self) -> list[str]:
        """Stop every node as a user would; what any leaves behind is a violation (invariant 6)."""
        violations = []
        for name in reversed(NAMES):
            try:
                self.nodes[name].stop()
            except AssertionError as exc:
                violations.append(f"6: {name} left processes behind at its stop: {exc}")
            self.nodes[name].process = None  # stopped: the cluster's exit stops nothing twice
        return violations
