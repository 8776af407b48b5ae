"""Orphans: workloads deployed with another one (a stream's own detector) whose owner is gone, because its
submission was refused or its API ended between the two. The API makes the owned one first, so an owner missing
for a moment is an owner on its way: a workload is an orphan only once its owner has been missing for the longest
the API takes between them. That wait is timed on the scheduler's monotonic clock, not by the record's wall-clock
``created_at``, so a wall-clock step forward never takes a detector whose stream is still on its way."""
from __future__ import annotations

from ledger.records import Desired, WorkloadRecord


def owner_gone(records: list[WorkloadRecord], ids: set[str]) -> list[WorkloadRecord]:
    """Those of ``records`` deployed with another workload whose id is not among ``ids`` (every record's, read
    after ``records``), not being deleted already."""
    return [record for record in records if record.owned_by and record.owned_by not in ids
            and (record.remote or record.desired != Desired.STOP) and not (record.deployment or {}).get("deleting")]


class OrphanWatch:
    """What ``owner_gone`` has said for at least ``grace_s`` (this process's monotonic seconds), round after round."""

    def __init__(self, grace_s: float) -> None:
        self._grace_s = grace_s
        self._missing_since: dict[str, float] = {}  # workload id → when its owner was first seen missing

    def orphans(self, records: list[WorkloadRecord], ids: set[str], now: float) -> list[WorkloadRecord]:
        candidates = owner_gone(records, ids)
        self._missing_since = {record.id: self._missing_since.get(record.id, now) for record in candidates}
        return [record for record in candidates if now - self._missing_since[record.id] >= self._grace_s]
