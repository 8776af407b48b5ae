"""Settling a record against its program's process info: which running program is a start by hand, and which exit
is restarted when a stop is recorded meanwhile."""
from __future__ import annotations

import time

import pytest

from cnetd.core.lifecycle import desire, finish, mark_started, settle
from ledger.records import Desired, Resources, Status, WorkloadRecord
from ledger.store import Ledger


class Programs:
    """What settle asks of supervisord, kept as a list of calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def restart(self, program: str) -> None:
        self.calls.append(("restart", program))

    def stop(self, program: str) -> None:
        self.calls.append(("stop", program))

    def remove(self, program: str) -> None:
        self.calls.append(("remove", program))


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    store = Ledger(str(tmp_path / "ledger"))
    store.set_node({"node_id": "n"}, Resources(cpu=4.0))
    yield store
    store.close()


def failed_service(ledger: Ledger) -> WorkloadRecord:
    """A service failed by its start timeout: recorded first, its process killed after."""
    ledger.admit(WorkloadRecord(id="s", type="mlmodel", name="s", config={}, requirements=Resources(cpu=1.0),
                                program="workloads:wl-s", health_url="http://127.0.0.1:9/health"))
    ledger.update("s", mark_started(4321))
    return ledger.update("s", finish(Status.FAILED, message="not healthy within 3 s of its start"))


def test_the_process_it_failed_with_still_running_is_not_a_start_by_hand(ledger: Ledger) -> None:
    record = failed_service(ledger)
    programs = Programs()
    info = {"statename": "RUNNING", "pid": 4321, "start": int(record.finished_at) - 3}
    assert settle(ledger, programs, record, info) == record
    assert ledger.get("s").status == Status.FAILED and ledger.usage().allocated == Resources()
    assert programs.calls == []


def test_a_process_started_after_it_ended_runs_again_and_holds_its_resources(ledger: Ledger) -> None:
    record = failed_service(ledger)  # the control: the same record, a process begun after its end
    info = {"statename": "RUNNING", "pid": 5555, "start": int(time.time())}
    revived = settle(ledger, Programs(), record, info)
    assert revived.status == Status.STARTING and revived.process_pid == 5555
    assert ledger.usage().allocated == Resources(cpu=1.0)


def crashing_service(ledger: Ledger) -> WorkloadRecord:
    """A program restarted always, running, as the monitor reads it when its exit comes."""
    ledger.admit(WorkloadRecord(id="c", type="process", name="c", config={}, requirements=Resources(cpu=1.0),
                                program="workloads:wl-c", restart_policy="always"))
    return ledger.update("c", mark_started(4321))


def test_a_stop_recorded_after_the_exit_was_read_is_not_undone_by_a_restart(ledger: Ledger) -> None:
    read = crashing_service(ledger)  # the monitor has read the record (desired run), then the stop is recorded
    ledger.update("c", desire(Desired.STOP))
    programs = Programs()
    settled = settle(ledger, programs, read, {"statename": "EXITED", "exitstatus": 3})
    assert programs.calls == [("remove", "workloads:wl-c")]  # not started again
    assert settled.status == Status.FAILED and settled.desired == Desired.STOP and settled.restarts == 0
    assert ledger.usage().allocated == Resources()


def test_the_control_an_exit_with_no_stop_is_restarted(ledger: Ledger) -> None:
    read = crashing_service(ledger)
    programs = Programs()
    settled = settle(ledger, programs, read, {"statename": "EXITED", "exitstatus": 3})
    assert programs.calls == [("restart", "workloads:wl-c")]
    assert settled.status == Status.STARTING and settled.restarts == 1


class StoppedAsItStarts(Programs):
    """A restart during which the user's stop (or delete) is recorded: it found the program exited, not running."""

    def __init__(self, ledger: Ledger, deleted: bool) -> None:
        super().__init__()
        self._ledger, self._deleted = ledger, deleted

    def restart(self, program: str) -> None:
        super().restart(program)
        if self._deleted:
            self._ledger.remove("c")
        else:
            self._ledger.update("c", desire(Desired.STOP))


@pytest.mark.parametrize("deleted", [False, True], ids=["stopped", "deleted"])
def test_a_stop_recorded_while_the_restart_starts_stops_the_program_again(ledger: Ledger, deleted: bool) -> None:
    read = crashing_service(ledger)
    programs = StoppedAsItStarts(ledger, deleted)
    settle(ledger, programs, read, {"statename": "EXITED", "exitstatus": 3})
    assert programs.calls == [("restart", "workloads:wl-c"), ("stop", "workloads:wl-c")]
