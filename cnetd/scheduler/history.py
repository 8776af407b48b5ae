"""How much of its history a node keeps: the newest ``workloads.keep_finished`` finished workloads (completed,
failed or stopped); older ones are deleted as a DELETE would delete them (program, logs, files, record), as
Nomad's client collects terminal allocations beyond ``gc_max_allocs``.

Without a bound, every finished workload stayed in the ledger for good, and each full read of it grew with the
node's age: the register's heartbeats, the monitor's settling, the scheduler's rounds, ``GET /api/workloads``.
Measured (``bench/history.py``): with 20,000 finished, an idle node used 133 % of a core, a submission and its
delete took 943 ms (19 ms with none) and the listing 1,009 ms; bounded at the default 100, 1.1 %, 22 ms, 3 ms.
Deployments and their replicas are their controller's to delete, what was deployed with another workload goes
with it, pointers are their next hop's; data is kept until it is deleted.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from ledger.records import WorkloadRecord


def finished_beyond(records: list[WorkloadRecord], keep: int) -> list[WorkloadRecord]:
    """The finished workloads past the newest ``keep`` of them, the longest finished first."""
    finished = [record for record in records if record.terminal and not record.remote and record.deployment is None
                and record.replica_of is None and record.owned_by is None]
    if len(finished) <= keep:
        return []
    finished.sort(key=lambda record: record.finished_at or record.created_at)
    return finished[:len(finished) - keep]


class HistorySweep:
    """Deletes what ``finished_beyond`` finds, one sweep at a time, in a pool thread (never on the serial one)."""

    def __init__(self, keep: int, delete_finished: Callable[[str], None],
                 submit_background: Callable[[Callable[[], Any]], None]) -> None:
        self._keep = keep
        self._delete_finished = delete_finished
        self._submit_background = submit_background
        self._sweeping = threading.Event()

    def __call__(self, records: list[WorkloadRecord]) -> None:
        if self._sweeping.is_set():
            return
        old = finished_beyond(records, self._keep)
        if not old:
            return
        self._sweeping.set()

        def sweep() -> None:
            try:
                for record in old:
                    self._delete_finished(record.id)
            finally:
                self._sweeping.clear()
        self._submit_background(sweep)
