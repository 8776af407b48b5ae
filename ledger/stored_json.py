"""Each workload record's stored JSON object as this process last parsed it, kept while the stored bytes stay the
same.

The readers of every record test each one's stored JSON: the scheduler's round each second, the deployment
controller's twice a second, the health checks' look, and a heartbeat's status counts. Parsing it was most of
their cost: 2.6 ms for 1,000 records of 840 bytes, where comparing the bytes with those parsed last time costs
0.25 ms (in-process, 50 reads of each kind). With 2,000 running, an idle node's scheduler went from 2.8 % of a
core to 2.1 % (``bench/running_load.py``); LMDB's cursor and the keys are most of what is left.

A kept object is shared by every read that finds the same bytes, so a reader must never change one. The ledger
makes a record from bytes parsed afresh."""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import orjson

StoredJson = dict[str, Any]


class ParsedRecords:
    """The parsed objects of one process's reads, by record key; safe for threads (one dict is swapped whole)."""

    def __init__(self) -> None:
        self._kept: dict[bytes, tuple[bytes, StoredJson]] = {}

    def parsed(self, items: Iterable[tuple[bytes, bytes]], every_record: bool) -> Iterator[tuple[StoredJson, bytes]]:
        """(object, stored bytes) for each (key, stored bytes) read. ``every_record``: the items are every record,
        so the objects of records deleted since the last read are dropped once all items have been taken."""
        kept = self._kept
        taken: dict[bytes, tuple[bytes, StoredJson]] = {} if every_record else kept
        for key, raw in items:
            entry = kept.get(key)
            if entry is None or entry[0] != raw:
                entry = (raw, orjson.loads(raw))
            taken[key] = entry
            yield entry[1], raw
        if every_record:
            self._kept = taken
