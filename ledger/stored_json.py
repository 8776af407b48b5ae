"""Each workload record's stored JSON object as this process last parsed it, kept while the stored bytes stay the
same.

The readers of every record test each one's stored JSON: the scheduler's round each second, the deployment
controller's twice a second, the health checks' look, and a heartbeat's status counts. Parsing it was most of
their cost: 2.6 ms for 1,000 records of 840 bytes, where comparing the bytes with those parsed last time costs
0.25 ms (in-process, 50 reads of each kind). With 2,000 running, an idle node's scheduler went from 2.8 % of a
core to 2.1 % (``bench/running_load.py``).

Every write transaction bumps the ledger's version, so a read of every record at the version of the last one
reads nothing from LMDB: the objects kept then are every record as it is. With 2,000 records, a read that tests
each one (the controller's, twice a second) took 1.4 ms with LMDB's cursor and the comparison of each record's
bytes, and 0.2 to 0.4 ms from the kept objects (in-process, 50 reads); an idle node with 2,000 running went from
4.6 to 2.0 % of a core, its scheduler from 1.9 to 1.0 (``bench/running_load.py``, with supervisord's
``cnet.getGroupStates``).

A kept object is shared by every read that finds the same bytes, so a reader must never change one. The ledger
makes a record from bytes parsed afresh."""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import orjson

StoredJson = dict[str, Any]


class ParsedRecords:
    """The parsed objects of one process's reads of every record, by record key, and the ledger version they were
    read at; safe for threads (the pair is swapped whole, and a kept dict never changes)."""

    def __init__(self) -> None:
        self._read: tuple[int | None, dict[bytes, tuple[bytes, StoredJson]]] = (None, {})

    def parsed(self, items: Iterable[tuple[bytes, bytes]], every_record: bool,
               version: int) -> Iterator[tuple[StoredJson, bytes]]:
        """(object, stored bytes) for each (key, stored bytes) read in a transaction at the ledger's ``version``.
        ``every_record``: the items are every record. Such a read keeps its objects (the records deleted since the
        last one are gone from them); at the version of the last one, it takes the kept objects and leaves
        ``items`` unread, as nothing was written since."""
        read_at, kept = self._read
        if every_record and read_at == version:
            for raw, data in kept.values():
                yield data, raw
            return
        taken: dict[bytes, tuple[bytes, StoredJson]] = {}
        for key, raw in items:
            entry = kept.get(key)
            if entry is None or entry[0] != raw:
                entry = (raw, orjson.loads(raw))
            taken[key] = entry
            yield entry[1], raw
        if every_record:
            self._read = (version, taken)
