"""Start-up shared by the node's processes: config from the runtime dir, logging, bus publisher, ledger."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnetd.common import logs
from cnetd.common.heap import release_free_heap
from cnetd.core.config import NodeConfig
from cnetd.common.paths import RUNTIME_DIR_ENV
from ledger.nodetable import NodeTable
from ledger.store import Ledger
from mesh.bus import BusPublisher

if TYPE_CHECKING:
    from cnetd.core.supervisor_rpc import Supervisor


@dataclass
class NodeProcess:
    """The handles one node process works with; open it after any fork."""

    name: str
    config: NodeConfig
    ledger: Ledger
    nodes: NodeTable
    publisher: BusPublisher

    def supervisor(self) -> Supervisor:
        """supervisord's RPC, imported here: the register never talks to supervisord, and xmlrpc and
        supervisor's own modules cost an idle process about 2.5 MiB."""
        from cnetd.core.supervisor_rpc import Supervisor
        return Supervisor(str(self.config.paths.supervisor_socket))


def open_node_process(name: str) -> NodeProcess:
    config = NodeConfig.from_runtime_dir(os.environ[RUNTIME_DIR_ENV])
    logs.configure(config.log_level, config.log_format, config.node_id, name)
    publisher = BusPublisher(config.paths.bus_endpoint, name)
    ledger = Ledger(str(config.paths.ledger_dir), on_change=publisher.ledger_changed)
    process = NodeProcess(name, config, ledger, NodeTable(str(config.paths.node_table_dir)), publisher)
    release_free_heap()  # the process has imported and read what it runs with
    return process
