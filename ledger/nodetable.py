"""The node table: this node's parent, children and peers with their last heartbeat.

Soft state, rebuilt by heartbeats within one period after a crash, so it lives in its own LMDB
environment without fsync (the ledger proper keeps synced commits). Its times (a neighbour's last heartbeat,
when it was added) are stamps of ``boot_clock``, which no clock step moves; after a reboot, the first process to
open the table takes the old boot's stamps back (never seen since, added now).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import lmdb
import orjson

from ledger import boot_clock

MAP_SIZE_BYTES = 1 << 28
_REVISION = b"revision"
_BOOT = b"boot_id"  # the boot the table's stamps were taken in
_SHOWN = ("ledger_version", "subtree")  # what a heartbeat says that consoles show (seq and times are not)


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
    last_seen: float | None = None  # boot_clock's stamp of its last heartbeat's arrival
    heartbeat: dict[str, Any] | None = None
    added_at: float | None = None  # when this node first learnt of it (a child that never beats ages from here)
    incompatible: str | None = None  # why it cannot be worked with (another protocol major), when it cannot

    def online(self, heartbeat_period_s: float, liveness: int, now: float | None = None) -> bool:
        now = boot_clock.now() if now is None else now
        return self.last_seen is not None and now - self.last_seen < heartbeat_period_s * liveness

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class NodeTable:
    """Neighbours by node id, in an unsynced LMDB environment shared by the node's processes."""

    def __init__(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        self._env = lmdb.open(path, map_size=MAP_SIZE_BYTES, max_dbs=2, sync=False, metasync=False)
        self._env.reader_check()
        self._db = self._env.open_db(b"neighbours")
        self._meta = self._env.open_db(b"meta")
        self._since_boot()

    def _since_boot(self) -> None:
        """Take back the stamps of an earlier boot: they cannot be compared with this boot's clock."""
        with self._env.begin(write=True) as txn:
            if txn.get(_BOOT, db=self._meta) == boot_clock.BOOT_ID.encode():
                return
            now = boot_clock.now()
            for key, raw in list(txn.cursor(db=self._db)):
                known = _decode(raw)
                if known is not None:
                    txn.put(key, orjson.dumps(dataclasses.replace(known, last_seen=None, added_at=now).to_dict()),
                            db=self._db)
            txn.put(_BOOT, boot_clock.BOOT_ID.encode(), db=self._meta)

    def close(self) -> None:
        self._env.close()

    def upsert(self, neighbour: Neighbour) -> None:
        """Add or re-address a neighbour, keeping what its heartbeats already told."""
        key = neighbour.node_id.encode()
        with self._env.begin(write=True, db=self._db) as txn:
            raw = txn.get(key)
            if raw is not None:
                known = _decode(raw) or neighbour
                neighbour = dataclasses.replace(neighbour, last_seen=known.last_seen, heartbeat=known.heartbeat,
                                                added_at=known.added_at)
            else:
                neighbour = dataclasses.replace(neighbour, added_at=neighbour.added_at or boot_clock.now())
            txn.put(key, orjson.dumps(neighbour.to_dict()))
            self._bump(txn)

    def record_heartbeat(self, node_id: str, heartbeat: dict[str, Any], received_at: float,
                         stale_after_s: float) -> Neighbour | None:
        """Store a neighbour's heartbeat (``received_at``: a ``boot_clock`` stamp); return what was known of it before (None: not a neighbour, nothing
        stored). The revision moves when the heartbeat changes what consoles show: the neighbour's ledger
        version or subtree, or the neighbour back after ``stale_after_s`` of silence."""
        key = node_id.encode()
        with self._env.begin(write=True, db=self._db) as txn:
            raw = txn.get(key)
            if raw is None:
                return None
            previous = _decode(raw)
            if previous is None:
                return None
            txn.put(key, orjson.dumps(dataclasses.replace(previous, last_seen=received_at, heartbeat=heartbeat)))
            last = previous.heartbeat or {}
            if any(last.get(name) != heartbeat.get(name) for name in _SHOWN) or previous.last_seen is None \
                    or received_at - previous.last_seen >= stale_after_s:
                self._bump(txn)
        return previous

    def remove(self, node_id: str) -> bool:
        """Forget a neighbour; False if it was not known."""
        with self._env.begin(write=True, db=self._db) as txn:
            removed = txn.delete(node_id.encode())
            if removed:
                self._bump(txn)
        return removed

    def revision(self) -> int:
        """A counter of changes to what the table shows; a neighbour going silent does not move it."""
        with self._env.begin(db=self._meta) as txn:
            return int(txn.get(_REVISION) or 0)

    def _bump(self, txn: lmdb.Transaction) -> None:
        txn.put(_REVISION, str(int(txn.get(_REVISION, db=self._meta) or 0) + 1).encode(), db=self._meta)

    def get(self, node_id: str) -> Neighbour | None:
        with self._env.begin(db=self._db) as txn:
            raw = txn.get(node_id.encode())
        return _decode(raw) if raw else None

    def all(self) -> list[Neighbour]:
        with self._env.begin(db=self._db) as txn:
            found = [_decode(raw) for _, raw in txn.cursor()]
        return [neighbour for neighbour in found if neighbour is not None]


_FIELDS = frozenset(field.name for field in dataclasses.fields(Neighbour))


def _decode(raw: bytes) -> Neighbour | None:
    """A stored entry, or None for one that is not a neighbour (written by something else): skipped. Fields
    it does not know (written by a newer version) are left out."""
    try:
        fields = orjson.loads(raw)
        neighbour = Neighbour(**{name: value for name, value in fields.items() if name in _FIELDS})
    except (orjson.JSONDecodeError, TypeError, AttributeError):
        return None
    return neighbour if isinstance(neighbour.node_id, str) and isinstance(neighbour.mesh_endpoint, str) else None
