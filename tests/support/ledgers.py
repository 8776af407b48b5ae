"""A ledger for unit tests: a fresh LMDB environment with a node's identity and capacity set, closed afterwards."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from ledger.records import Resources
from ledger.store import Ledger


@contextlib.contextmanager
def unit_ledger(path: Path) -> Iterator[Ledger]:
    ledger = Ledger(str(path))
    ledger.set_node({"node_id": "unit", "api_url": "http://127.0.0.1:1", "mesh_endpoint": "tcp://127.0.0.1:2",
                     "started_at": 0.0, "boot_id": "b1"}, Resources(cpu=1, memory=1 << 30, storage=1 << 30))
    try:
        yield ledger
    finally:
        ledger.close()
