"""The node table: this node's parent, children and peers with their last heartbeat.

Soft state, rebuilt by heartbeats within one period after a crash, so it lives in its own LMDB
environment without fsync (the ledger proper keeps synced commits). Its times (a neighbour's last heartbeat,
when it was added) are stamps of ``boot_clock``, which no clock step moves; after a reboot, the first process to
open the table takes the old boot's stamps back (never seen since, added now).

Neighbours are kept by node id, what each is (role, addresses) apart from what it last said: its heartbeat is
kept as it came (the JSON message, after the stamp of its arrival) in a database of its own, written only by
the register, so that a parent records thousands of children's heartbeats a second without reading or
rewriting their entries. They are kept with an index by role (one LMDB database per role, kept in the same write
transactions), so that a page of children, the parent or the peers, and how many children there are, are read
without scanning thousands of children. The table also keeps the fan-in secret (``mesh.fanin``) and the
register's count of children online.
"""
from __future__ import annotations

import dataclasses
import math
import os
import secrets
import struct
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable

import lmdb
import orjson

from ledger import boot_clock

MAP_SIZE_BYTES = 1 << 28
_REVISION = b"revision"
_BOOT = b"boot_id"  # the boot the table's stamps were taken in
_INDEXED = b"index"  # present once the role index covers every entry (a table of an older version has none)
_FAN_IN_SECRET = b"fan_in_secret"
_CHILDREN_ONLINE = b"children_online"
_APART = b"heartbeats_apart"  # present once no entry of the neighbours database holds a heartbeat (older tables did)
_STAMP = struct.Struct("<d")  # a heartbeat's arrival (boot_clock; NaN: before this boot), ahead of its JSON
_HEARD = ("last_seen", "heartbeat")  # what the heartbeats database holds of a neighbour


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
    fan_in: bool = False  # a child that sends its heartbeats up (``mesh.fanin``) rather than being subscribed to

    def online(self, heartbeat_period_s: float, liveness: int, now: float | None = None) -> bool:
        now = boot_clock.now() if now is None else now
        return self.last_seen is not None and now - self.last_seen < heartbeat_period_s * liveness

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class NodeTable:
    """Neighbours by node id, in an unsynced LMDB environment shared by the node's processes."""

    def __init__(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        self._env = lmdb.open(path, map_size=MAP_SIZE_BYTES, max_dbs=6, sync=False, metasync=False)
        self._env.reader_check()
        self._db = self._env.open_db(b"neighbours")
        self._beats = self._env.open_db(b"heartbeats")
        self._meta = self._env.open_db(b"meta")
        self._by_role = {role: self._env.open_db(f"role:{role}".encode()) for role in (Role.PARENT, Role.CHILD, Role.PEER)}
        self._apart()
        self._since_boot()
        self._index()

    def _apart(self) -> None:
        """Move the heartbeats of a table written before they were kept apart to their own database."""
        with self._env.begin(write=True) as txn:
            if txn.get(_APART, db=self._meta):
                return
            for key, raw in list(txn.cursor(db=self._db)):
                fields = _fields(raw)
                if fields is None or not any(name in fields for name in _HEARD):
                    continue
                last_seen, heartbeat = fields.pop("last_seen", None), fields.pop("heartbeat", None)
                txn.put(key, orjson.dumps(fields), db=self._db)
                if heartbeat is not None:
                    txn.put(key, _heard(last_seen, orjson.dumps(heartbeat)), db=self._beats)
            txn.put(_APART, b"1", db=self._meta)

    def _index(self) -> None:
        """Index by role the entries of a table written before the index was kept."""
        with self._env.begin(write=True) as txn:
            if txn.get(_INDEXED, db=self._meta):
                return
            for key, raw in txn.cursor(db=self._db):
                known = _decode(raw)
                if known is not None and known.role in self._by_role:
                    txn.put(key, b"", db=self._by_role[known.role])
            txn.put(_INDEXED, b"1", db=self._meta)

    def _since_boot(self) -> None:
        """Take back the stamps of an earlier boot: they cannot be compared with this boot's clock."""
        with self._env.begin(write=True) as txn:
            if txn.get(_BOOT, db=self._meta) == boot_clock.BOOT_ID.encode():
                return
            now = boot_clock.now()
            for key, raw in list(txn.cursor(db=self._db)):
                fields = _fields(raw)
                if fields is not None:
                    txn.put(key, orjson.dumps({**fields, "added_at": now}), db=self._db)
            for key, heard in list(txn.cursor(db=self._beats)):
                txn.put(key, _heard(None, heard[_STAMP.size:]), db=self._beats)
            txn.put(_BOOT, boot_clock.BOOT_ID.encode(), db=self._meta)

    def close(self) -> None:
        self._env.close()

    def upsert(self, neighbour: Neighbour) -> None:
        """Add or re-address a neighbour, keeping what its heartbeats already told."""
        key = neighbour.node_id.encode()
        with self._env.begin(write=True, db=self._db) as txn:
            raw = txn.get(key)
            known = _decode(raw) if raw is not None else None
            if known is not None:
                neighbour = dataclasses.replace(neighbour, added_at=known.added_at)
                self._unindex(txn, key, known.role)
            else:
                neighbour = dataclasses.replace(neighbour, added_at=neighbour.added_at or boot_clock.now())
            txn.put(key, orjson.dumps({name: value for name, value in neighbour.to_dict().items() if name not in _HEARD}))
            if neighbour.role in self._by_role:
                txn.put(key, b"", db=self._by_role[neighbour.role])
            self._bump(txn)

    def _unindex(self, txn: lmdb.Transaction, key: bytes, role: str) -> None:
        if role in self._by_role:
            txn.delete(key, db=self._by_role[role])

    def record_heartbeats(self, heartbeats: Iterable[tuple[str, bytes]], received_at: float,
                          news: Collection[str] = (), accept: Callable[[dict[str, Any]], bool] | None = None
                          ) -> list[str | None]:
        """Store neighbours' heartbeats (node id, the message's JSON as received) in one transaction
        (``received_at``: a ``boot_clock`` stamp); return each one's role (None: not a neighbour, or not one
        whose stored fields ``accept`` takes a heartbeat from; nothing stored). The revision moves when one of
        ``news`` is stored: the heartbeats the caller found to change what consoles show."""
        roles: list[str | None] = []
        with self._env.begin(write=True) as txn:
            changed = False
            for node_id, payload in heartbeats:
                key = node_id.encode()
                raw = txn.get(key, db=self._db)
                fields = _fields(raw) if raw is not None else None
                role = fields.get("role") if fields is not None else None
                if not isinstance(role, str) or (accept is not None and not accept(fields)):
                    roles.append(None)
                    continue
                roles.append(role)
                txn.put(key, _heard(received_at, payload), db=self._beats)
                changed |= node_id in news
            if changed:
                self._bump(txn)
        return roles

    def remove(self, node_id: str) -> bool:
        """Forget a neighbour; False if it was not known."""
        key = node_id.encode()
        with self._env.begin(write=True, db=self._db) as txn:
            raw = txn.get(key)
            removed = txn.delete(key)
            txn.delete(key, db=self._beats)
            if removed:
                known = _decode(raw) if raw is not None else None
                for role in self._by_role if known is None else (known.role,):
                    self._unindex(txn, key, role)
                self._bump(txn)
        return removed

    def with_role(self, role: str, after: str = "", limit: int | None = None) -> list[Neighbour]:
        """The neighbours of ``role`` by node id, from the first after ``after``, at most ``limit``: read
        from the role's index, so a page costs its own size, not the table's."""
        found: list[Neighbour] = []
        with self._env.begin() as txn:
            cursor = txn.cursor(db=self._by_role[role])
            if not (cursor.set_range(after.encode() + b"\0") if after else cursor.first()):
                return found
            for key in cursor.iternext(values=False):
                if limit is not None and len(found) >= limit:
                    break
                raw = txn.get(key, db=self._db)
                neighbour = self._read(txn, key, raw) if raw is not None else None
                if neighbour is not None:
                    found.append(neighbour)
        return found

    def silent(self, role: str, since: float) -> list[str]:
        """The ids of neighbours of ``role`` last heard before ``since`` (never heard in this boot: added
        before it), from the stamps alone: no heartbeat is read."""
        found = []
        with self._env.begin() as txn:
            for key in txn.cursor(db=self._by_role[role]).iternext(values=False):
                heard = txn.get(key, db=self._beats)
                last_seen = _STAMP.unpack_from(heard)[0] if heard is not None else math.nan
                if math.isnan(last_seen):
                    fields = _fields(txn.get(key, db=self._db) or b"")
                    last_seen = (fields or {}).get("added_at") or since
                if last_seen < since:
                    found.append(key.decode())
        return found

    def count(self, role: str) -> int:
        """How many neighbours of ``role`` there are, in constant time (LMDB keeps each database's size)."""
        with self._env.begin() as txn:
            return txn.stat(self._by_role[role])["entries"]

    def fan_in_secret(self) -> bytes:
        """This node's fan-in secret (``mesh.fanin``), made by the first process that asks."""
        with self._env.begin(db=self._meta) as txn:
            secret = txn.get(_FAN_IN_SECRET)
        if secret is None:
            with self._env.begin(write=True, db=self._meta) as txn:
                secret = txn.get(_FAN_IN_SECRET)
                if secret is None:
                    secret = secrets.token_bytes(32)
                    txn.put(_FAN_IN_SECRET, secret)
        return bytes(secret)

    def set_children_online(self, online: int) -> None:
        """The register's count of children online (as of its last heartbeat), for readers of a summary."""
        with self._env.begin(write=True, db=self._meta) as txn:
            txn.put(_CHILDREN_ONLINE, str(online).encode())

    def children_online(self) -> int | None:
        """The register's last count of children online (None: it has not counted yet)."""
        with self._env.begin(db=self._meta) as txn:
            raw = txn.get(_CHILDREN_ONLINE)
        return int(raw) if raw else None

    def revision(self) -> int:
        """A counter of changes to what the table shows; a neighbour going silent does not move it."""
        with self._env.begin(db=self._meta) as txn:
            return int(txn.get(_REVISION) or 0)

    def _bump(self, txn: lmdb.Transaction) -> None:
        txn.put(_REVISION, str(int(txn.get(_REVISION, db=self._meta) or 0) + 1).encode(), db=self._meta)

    def get(self, node_id: str) -> Neighbour | None:
        key = node_id.encode()
        with self._env.begin() as txn:
            raw = txn.get(key, db=self._db)
            return self._read(txn, key, raw) if raw else None

    def all(self) -> list[Neighbour]:
        with self._env.begin() as txn:
            found = [self._read(txn, key, raw) for key, raw in txn.cursor(db=self._db)]
        return [neighbour for neighbour in found if neighbour is not None]

    def _read(self, txn: lmdb.Transaction, key: bytes, raw: bytes) -> Neighbour | None:
        """An entry with its last heartbeat (a field the message did not carry takes its default)."""
        fields = _fields(raw)
        if fields is None:
            return None
        heard = txn.get(key, db=self._beats)
        if heard is not None:
            last_seen = _STAMP.unpack_from(heard)[0]
            fields = {**fields, "last_seen": None if math.isnan(last_seen) else last_seen,
                      "heartbeat": _as_received(heard[_STAMP.size:])}
        return _neighbour(fields)


_FIELDS = frozenset(field.name for field in dataclasses.fields(Neighbour))


def _decode(raw: bytes) -> Neighbour | None:
    """A stored entry, or None for one that is not a neighbour (written by something else): skipped. Fields
    it does not know (written by a newer version) are left out."""
    fields = _fields(raw)
    return _neighbour(fields) if fields is not None else None


def _heard(last_seen: float | None, payload: bytes) -> bytes:
    return _STAMP.pack(math.nan if last_seen is None else last_seen) + bytes(payload)


def _as_received(payload: bytes) -> dict[str, Any] | None:
    """A stored heartbeat: the message's fields, its protocol as ``"major.minor"`` (from the envelope's
    ``v`` and ``minor``, or as an older table stored it)."""
    heartbeat = _fields(payload)
    if heartbeat is not None and "v" in heartbeat:
        heartbeat["protocol"] = f"{heartbeat.pop('v')}.{heartbeat.pop('minor', 0)}"
    return heartbeat


def _fields(raw: bytes) -> dict[str, Any] | None:
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return fields if isinstance(fields, dict) else None


def _neighbour(fields: dict[str, Any]) -> Neighbour | None:
    try:
        neighbour = Neighbour(**{name: value for name, value in fields.items() if name in _FIELDS})
    except TypeError:
        return None
    return neighbour if isinstance(neighbour.node_id, str) and isinstance(neighbour.mesh_endpoint, str) else None
