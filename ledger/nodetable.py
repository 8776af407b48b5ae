"""The node table: this node's parent, children and peers with their last heartbeat.

Soft state, rebuilt by heartbeats within one period after a crash, so it lives in its own LMDB
environment without fsync (the ledger proper keeps synced commits).
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any

import lmdb
import orjson

MAP_SIZE_BYTES = 1 << 28


class Role:
    PARENT = "parent"
    CHILD = "child"
    PEER = "peer"


@dataclass
class Neighbour:
    """A node this one talks to, and what its last heartbeat said."""

    node_id: str
    role: str
    api_url: str
    mesh_endpoint: str
    last_seen: float | None = None
    heartbeat: dict[str, Any] | None = None

    def online(self, heartbeat_period_s: float, liveness: int, now: float | None = None) -> bool:
        return self.last_seen is not None and (now or time.time()) - self.last_seen < heartbeat_period_s * liveness

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class NodeTable:
    """Neighbours by node id, in an unsynced LMDB environment shared by the node's processes."""

    def __init__(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        self._env = lmdb.open(path, map_size=MAP_SIZE_BYTES, max_dbs=1, sync=False, metasync=False)
        self._env.reader_check()
        self._db = self._env.open_db(b"neighbours")

    def close(self) -> None:
        self._env.close()

    def upsert(self, neighbour: Neighbour) -> None:
        """Add or re-address a neighbour, keeping what its heartbeats already told."""
        key = neighbour.node_id.encode()
        with self._env.begin(write=True, db=self._db) as txn:
            raw = txn.get(key)
            if raw is not None:
                known = Neighbour(**orjson.loads(raw))
                neighbour = dataclasses.replace(neighbour, last_seen=known.last_seen, heartbeat=known.heartbeat)
            txn.put(key, orjson.dumps(neighbour.to_dict()))

    def record_heartbeat(self, node_id: str, heartbeat: dict[str, Any], received_at: float) -> Neighbour | None:
        """Store a neighbour's heartbeat; None when the sender is not a known neighbour."""
        key = node_id.encode()
        with self._env.begin(write=True, db=self._db) as txn:
            raw = txn.get(key)
            if raw is None:
                return None
            neighbour = dataclasses.replace(Neighbour(**orjson.loads(raw)), last_seen=received_at, heartbeat=heartbeat)
            txn.put(key, orjson.dumps(neighbour.to_dict()))
        return neighbour

    def get(self, node_id: str) -> Neighbour | None:
        with self._env.begin(db=self._db) as txn:
            raw = txn.get(node_id.encode())
        return Neighbour(**orjson.loads(raw)) if raw else None

    def all(self) -> list[Neighbour]:
        with self._env.begin(db=self._db) as txn:
            return [Neighbour(**orjson.loads(raw)) for _, raw in txn.cursor()]
