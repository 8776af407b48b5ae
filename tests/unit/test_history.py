"""Which finished workloads a node no longer keeps: the longest finished beyond ``workloads.keep_finished``."""
from __future__ import annotations

from typing import Any

from cnetd.scheduler.history import HistorySweep, finished_beyond
from ledger.records import Resources, WorkloadRecord


def record(workload_id: str, status: str = "completed", finished_at: float | None = 0.0, **fields: Any) -> WorkloadRecord:
    return WorkloadRecord(id=workload_id, type="process", name=workload_id, config={}, requirements=Resources(),
                          status=status, finished_at=finished_at, **fields)


def test_the_longest_finished_beyond_the_kept_go_first() -> None:
    records = [record("c", finished_at=30.0), record("a", finished_at=10.0), record("run", "running", None),
               record("b", finished_at=20.0), record("s", "stopped", finished_at=40.0)]
    assert [old.id for old in finished_beyond(records, 2)] == ["a", "b"]
    assert finished_beyond(records, 4) == [] and [old.id for old in finished_beyond(records, 0)] == ["a", "b", "c", "s"]


def test_deployments_replicas_what_another_deployed_pointers_and_data_are_not_history() -> None:
    records = [record("d", "stopped", deployment={"replicas": 1}), record("r", replica_of="d"),
               record("o", owned_by="stream-1"), record("p", delegated_to="elsewhere"),
               record("data", "stored", None)]
    assert finished_beyond(records, 0) == []


def test_one_sweep_at_a_time() -> None:
    deleted: list[str] = []
    queued: list[Any] = []
    sweep = HistorySweep(1, deleted.append, queued.append)
    records = [record("a", finished_at=1.0), record("b", finished_at=2.0)]
    sweep(records)
    sweep(records)  # the first is still queued: no second
    assert len(queued) == 1
    queued.pop()()
    assert deleted == ["a"]
    sweep([record("b", finished_at=2.0), record("c", finished_at=3.0)])
    assert len(queued) == 1
