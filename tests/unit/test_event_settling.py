"""The monitor's settling of one supervisord event, against a real ledger: a live workload's RUNNING event is
settled from the pid it names, without asking supervisord (settling takes no more than the pid from a running
program); an ended workload's RUNNING, and every other event of a workload's program, is settled from
supervisord's view of the program."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from cnetd.common.paths import WORKLOAD_GROUP, program_name
from cnetd.core.lifecycle import finish, mark_started
from cnetd.monitor.eventlistener import Event
from cnetd.monitor.settling import on_event
from ledger.records import Resources, Status, WorkloadRecord
from ledger.store import Ledger


class SupervisorViews:
    """Answers ``info`` as supervisord would for one program, and counts what it was asked."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info_of, self.asked = info, 0

    def info(self, program: str) -> dict[str, Any]:
        self.asked += 1
        return self.info_of

    def remove(self, program: str) -> None:
        pass


@pytest.fixture
def ledger(tmp_path) -> Iterator[Ledger]:
    store = Ledger(str(tmp_path / "ledger"))
    store.set_node({"node_id": "n"}, Resources(cpu=4.0))
    store.admit(WorkloadRecord(id="w", type="process", name="w", config={}, requirements=Resources(cpu=1.0),
                               program=f"{WORKLOAD_GROUP}:{program_name('w')}"))
    store.update("w", mark_started(41))
    yield store
    store.close()


def state_event(state: str, pid: int, workload_id: str = "w") -> Event:
    return Event(f"PROCESS_STATE_{state}", {"processname": program_name(workload_id), "groupname": WORKLOAD_GROUP,
                                            "from_state": "STARTING", "pid": str(pid)})


def test_a_running_event_of_the_recorded_process_asks_supervisord_nothing(ledger: Ledger) -> None:
    supervisor = SupervisorViews({"statename": "RUNNING", "pid": 41})
    settled = on_event(state_event("RUNNING", 41), ledger, supervisor)
    assert settled is not None and settled.status == Status.RUNNING and settled.process_pid == 41
    assert supervisor.asked == 0


def test_a_running_event_before_the_scheduler_recorded_the_start_records_it(ledger: Ledger) -> None:
    ledger.admit(WorkloadRecord(id="v", type="process", name="v", config={}, requirements=Resources(cpu=1.0),
                                program=f"{WORKLOAD_GROUP}:{program_name('v')}"))
    supervisor = SupervisorViews({"statename": "RUNNING", "pid": 43})
    settled = on_event(state_event("RUNNING", 43, "v"), ledger, supervisor)
    assert supervisor.asked == 0
    assert settled is not None and settled.status == Status.RUNNING and settled.process_pid == 43


def test_an_ended_workloads_running_event_is_settled_from_supervisords_view(ledger: Ledger) -> None:
    ledger.update("w", finish(Status.COMPLETED, 0, "exited 0"))
    supervisor = SupervisorViews({"statename": "RUNNING", "pid": 42, "start": int(time.time()) + 1})  # by hand
    settled = on_event(state_event("RUNNING", 42), ledger, supervisor)
    assert supervisor.asked == 1
    assert settled is not None and settled.process_pid == 42


def test_an_exit_is_settled_from_supervisords_view(ledger: Ledger) -> None:
    supervisor = SupervisorViews({"statename": "EXITED", "pid": 0, "exitstatus": 3})
    settled = on_event(state_event("EXITED", 41), ledger, supervisor)
    assert supervisor.asked == 1
    assert settled is not None and settled.status == Status.FAILED and settled.exit_code == 3
