"""The LMDB ledger on its own: arithmetic, idempotence, terminal release, and atomic admits across processes."""
from __future__ import annotations

import collections
import dataclasses
import multiprocessing

import lmdb
import orjson

import pytest

from cnetd.common.errors import InsufficientResources, NotFound
from ledger import boot_clock
from ledger.nodetable import Neighbour, NodeTable, Role
from ledger.records import Resources, Status, WorkloadRecord
from ledger.store import Ledger
from cnetd.core.lifecycle import finish, mark_started

CAPACITY = Resources(cpu=8.0, memory=16 * 2**30, gpu=1, storage=100)


def record(workload_id: str, **requirements: float) -> WorkloadRecord:
    return WorkloadRecord(id=workload_id, type="process", name=workload_id, config={},
                          requirements=Resources(**requirements))


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    store = Ledger(str(tmp_path / "ledger"))
    store.set_node({"node_id": "n"}, CAPACITY)
    yield store
    store.close()


def test_admit_and_finish_move_allocated_and_available(ledger: Ledger) -> None:
    ledger.admit(record("a", cpu=2.0, memory=2 * 2**30))
    usage = ledger.usage()
    assert usage.allocated == Resources(cpu=2.0, memory=2 * 2**30)
    assert usage.available == Resources(cpu=6.0, memory=14 * 2**30, gpu=1, storage=100)
    ledger.update("a", finish(Status.COMPLETED, 0))
    assert ledger.usage().allocated == Resources()
    assert ledger.get("a").status == Status.COMPLETED  # the record stays until removed


def test_refusal_names_what_is_short_and_allocates_nothing(ledger: Ledger) -> None:
    with pytest.raises(InsufficientResources) as refused:
        ledger.admit(record("big", cpu=4.0, gpu=2))
    assert "gpu" in refused.value.message and refused.value.details["available"]["gpu"] == 1
    assert ledger.usage().allocated == Resources() and ledger.workloads() == []


def test_admit_is_idempotent_on_id(ledger: Ledger) -> None:
    ledger.admit(record("a", cpu=1.0))
    ledger.admit(record("a", cpu=1.0))
    assert ledger.usage().allocated.cpu == 1.0 and len(ledger.workloads()) == 1


def test_fractional_cpu_sums_exactly(ledger: Ledger) -> None:
    for index in range(10):
        ledger.admit(record(f"w{index}", cpu=0.1))
    assert ledger.usage().allocated.cpu == 1.0


def test_terminal_records_ignore_later_transitions(ledger: Ledger) -> None:
    ledger.admit(record("a", cpu=1.0))
    ledger.update("a", finish(Status.FAILED, 3))
    version = ledger.version()
    assert ledger.update("a", mark_started(1234)).status == Status.FAILED
    assert ledger.update("a", finish(Status.COMPLETED, 0)).exit_code == 3
    assert ledger.version() == version  # no-op changes commit nothing


def test_records_by_id_prefix_are_a_range_of_the_keys(ledger: Ledger) -> None:
    for workload_id in ("faces-r1", "faces", "faces-r0", "facesx", "other", "faces-r10"):
        ledger.admit(record(workload_id))
    assert [found.id for found in ledger.workloads("faces-r")] == ["faces-r1", "faces-r0", "faces-r10"]  # oldest first
    assert len(ledger.workloads()) == 6 and ledger.workloads("nothing") == []


def test_records_chosen_by_their_stored_fields_are_made_only_when_chosen(ledger: Ledger, monkeypatch) -> None:
    for workload_id in ("a", "b", "c"):
        ledger.admit(record(workload_id))
    ledger.update("b", mark_started(1234))
    seen, made = [], []
    monkeypatch.setattr(WorkloadRecord, "from_dict", classmethod(lambda cls, data: made.append(data["id"]) or
                                                                 cls(**{**data, "requirements": Resources()})))
    chosen = ledger.workloads(where=lambda stored: seen.append(stored["id"]) or stored["process_pid"] == 1234)
    assert [found.id for found in chosen] == ["b"] and sorted(seen) == ["a", "b", "c"] and made == ["b"]


def test_records_in_order_are_made_as_they_are_taken_from_a_position(ledger: Ledger, monkeypatch) -> None:
    """A page of a listing makes the page's records only; the order is by time, then id, so records made in the
    same instant have one order (newest first: the reverse of it), and a position is past its record even once
    that record is deleted."""
    for number, workload_id in enumerate(("e", "d", "c", "b", "a")):
        ledger.admit(dataclasses.replace(record(workload_id), created_at=100.0 + (number >= 3)))  # e, d, c tie
    made = []
    monkeypatch.setattr(WorkloadRecord, "from_dict", classmethod(lambda cls, data: made.append(data["id"]) or
                                                                 cls(**{**data, "requirements": Resources()})))
    taken = ledger.in_order()
    assert [next(taken).id for _ in range(2)] == ["c", "d"] and made == ["c", "d"]
    ledger.remove("d")
    assert [found.id for found in ledger.in_order(after=(100.0, "d"))] == ["e", "a", "b"]
    assert [found.id for found in ledger.in_order(newest_first=True)] == ["b", "a", "e", "c"]
    assert [found.id for found in ledger.in_order(after=(100.0, "d"), newest_first=True)] == ["c"]
    assert [found.id for found in ledger.workloads()] == ["c", "e", "a", "b"]


def test_status_counts_count_what_runs_here_by_status_without_the_pointers(ledger: Ledger) -> None:
    """A heartbeat's ``workloads``: the records this node runs, by status; a pointer to a delegated one is the
    other node's to count. The same counts as making every record and counting those (what it did before)."""
    for workload_id, status in (("a", Status.RUNNING), ("b", Status.RUNNING), ("c", Status.STARTING)):
        ledger.admit(dataclasses.replace(record(workload_id), status=status))
    ledger.update("c", finish(Status.FAILED, 1))
    ledger.admit(dataclasses.replace(record("p"), status=Status.RUNNING, delegated_to="child"))
    assert ledger.status_counts() == {"running": 2, "failed": 1}
    assert ledger.status_counts() == collections.Counter(found.status for found in ledger.workloads()
                                                         if not found.remote)


def test_a_read_of_every_record_sees_each_change_since_the_last_and_shares_nothing_it_kept(ledger: Ledger) -> None:
    """The objects parsed by the last read are kept while a record's stored bytes are the same
    (``ledger.stored_json``): a change, a delete or a new record since must show in the next read, and a record
    made from a read must not be the kept object, which a caller could then change under every later read."""
    def running() -> list[str]:
        return [found.id for found in ledger.workloads(where=lambda stored: stored["status"] == Status.RUNNING)]

    for workload_id in ("a", "b", "c"):
        ledger.admit(dataclasses.replace(record(workload_id), status=Status.RUNNING, config={"n": 1}))
    assert running() == ["a", "b", "c"] and ledger.status_counts() == {"running": 3}
    ledger.update("b", finish(Status.FAILED, 1))
    ledger.remove("c")
    ledger.admit(dataclasses.replace(record("d"), status=Status.RUNNING))
    assert running() == ["a", "d"] and ledger.status_counts() == {"running": 2, "failed": 1}
    assert ledger.workloads("c") == []
    made = ledger.workloads(where=lambda stored: stored["id"] == "a")[0]
    made.config["n"] = 2
    assert ledger.workloads(where=lambda stored: stored["config"] == {"n": 1})[0].id == "a"
    assert ledger.get("a").config == {"n": 1}


def _fail_a_and_admit_e(path: str) -> None:
    store = Ledger(path)
    store.update("a", finish(Status.FAILED, 1))
    store.admit(dataclasses.replace(record("e"), status=Status.RUNNING))
    store.close()


def test_a_change_another_process_wrote_shows_in_the_next_read_of_every_record(ledger: Ledger,
                                                                                 tmp_path) -> None:
    """A read of every record at the version of the last one takes the objects that one kept: the version that
    every write bumps must be read in the reading transaction, so a write of another process is read too.
    Control, run: with the version of this process's own last write in its place, this test alone fails (the
    read below finds "a" still running)."""
    for workload_id in ("a", "b"):
        ledger.admit(dataclasses.replace(record(workload_id), status=Status.RUNNING))
    assert ledger.status_counts() == {"running": 2}
    writer = multiprocessing.get_context("spawn").Process(target=_fail_a_and_admit_e, args=(str(tmp_path / "ledger"),))
    writer.start()
    writer.join(timeout=120)
    assert writer.exitcode == 0
    assert [found.id for found in ledger.workloads(where=lambda stored: stored["status"] == Status.RUNNING)] == \
        ["b", "e"]
    assert ledger.status_counts() == {"running": 2, "failed": 1}


@pytest.mark.parametrize("workload_id", ["nope", "", "x" * 600])  # no key can be empty, or over 511 bytes
def test_unknown_ids_raise_not_found(ledger: Ledger, workload_id: str) -> None:
    """Also ids LMDB could not hold as a key: they name nothing (LMDB's BadValsizeError was a 500 where a
    stream's detector was "")."""
    with pytest.raises(NotFound):
        ledger.get(workload_id)
    with pytest.raises(NotFound):
        ledger.update(workload_id, mark_started(1))
    with pytest.raises(NotFound):
        ledger.remove(workload_id)


def test_on_change_reports_each_commit(tmp_path) -> None:
    versions: list[int] = []
    store = Ledger(str(tmp_path / "l"), on_change=versions.append)
    store.set_node({}, CAPACITY)
    store.admit(record("a", cpu=1.0))
    store.remove("a")
    assert versions == [1, 2, 3]
    store.close()


def _admit_many(path: str, worker: int, results: "multiprocessing.Queue[int]") -> None:
    store = Ledger(path)
    admitted = 0
    for index in range(20):
        try:
            store.admit(record(f"p{worker}-{index}", cpu=0.5, memory=1))
            admitted += 1
        except InsufficientResources:
            pass
    results.put(admitted)


def test_concurrent_admits_from_processes_never_over_allocate(tmp_path) -> None:
    path = str(tmp_path / "shared")
    store = Ledger(path)
    store.set_node({}, Resources(cpu=10.0, memory=10**9))
    results: multiprocessing.Queue[int] = multiprocessing.get_context("spawn").Queue()
    workers = [multiprocessing.get_context("spawn").Process(target=_admit_many, args=(path, worker, results))
               for worker in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    admitted = sum(results.get(timeout=5) for _ in workers)
    assert admitted == 20  # 10 cpu / 0.5 each, whatever the interleaving
    assert store.usage().allocated.cpu == 10.0 and len(store.allocations()) == 20
    store.close()


def test_allocated_total_always_equals_the_sum_of_allocations(ledger: Ledger) -> None:
    for index in range(30):
        ledger.admit(record(f"w{index}", cpu=0.1 * (index % 4), memory=index))
    for index in range(0, 30, 3):
        ledger.update(f"w{index}", finish(Status.STOPPED))
    for index in range(1, 30, 5):
        ledger.remove(f"w{index}")
    summed = Resources()
    for held in ledger.allocations().values():
        summed = summed + held
    assert ledger.usage().allocated == summed


def test_record_round_trips(ledger: Ledger) -> None:
    original = dataclasses.replace(record("rt", cpu=1.5, memory=7), placement={"node": "n"}, restarts=2)
    ledger.admit(original)
    assert ledger.get("rt") == original


def test_a_node_table_from_an_earlier_boot_has_its_stamps_taken_back(tmp_path, monkeypatch) -> None:
    """Its stamps are of the boot clock, which restarts at each boot: an earlier boot's last heartbeat cannot say
    whether a neighbour is online now (nor how long a child has been silent)."""
    monkeypatch.setattr(boot_clock, "BOOT_ID", "an-earlier-boot")
    table = NodeTable(str(tmp_path / "nodes"))
    table.upsert(Neighbour("kid", Role.CHILD, "http://127.0.0.1:1", "tcp://127.0.0.1:2"))
    table.record_heartbeats([("kid", b'{"seq": 1}')], boot_clock.now() + 10**6)  # that boot ran longer
    table.close()
    table = NodeTable(str(tmp_path / "nodes"))  # the control: the same boot keeps them
    assert table.get("kid").online(1.0, 3, boot_clock.now() + 10**6)
    table.close()
    monkeypatch.setattr(boot_clock, "BOOT_ID", "this-boot")
    table = NodeTable(str(tmp_path / "nodes"))
    kid = table.get("kid")
    assert kid.last_seen is None and not kid.online(1.0, 3) and kid.heartbeat == {"seq": 1}
    assert boot_clock.now() - 60 < kid.added_at <= boot_clock.now()  # a child never heard of ages from here


def test_node_table_revision_moves_only_when_a_heartbeat_that_changes_what_consoles_show_is_stored(tmp_path) -> None:
    table = NodeTable(str(tmp_path / "nodes"))
    beat = b'{"seq": 1, "ledger_version": 7, "v": 1, "minor": 2}'
    assert table.record_heartbeats([("stranger", beat)], 100.0, news={"stranger"}) == [None]
    assert table.revision() == 0  # nothing stored
    table.upsert(Neighbour("kid", Role.CHILD, "http://127.0.0.1:1", "tcp://127.0.0.1:2"))
    registered = table.revision()
    assert table.record_heartbeats([("kid", beat)], 100.0) == [Role.CHILD]
    assert table.revision() == registered  # the control: the same store, not news
    table.record_heartbeats([("kid", beat)], 105.0, news={"kid"})
    assert table.revision() == registered + 1
    kid = table.get("kid")
    assert kid.last_seen == 105.0 and kid.heartbeat == {"seq": 1, "ledger_version": 7, "protocol": "1.2"}


def test_a_node_table_that_kept_heartbeats_in_its_entries_moves_them_apart(tmp_path) -> None:
    """A table of the version before keeps each heartbeat inside its neighbour's entry: opened now, it reads
    the same, and a heartbeat recorded later is the one read."""
    env = lmdb.open(str(tmp_path / "nodes"), max_dbs=5)
    with env.begin(write=True, db=env.open_db(b"neighbours")) as txn:
        txn.put(b"kid", orjson.dumps({**Neighbour("kid", Role.CHILD, "http://x:1", "tcp://x:2", fan_in=True).to_dict(),
                                      "last_seen": 50.0, "heartbeat": {"seq": 3, "protocol": "1.2"}}))
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        txn.put(b"boot_id", boot_clock.BOOT_ID.encode())  # written in this boot: its stamps hold
    env.close()
    table = NodeTable(str(tmp_path / "nodes"))
    kid = table.get("kid")
    assert (kid.last_seen, kid.heartbeat, kid.fan_in) == (50.0, {"seq": 3, "protocol": "1.2"}, True)
    table.record_heartbeats([("kid", b'{"seq": 4, "v": 1, "minor": 3}')], 60.0)
    assert table.get("kid").heartbeat == {"seq": 4, "protocol": "1.3"} and table.silent(Role.CHILD, since=55.0) == []
    assert table.silent(Role.CHILD, since=61.0) == ["kid"]
    table.close()


def test_fences_are_kept_for_their_time_on_the_boot_clock(ledger: Ledger) -> None:
    assert ledger.confirm_or_fence("late", "attempt-1", 100.0) is None
    ledger.confirm_or_fence("old-boot", "attempt-2", 5000.0)  # stamped by an earlier boot's clock, which ran longer
    ledger.prune_fences(now=150.0, kept_s=3600.0)
    assert ledger.fenced("late", "attempt-1") and not ledger.fenced("late", "attempt-2")
    assert not ledger.fenced("old-boot", "attempt-2")  # its forwards died with that boot
    ledger.prune_fences(now=3699.0, kept_s=3600.0)
    assert ledger.fenced("late", "attempt-1")
    ledger.prune_fences(now=3701.0, kept_s=3600.0)
    assert not ledger.fenced("late", "attempt-1")
