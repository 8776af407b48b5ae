"""The LMDB ledger: capacity, allocations and workload records, changed only in atomic write transactions.

One ``Ledger`` (one LMDB environment) per process, opened after any fork. Every write transaction bumps
a version counter and, after commit, calls ``on_change(version)`` so the process can announce it.
"""
from __future__ import annotations

import collections
import dataclasses
import errno
import itertools
import os
from typing import Any, Callable, Iterator, Sequence

import lmdb
import orjson

from cnetd.common.errors import InsufficientResources, InsufficientStorage, NotFound
from ledger.records import Resources, Usage, WorkloadRecord
from ledger.stored_json import ParsedRecords

MAP_SIZE_BYTES = 1 << 30  # sparse file: costs nothing until used; py-lmdb's 10 MiB default is far too small
MAX_KEY_BYTES = 511  # LMDB's largest key (MDB_MAXKEYSIZE as built into py-lmdb)
_IDENTITY, _CAPACITY, _ALLOCATED, _VERSION = b"identity", b"capacity", b"allocated", b"version"
_GPUS, _GPU_HOLDERS, _CAPABILITIES = b"gpus", b"gpu_holders", b"capabilities"

OnChange = Callable[[int], None]
RecordChange = Callable[[WorkloadRecord], "WorkloadRecord | None"]
Where = Callable[[dict[str, Any]], bool]  # a test of a record's stored JSON object, which it must not change
Position = tuple[float, str]  # a record's place in a listing: (created_at, id), oldest first, then by id


def _position(stored: dict[str, Any]) -> Position:
    return stored["created_at"], stored["id"]


class Ledger:
    """Resource ledger of one node, backed by one memory-mapped LMDB environment."""

    def __init__(self, path: str, on_change: OnChange | None = None) -> None:
        os.makedirs(path, exist_ok=True)
        self._env = lmdb.open(path, map_size=MAP_SIZE_BYTES, max_dbs=8)
        self._env.reader_check()  # clear reader slots left by a process that was killed
        self._node_db = self._env.open_db(b"node")
        self._allocations_db = self._env.open_db(b"allocations")
        self._workloads_db = self._env.open_db(b"workloads")
        self._fences_db = self._env.open_db(b"fences")
        self._on_change = on_change
        self._parsed = ParsedRecords()  # what the readers of every record parsed, while it is unchanged

    def close(self) -> None:
        self._env.close()

    # -- node -----------------------------------------------------------------------------------

    def set_node(self, identity: dict[str, Any], capacity: Resources,
                 gpu_devices: list[dict[str, Any]] | None = None) -> None:
        """This node's identity and capacity; ``gpu_devices`` describe the devices counted in capacity.gpu."""
        def write(txn: lmdb.Transaction) -> None:
            txn.put(_IDENTITY, orjson.dumps(identity), db=self._node_db)
            txn.put(_CAPACITY, orjson.dumps(capacity.to_dict()), db=self._node_db)
            txn.put(_GPUS, orjson.dumps(gpu_devices or []), db=self._node_db)
        self._commit(write)

    def set_capabilities(self, capabilities: dict[str, Any]) -> bool:
        """What this node can run and its labels (``{"features": [...], "labels": {...}}``), for placement here
        and in heartbeats; committed (and announced) only when it changed. Whether it did."""
        encoded = orjson.dumps(capabilities, option=orjson.OPT_SORT_KEYS)
        with self._env.begin(db=self._node_db) as txn:
            if txn.get(_CAPABILITIES) == encoded:
                return False
        self._commit(lambda txn: txn.put(_CAPABILITIES, encoded, db=self._node_db))
        return True

    def capabilities(self) -> dict[str, Any]:
        """What ``set_capabilities`` last stored (empty before the node first said)."""
        with self._env.begin(db=self._node_db) as txn:
            raw = txn.get(_CAPABILITIES)
        return orjson.loads(raw) if raw else {}

    def gpus(self) -> list[dict[str, Any]]:
        """Each GPU with the workload that holds it (None when free)."""
        with self._env.begin(db=self._node_db) as txn:
            devices = orjson.loads(txn.get(_GPUS) or b"[]")
            holders = orjson.loads(txn.get(_GPU_HOLDERS) or b"{}")
        return [{**device, "workload": holders.get(str(device["index"]))} for device in devices]

    def identity(self) -> dict[str, Any]:
        with self._env.begin(db=self._node_db) as txn:
            raw = txn.get(_IDENTITY)
        return orjson.loads(raw) if raw else {}

    def version(self) -> int:
        with self._env.begin(db=self._node_db) as txn:
            return _read_version(txn, self._node_db)

    def usage(self) -> Usage:
        with self._env.begin() as txn:
            return self._usage(txn)

    # -- allocations and workloads --------------------------------------------------------------

    def admit(self, record: WorkloadRecord) -> WorkloadRecord:
        """Check that ``record.requirements`` fit and allocate them with the record, atomically.

        Admitting an id that is already present returns the stored record unchanged (idempotent).
        """
        key = record.id.encode()

        def write(txn: lmdb.Transaction) -> WorkloadRecord:
            stored = txn.get(key, db=self._workloads_db)
            if stored is not None:
                return WorkloadRecord.from_dict(orjson.loads(stored))
            admitted = dataclasses.replace(record, gpu_devices=self._allocate(txn, key, record, "on this node"))
            txn.put(key, orjson.dumps(admitted), db=self._workloads_db)
            return admitted
        return self._commit(write)

    def readmit(self, workload_id: str, change: RecordChange) -> WorkloadRecord:
        """Hold a terminal record's requirements again and apply ``change`` (it runs again: an operator
        started its program by hand), atomically; ``InsufficientResources`` when they no longer fit."""
        key = _existing_key(workload_id)

        def write(txn: lmdb.Transaction) -> WorkloadRecord:
            current = self._read(txn, key)
            changed = change(current)
            if changed is None or txn.get(key, db=self._allocations_db) is not None:
                return current  # not terminal, or holding already
            devices = self._allocate(txn, key, current, "on this node to run it again")
            revived = dataclasses.replace(changed, gpu_devices=devices)
            txn.put(key, orjson.dumps(revived), db=self._workloads_db)
            return revived
        return self._commit(write)

    def record_holding_nothing(self, record: WorkloadRecord) -> WorkloadRecord:
        """Store a record that holds nothing here: a pointer to a workload delegated to another node, or a
        deployment (each of its replicas holds what it needs)."""
        key = record.id.encode()

        def write(txn: lmdb.Transaction) -> WorkloadRecord:
            stored = txn.get(key, db=self._workloads_db)
            if stored is not None:
                return WorkloadRecord.from_dict(orjson.loads(stored))
            txn.put(key, orjson.dumps(record), db=self._workloads_db)
            return record
        return self._commit(write)

    def update(self, workload_id: str, change: RecordChange) -> WorkloadRecord:
        """Apply ``change`` to a record in one transaction; it returns the new record, or None for no change.

        A record that becomes terminal gives its allocation back in the same transaction.
        """
        key = _existing_key(workload_id)
        unchanged: list[WorkloadRecord] = []

        def write(txn: lmdb.Transaction) -> WorkloadRecord:
            current = self._read(txn, key)
            changed = self._apply(txn, key, current, change)
            if changed is None:
                unchanged.append(current)
                raise _NoChange
            return changed
        try:
            return self._commit(write)
        except _NoChange:
            return unchanged[0]

    def update_every(self, change: RecordChange) -> None:
        """Apply ``change`` to every record in one transaction (None: that one unchanged), as ``update`` does to
        one."""
        def write(txn: lmdb.Transaction) -> None:
            stored = [(key, WorkloadRecord.from_dict(orjson.loads(raw)))
                      for key, raw in txn.cursor(db=self._workloads_db)]
            for key, record in stored:
                self._apply(txn, key, record, change)
        self._commit(write)

    def resize(self, workload_id: str, change: RecordChange, requirements: Resources) -> WorkloadRecord:
        """Change a record and set its allocation to ``requirements`` (never more than it holds) in one transaction."""
        key = _existing_key(workload_id)

        def write(txn: lmdb.Transaction) -> WorkloadRecord:
            raw = txn.get(key, db=self._workloads_db)
            if raw is None:
                raise NotFound(f"no workload with id {workload_id!r}")
            held = txn.get(key, db=self._allocations_db)
            if held is None or not Resources.from_dict(orjson.loads(held)).covers(requirements):
                raise ValueError(f"workload {workload_id} cannot grow its allocation")
            changed = change(WorkloadRecord.from_dict(orjson.loads(raw))) or WorkloadRecord.from_dict(orjson.loads(raw))
            changed = dataclasses.replace(changed, requirements=requirements)
            self._release(txn, key)
            self._hold(txn, key, requirements)
            txn.put(key, orjson.dumps(changed), db=self._workloads_db)
            return changed
        return self._commit(write)

    def remove(self, workload_id: str) -> None:
        key = _existing_key(workload_id)

        def write(txn: lmdb.Transaction) -> None:
            if not txn.delete(key, db=self._workloads_db):
                raise NotFound(f"no workload with id {workload_id!r}")
            self._release(txn, key)
        self._commit(write)

    def confirm_or_fence(self, workload_id: str, attempt: str, now: float) -> WorkloadRecord | None:
        """The record of ``workload_id``; or, when there is none, fence ``attempt`` off (that forward, should
        it still arrive, is refused) and return None. One transaction, so no admit can slip between. ``now``:
        a ``boot_clock`` stamp, as for every fence."""
        key = workload_id.encode()

        def write(txn: lmdb.Transaction) -> WorkloadRecord | None:
            stored = txn.get(key, db=self._workloads_db)
            if stored is not None:
                return WorkloadRecord.from_dict(orjson.loads(stored))
            txn.put(key, orjson.dumps({"attempt": attempt, "at": now}), db=self._fences_db)
            return None
        return self._commit(write)

    def remove_and_fence(self, workload_id: str, attempt: str, now: float) -> None:
        """A forwarded workload refused after its admission here: its record goes, and its forward ``attempt``
        is fenced off in the same transaction, so its sender's settling learns it never ran."""
        key = workload_id.encode()

        def write(txn: lmdb.Transaction) -> None:
            if txn.delete(key, db=self._workloads_db):
                self._release(txn, key)
            txn.put(key, orjson.dumps({"attempt": attempt, "at": now}), db=self._fences_db)
        self._commit(write)

    def fenced(self, workload_id: str, attempt: str | None) -> bool:
        """Whether the forward ``attempt`` of ``workload_id`` was settled as never arrived."""
        with self._env.begin(db=self._fences_db) as txn:
            raw = txn.get(workload_id.encode())
        return raw is not None and attempt is not None and orjson.loads(raw)["attempt"] == attempt

    def prune_fences(self, now: float, kept_s: float) -> None:
        """Forget fences set more than ``kept_s`` before ``now`` (a forward that late has long been abandoned), and
        those stamped after ``now``: set in an earlier boot, whose forwards died with it."""
        with self._env.begin(db=self._fences_db) as txn:
            stale = [key for key, raw in txn.cursor() if not now - kept_s <= orjson.loads(raw)["at"] <= now]
        if stale:
            self._commit(lambda txn: [txn.delete(key, db=self._fences_db) for key in stale])

    def get(self, workload_id: str) -> WorkloadRecord:
        with self._env.begin(db=self._workloads_db) as txn:
            raw = txn.get(_existing_key(workload_id))
        if raw is None:
            raise NotFound(f"no workload with id {workload_id!r}")
        return WorkloadRecord.from_dict(orjson.loads(raw))

    def workloads(self, id_prefix: str = "", where: Where | None = None) -> list[WorkloadRecord]:
        """Every record (those whose id starts with ``id_prefix``: a range of the sorted keys), oldest first,
        then by id; with ``where``, those whose stored JSON object it accepts."""
        return list(self.in_order(id_prefix, where))

    def ids(self) -> set[str]:
        """Every record's id: the keys alone, no record read."""
        with self._env.begin(db=self._workloads_db) as txn:
            return {key.decode() for key in txn.cursor().iternext(keys=True, values=False)}

    def status_counts(self) -> dict[str, int]:
        """How many of the records this node runs (not its pointers to workloads it delegated) are in each status.
        Read from the stored JSON, no record made: a heartbeat counts them on every change (200 records: 0.3 ms,
        against 2 to 5 ms making each record)."""
        with self._env.begin(db=self._workloads_db) as txn:
            return dict(collections.Counter(data["status"] for data, _ in self._stored(txn)
                                            if data.get("delegated_to") is None))

    def in_order(self, id_prefix: str = "", where: Where | None = None, after: Position | None = None,
                 newest_first: bool = False) -> Iterator[WorkloadRecord]:
        """The records ``workloads`` gives (``newest_first``: in the reverse order), those past ``after`` (a
        record's (created_at, id)) in that order, each made as it is taken. A record is made only for what
        ``where`` accepts, and only when taken, so a reader of one page makes that page (py-spy, a page of 100 of
        1,000: making every record was 87 % of the listing's time, orjson a third of it, the dataclass two
        thirds)."""
        prefix = id_prefix.encode()
        with self._env.begin(db=self._workloads_db) as txn:
            stored = [(data, raw) for data, raw in self._stored(txn, prefix) if where is None or where(data)]
        ordered = sorted(stored, key=lambda item: _position(item[0]), reverse=newest_first)
        return (WorkloadRecord.from_dict(orjson.loads(raw)) for data, raw in ordered
                if after is None or (_position(data) < after if newest_first else _position(data) > after))

    def allocations(self) -> dict[str, Resources]:
        with self._env.begin(db=self._allocations_db) as txn:
            return {key.decode(): Resources.from_dict(orjson.loads(raw)) for key, raw in txn.cursor()}

    # -- internals ------------------------------------------------------------------------------

    def _stored(self, txn: lmdb.Transaction, prefix: bytes = b"") -> Iterator[tuple[dict[str, Any], bytes]]:
        """(stored JSON object, stored bytes) of each record whose key starts with ``prefix`` (every record: none),
        as ``ParsedRecords`` keeps them at the version ``txn`` reads."""
        cursor = txn.cursor()
        cursor.set_range(prefix)
        in_range = itertools.takewhile(lambda item: item[0].startswith(prefix), cursor)
        return self._parsed.parsed(in_range, every_record=not prefix, version=_read_version(txn, self._node_db))

    def _apply(self, txn: lmdb.Transaction, key: bytes, current: WorkloadRecord,
               change: RecordChange) -> WorkloadRecord | None:
        """Store what ``change`` makes of ``current`` (a record that becomes terminal gives its allocation back);
        None when it changed nothing."""
        changed = change(current)
        if changed is not None:
            txn.put(key, orjson.dumps(changed), db=self._workloads_db)
            if changed.terminal:
                self._release(txn, key)
        return changed

    def _read(self, txn: lmdb.Transaction, key: bytes) -> WorkloadRecord:
        raw = txn.get(key, db=self._workloads_db)
        if raw is None:
            raise NotFound(f"no workload with id {key.decode()!r}")
        return WorkloadRecord.from_dict(orjson.loads(raw))

    def _allocate(self, txn: lmdb.Transaction, key: bytes, record: WorkloadRecord, where: str) -> list[int]:
        """Hold ``record``'s requirements (GPU devices too, returned), or raise ``InsufficientResources``."""
        available = self._usage(txn).available
        short = available.shortfall(record.requirements)
        if short:
            raise InsufficientResources(f"not enough {', '.join(short)} {where}",
                                        requested=record.requirements.to_dict(), available=available.to_dict())
        devices = self._take_gpus(txn, record.id, record.requirements.gpu)
        self._hold(txn, key, record.requirements, devices)
        return devices

    def _resources(self, txn: lmdb.Transaction, key: bytes) -> Resources:
        raw = txn.get(key, db=self._node_db)
        return Resources.from_dict(orjson.loads(raw)) if raw else Resources()

    def _usage(self, txn: lmdb.Transaction) -> Usage:
        return Usage(self._resources(txn, _CAPACITY), self._resources(txn, _ALLOCATED))

    # The allocated total is kept beside the allocations, changed in the same transaction as they are,
    # so admitting costs the same with 1 or 1,000 allocations held.

    def _hold(self, txn: lmdb.Transaction, key: bytes, amount: Resources, gpu_devices: Sequence[int] = ()) -> None:
        txn.put(key, orjson.dumps({**amount.to_dict(), "gpu_devices": list(gpu_devices)}), db=self._allocations_db)
        total = self._resources(txn, _ALLOCATED) + amount
        txn.put(_ALLOCATED, orjson.dumps(total.to_dict()), db=self._node_db)

    def _release(self, txn: lmdb.Transaction, key: bytes) -> None:
        raw = txn.pop(key, db=self._allocations_db)
        if raw is not None:
            held = orjson.loads(raw)
            total = self._resources(txn, _ALLOCATED) - Resources.from_dict(held)
            txn.put(_ALLOCATED, orjson.dumps(total.to_dict()), db=self._node_db)
            if held.get("gpu_devices"):
                holders = orjson.loads(txn.get(_GPU_HOLDERS, db=self._node_db) or b"{}")
                for index in held["gpu_devices"]:
                    holders.pop(str(index), None)
                txn.put(_GPU_HOLDERS, orjson.dumps(holders), db=self._node_db)

    def _take_gpus(self, txn: lmdb.Transaction, workload_id: str, count: int) -> list[int]:
        """The lowest free device indices, marked as held by ``workload_id`` (admit checked there are enough)."""
        if not count:
            return []
        holders = orjson.loads(txn.get(_GPU_HOLDERS, db=self._node_db) or b"{}")
        capacity = self._resources(txn, _CAPACITY).gpu
        taken = [index for index in range(capacity) if str(index) not in holders][:count]
        holders.update({str(index): workload_id for index in taken})
        txn.put(_GPU_HOLDERS, orjson.dumps(holders), db=self._node_db)
        return taken

    def _commit(self, write: Callable[[lmdb.Transaction], Any]) -> Any:
        try:
            with self._env.begin(write=True) as txn:
                result = write(txn)
                version = _read_version(txn, self._node_db) + 1
                txn.put(_VERSION, str(version).encode(), db=self._node_db)
        except lmdb.DiskError as exc:
            if os.strerror(errno.ENOSPC) not in str(exc):
                raise
            raise InsufficientStorage("the node's disk is full: its ledger could not record the change, so nothing "
                                      "was done; free some space and try again") from None
        if self._on_change is not None:
            self._on_change(version)
        return result


def _existing_key(workload_id: str) -> bytes:
    """The key of a record that should exist: NotFound for an id no key can be (empty, or past LMDB's 511 bytes),
    which LMDB would refuse with an error of its own."""
    key = workload_id.encode()
    if not 0 < len(key) <= MAX_KEY_BYTES:
        raise NotFound(f"no workload with id {workload_id[:100]!r}")
    return key


class _NoChange(Exception):
    """Aborts a write transaction whose change function changed nothing."""


def _read_version(txn: lmdb.Transaction, node_db: Any) -> int:
    raw = txn.get(_VERSION, db=node_db)
    return int(raw) if raw else 0
