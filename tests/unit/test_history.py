"""Which finished workloads a node no longer keeps: the longest finished beyond ``workloads.keep_finished``."""
from __future__ import annotations

from typing import Any

from cnetd.scheduler.history import HistorySweep, finished_beyond
from cnetd.scheduler.orphans import owner_gone
from cnetd.scheduler.scheduler import acted_on_in_a_round
from cnetd.core.upload_files import abandoned
from ledger.records import Resources, WorkloadRecord


def record(workload_id: str, status: str = "completed", finished_at: float | None = 0.0, **fields: Any) -> WorkloadRecord:
    return WorkloadRecord(**{"type": "process", "config": {}, **fields}, id=workload_id, name=workload_id,
                          requirements=Resources(), status=status, finished_at=finished_at)


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


def test_a_round_makes_only_the_records_it_may_act_on() -> None:
    """The scheduler's round (each second, on its serial thread) filters the stored JSON and makes only what its
    history, orphans, abandoned uploads and unknown pointers look at; what runs is not made. Each of those finds
    the same among the records the round makes as among all of them."""
    records = [record("run", "running", None), record("start", "starting", None), record("done", finished_at=5.0),
               record("failed", "failed", 6.0), record("stopped", "stopped", 7.0),
               record("detector", "running", None, owned_by="gone-stream"),
               record("upload", "uploading", None, type="data", config={"receiver": {"pid": 0, "started": 0.0}}),
               record("stored", "stored", None, type="data"), record("pointer", "unknown", None, delegated_to="c1"),
               record("deployment", "running", None, deployment={"replicas": 2})]
    made = [found for found in records if acted_on_in_a_round(found.to_dict())]
    assert [found.id for found in made] == ["done", "failed", "stopped", "detector", "upload", "pointer"]
    ids = {found.id for found in records}
    assert finished_beyond(made, 1) == finished_beyond(records, 1) and owner_gone(made, ids) == owner_gone(records, ids)
    assert abandoned(made) == abandoned(records) != []
