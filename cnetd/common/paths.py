"""Layout of a node's runtime directory: supervisord files, sockets, ledger, logs, workload dirs."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

IPC_PATH_MAX = 107  # sun_path holds 108 bytes including the NUL
WORKLOAD_GROUP = "workloads"
WORKLOAD_PREFIX = "wl-"
# Set for supervisord and so inherited by every node process and workload: it names the node they belong to.
RUNTIME_DIR_ENV = "CNET_RUNTIME_DIR"


@dataclass(frozen=True)
class RuntimePaths:
    """Every path a node's processes share, derived from one root directory."""

    root: Path

    @classmethod
    def of_this_node(cls) -> RuntimePaths:
        """The paths of the node this process runs under (``CNET_RUNTIME_DIR``, set by its supervisord)."""
        return cls(Path(os.environ[RUNTIME_DIR_ENV]))

    @property
    def node_config(self) -> Path:
        return self.root / "node.json"

    @property
    def supervisord_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def supervisor_socket(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def supervisord_pid(self) -> Path:
        return self.root / "supervisord.pid"

    @property
    def ledger_dir(self) -> Path:
        return self.root / "ledger"

    @property
    def node_table_dir(self) -> Path:
        return self.root / "nodes"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def metrics_dir(self) -> Path:
        """prometheus_client's multiprocess files: one per node process, summed by /metrics (a link to a
        directory in memory, ``cnetd.launcher.metrics_dir``)."""
        return self.root / "metrics"

    @property
    def api_handover_dir(self) -> Path:
        """``<pid>.sock``: where api program ``pid`` hands its listening socket to the next one (a reload
        starts a new one while the old drains: the socket, and what waits in its queue, outlive both)."""
        return self.root / "api-handover"

    @property
    def ready_dir(self) -> Path:
        """``api.<pid>`` appears here once that api program serves (a reload waits for it)."""
        return self.root / "ready"

    @property
    def reload_marker(self) -> Path:
        """Present while a reload runs: an api program that stops then drains its kept-alive connections
        (each one's next request is answered, with ``Connection: close``) instead of closing them."""
        return self.root / "reloading"

    @property
    def bus_endpoint(self) -> str:
        return f"ipc://{self.root / 'bus.sock'}"

    @property
    def scheduler_endpoint(self) -> str:
        return f"ipc://{self.root / 'scheduler.sock'}"

    def workload_log(self, workload_id: str, stream: str) -> Path:
        return self.logs_dir / f"{program_name(workload_id)}.{stream}.log"

    @property
    def work_root(self) -> Path:
        """Beside the runtime dir, not in it (that is the node user's alone): each workload's own directory,
        owned by the user it runs as."""
        return self.root.with_name(self.root.name + ".work")

    def workload_dir(self, workload_id: str) -> Path:
        return self.work_root / workload_id

    def workload_environment_file(self, workload_id: str) -> Path:
        """The environment a workload's program starts with (``supervisor_rpc.environment_file``)."""
        return self.workload_dir(workload_id) / ".environment"

    def longest_socket_path(self) -> int:
        return max(len(str(self.root / name))
                   for name in ("bus.sock", "scheduler.sock", "supervisor.sock", "api-handover/4194304.sock"))

    def create(self) -> None:
        """The runtime dir's folders (the metrics directory is the launcher's: ``cnetd.launcher.metrics_dir``)."""
        for folder in (self.root, self.ledger_dir, self.node_table_dir, self.logs_dir, self.ready_dir,
                       self.api_handover_dir):
            folder.mkdir(parents=True, exist_ok=True)


def program_name(workload_id: str) -> str:
    """The supervisord process name of a workload."""
    return f"{WORKLOAD_PREFIX}{workload_id}"


def workload_id_of(process_name: str) -> str | None:
    """The workload id behind a supervisord process name, or None for a node process."""
    return process_name[len(WORKLOAD_PREFIX):] if process_name.startswith(WORKLOAD_PREFIX) else None
