"""A real node under stress: concurrent over-subscription, kill -9 of each node process, whole-node restart."""
from __future__ import annotations

import os
import signal
import subprocess
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor

import pytest

from cnetd.common.errors import NodeStopping
from cnetd.common.paths import RuntimePaths
from cnetd.core.lifecycle import desire
from cnetd.core.supervisor_rpc import Supervisor
from ledger.records import Desired
from ledger.store import Ledger
from tests.support.disks import fill, small_disk
from tests.support.nodes import GIB, VENV_BIN, Node, held_by, running, wait_for, wait_until_answers

SLEEP = {"command": "sleep", "args": ["120"]}


def allocated_matches_running(node: Node) -> bool:
    """The ledger's allocated total equals the sum of the requirements of what runs (or starts) here."""
    workloads = node.workloads()
    return node.resources()["allocated"] == pytest.approx(held_by(workloads))


def statuses(node: Node) -> dict[str, str]:
    return {view["id"]: view["status"] for view in node.workloads()}


def running_programs(node: Node) -> set[str]:
    """The node's workload programs that supervisord runs, read over its socket (none while it does not answer):
    cheap enough to poll a start's tight window."""
    try:
        infos = Supervisor(str(RuntimePaths(node.runtime_dir).supervisor_socket)).workload_infos()
    except (OSError, xmlrpc.client.Error, NodeStopping):
        return set()
    return {program for program, info in infos.items() if info["statename"] == "RUNNING"}


def test_fifty_concurrent_submissions_on_room_for_ten(start_node) -> None:
    node = start_node({"cpu": 10, "memory": 10 * GIB, "gpu": 0, "storage": 0})
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: node.submit(SLEEP, {"cpu": 1, "memory": GIB}), range(50)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes.count(201) == 10 and codes.count(409) == 40, codes
    assert all(answer.json()["error"] == "insufficient_resources" for answer in answers if answer.status_code == 409)
    assert node.resources()["available"] == {"cpu": 0.0, "memory": 0, "gpu": 0, "storage": 0}
    assert node.api("GET", "/api/workloads").json()["count"] == 10  # refused ones leave no record
    assert allocated_matches_running(node)
    assert len(running_programs(node)) == 10


@pytest.mark.parametrize("process", ["api", "register", "scheduler", "monitor"])
def test_kill_9_of_a_node_process_loses_nothing(start_node, process: str) -> None:
    node = start_node()
    workloads = [node.submit(SLEEP, {"cpu": 1, "memory": GIB}).json() for _ in range(3)]
    # A workload that exits while the killed process is down must still be recorded.
    exiting = node.submit({"command": "sh", "args": ["-c", "sleep 0.5; exit 4"]}, {"cpu": 1}).json()
    old_pid = node.program_pid(process)
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: node.program_pid(process) not in (0, old_pid) and f"{process} " in node.supervisorctl("status")
             and " RUNNING " in node.supervisorctl("status", process), timeout_s=30)
    wait_until_answers(f"{node.url}/api/health", timeout_s=30)  # the new api may not listen yet: refused is "not yet"

    for workload in workloads:
        record = node.workload(workload["id"])
        assert record["status"] == "running" and record["process_pid"] == workload["process_pid"]
    assert wait_for(lambda: node.workload(exiting["id"])["status"] == "failed", timeout_s=15)
    assert node.workload(exiting["id"])["exit_code"] == 4
    assert allocated_matches_running(node)
    assert running_programs(node) == {f"workloads:wl-{workload['id']}" for workload in workloads}
    # and the node still takes work
    assert node.submit({"command": "true"}).status_code == 201


def test_whole_node_restart_keeps_records_and_relaunches(start_node) -> None:
    node = start_node()
    service = node.submit(SLEEP, {"cpu": 2, "memory": GIB}).json()
    finished = node.submit({"command": "true"}).json()
    stopped = node.submit(SLEEP, {"cpu": 1}).json()
    node.api("POST", f"/api/workloads/{stopped['id']}/stop")
    wait_for(lambda: node.workload(finished["id"])["status"] == "completed")

    node.restart()

    wait_for(lambda: (view := node.workload(service["id"]))["process_pid"] not in (None, service["process_pid"])
             and view["status"] == "running" and view)
    assert node.workload(finished["id"])["status"] == "completed"
    assert node.workload(stopped["id"])["status"] == "stopped"
    assert running_programs(node) == {f"workloads:wl-{service['id']}"}
    assert node.resources()["allocated"]["cpu"] == 2.0
    assert allocated_matches_running(node)


def test_after_a_restart_no_record_says_its_program_runs_until_it_runs_again(start_node) -> None:
    """A node that starts again starts its supervisord afresh, so none of its workloads' programs runs: its launcher
    records them 'starting' (and a stopped one's stop carried out) before the API can read them. Control: before,
    the API answered the last run's 'running' and pid until the scheduler's reconcile reached each record: 15 to
    38 of these 150 here (with 30, the scheduler was through them before the API answered)."""
    node = start_node({"cpu": 100, "memory": 64 * GIB, "gpu": 0, "storage": 0})
    last_run = {view["id"]: view["process_pid"]
                for view in (node.submit({"command": "sleep", "args": ["300"]}, {"cpu": 0.01}).json() for _ in range(150))}
    stopping = next(iter(last_run))
    node.stop()
    ledger = Ledger(str(node.runtime_dir / "ledger"))  # a stop recorded, and the node stopped before carrying it out
    try:
        ledger.update(stopping, desire(Desired.STOP))
    finally:
        ledger.close()
    node.start()
    first_views = {view["id"]: view for view in node.workloads()}
    assert [view for view in first_views.values() if view["process_pid"] == last_run[view["id"]]] == []
    assert first_views[stopping]["status"] == "stopped"
    wait_for(lambda: all(view["status"] == "running" and view["process_pid"] not in (None, last_run[view["id"]])
                         for view in node.workloads() if view["id"] != stopping))
    assert allocated_matches_running(node)  # the stopped one's, given back in the launcher's commit


def test_a_stop_during_the_relaunch_after_a_restart_loses_no_workload(start_node) -> None:
    """After a restart the scheduler relaunches the node's workloads one by one; a stop that comes meanwhile
    finds supervisord shutting down, which starts nothing more. Those not started yet are the next run's to
    relaunch, not failed (they were: 34 of 100, "supervisord could not start …: SHUTDOWN_STATE")."""
    node = start_node({"cpu": 100, "memory": 64 * GIB, "gpu": 0, "storage": 0})
    ids = {node.submit({"command": "sleep", "args": ["300"]}, {"cpu": 0.01}).json()["id"] for _ in range(100)}
    node.stop()
    node.start(until=lambda: 0 < len(running_programs(node)) < 100)  # the stop comes while the relaunch is under way
    node.restart()
    wait_for(lambda: statuses(node) == dict.fromkeys(ids, "running") and len(running_programs(node)) == 100,
             timeout_s=60, diagnose=lambda: ([view["message"] for view in node.workloads()
                                              if view["status"] != "running"][:3], len(running_programs(node))))


def test_a_stop_recorded_when_the_scheduler_ended_is_carried_out_when_it_starts(start_node) -> None:
    """A stop or delete records the stop, then stops the program; a scheduler that ends between the two (kill -9
    during a burst of DELETEs left 5 of 40 so) leaves a record to stop whose program runs. Its next start stops
    it: the record is not left ``running`` while it says ``desired: stop``."""
    node = start_node()
    to_stop, kept = (node.submit(SLEEP, {"cpu": 1}).json() for _ in range(2))
    node.supervisorctl("stop", "scheduler")
    ledger = Ledger(str(node.runtime_dir / "ledger"))  # as the scheduler left it: the stop recorded, not carried out
    try:
        ledger.update(to_stop["id"], desire(Desired.STOP))
    finally:
        ledger.close()
    node.supervisorctl("start", "scheduler")
    wait_for(lambda: node.workload(to_stop["id"])["status"] == "stopped", timeout_s=30,
             diagnose=lambda: node.workload(to_stop["id"]))
    assert running_programs(node) == {kept["program"]}
    assert node.workload(kept["id"])["status"] == "running"
    assert allocated_matches_running(node)


def test_a_delete_cut_short_by_the_schedulers_end_is_finished_when_it_starts(start_node) -> None:
    """A delete records itself, then stops the program (here for its whole stop timeout: it ignores SIGTERM),
    removes it and the record. A scheduler killed meanwhile answers the client 503; its next start finishes the
    delete rather than leaving the record ``stopped``."""
    node = start_node()
    stubborn = node.submit({"command": "sh", "args": ["-c", "trap '' TERM; sleep 600"]}, {"cpu": 1}).json()
    kept = node.submit(SLEEP, {"cpu": 1}).json()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(node.api, "DELETE", f"/api/workloads/{stubborn['id']}", fresh_connection=True)
        wait_for(lambda: node.workload(stubborn["id"])["desired"] == "stop", timeout_s=10)
        scheduler = node.program_pid("scheduler")
        os.kill(scheduler, signal.SIGKILL)  # during the stop's wait
        assert answer.result(timeout=30).status_code == 503
    wait_for(lambda: node.api("GET", f"/api/workloads/{stubborn['id']}").status_code == 404, timeout_s=30,
             diagnose=lambda: node.api("GET", f"/api/workloads/{stubborn['id']}").json())
    assert running_programs(node) == {kept["program"]} and allocated_matches_running(node)
    assert not (node.runtime_dir / "logs" / f"wl-{stubborn['id']}.stdout.log").exists()


def test_a_full_disk_under_the_runtime_dir_is_507_and_kills_no_node_process() -> None:
    """The node's own disk full (logs, models, anything): each node process's metric files were grown sparse on
    it, so the first page written into the full disk killed the process with SIGBUS, over and over (the
    scheduler at every submission); the ledger's own error was a 500. The control: with its space back, the
    same submission runs."""
    node = Node({"cpu": 8, "memory": 16 * GIB, "gpu": 0, "storage": 0})
    try:
        with small_disk(node.runtime_dir, "48m", mode="0700"), running(node):
            kept = node.submit(SLEEP, {"cpu": 1}).json()
            pids = {name: node.program_pid(name) for name in ("api", "scheduler", "monitor", "register")}
            filler = fill(node.runtime_dir)
            for _ in range(3):
                answer = node.submit(SLEEP, {"cpu": 1})
                assert answer.status_code == 507, answer.text
                assert answer.json()["error"] == "insufficient_storage"
                assert [refusal["kind"] for refusal in answer.json()["refused"]] == ["disk_full"]
            assert node.workload(kept["id"])["status"] == "running"
            assert {name: node.program_pid(name) for name in pids} == pids, node.supervisorctl("status")
            assert node.resources()["allocated"]["cpu"] == 1.0  # the refused ones hold nothing
            filler.unlink()
            assert node.submit(SLEEP, {"cpu": 1}).json()["status"] == "running"
    finally:
        node.cleanup()


def test_sigterm_stops_every_workload(start_node) -> None:
    node = start_node()
    pids = [node.submit({"command": "sh", "args": ["-c", "sleep 300 & sleep 300; wait"]}).json()["process_pid"]
            for _ in range(3)]
    node.stop()  # asserts that nothing the node started is left
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_second_node_on_same_runtime_dir_is_refused(start_node) -> None:
    node = start_node()
    result = subprocess.run([str(VENV_BIN / "cnetd"), "-config", str(node.config_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "already runs" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_kill_9_of_supervisord_leaves_nothing_and_the_node_starts_again(start_node) -> None:
    node = start_node()
    service = node.submit({"command": "sh", "args": ["-c", "sleep 300 & sleep 300; wait"]}, {"cpu": 1}).json()
    supervisord = int((node.runtime_dir / "supervisord.pid").read_text())
    assert node.leftover_processes()
    os.kill(supervisord, signal.SIGKILL)
    # Node processes and workloads die with supervisord (parent-death signal), the orphaned grandchildren
    # through cnetd's sweep; cnetd itself then exits.
    wait_for(lambda: node.process.poll() is not None, timeout_s=30)
    assert wait_for(lambda: not node.leftover_processes(), timeout_s=10, diagnose=node.leftover_processes)
    node.start()  # the ports are free again; the ledger relaunches what should run
    wait_for(lambda: (view := node.workload(service["id"]))["status"] == "running"
             and view["process_pid"] != service["process_pid"] and view, timeout_s=30)
    assert allocated_matches_running(node)


def test_cnetd_ends_what_an_earlier_boot_left_running(start_node) -> None:
    node = start_node()
    service = node.submit({"command": "sh", "args": ["-c", "sleep 300 & sleep 300; wait"]}, {"cpu": 1}).json()
    supervisord = int((node.runtime_dir / "supervisord.pid").read_text())
    # Once sh has started its sleeps it runs with its parent-death signal (set just before its exec).
    # A process caught in an exec shows no command line (its chain: setpriv, env, sh).
    wait_for(lambda: sum(line.split(maxsplit=1)[1:] == ["sleep 300"] for line in node.leftover_processes()) == 2,
             timeout_s=10, diagnose=node.leftover_processes)
    # The machine's worst case: cnetd dies first (no sweep after supervisord), then supervisord. The
    # parent-death signal ends its programs, but not what they started (sh's two sleeps here).
    os.kill(node.process.pid, signal.SIGKILL)
    node.process.wait(timeout=10)
    node.output.close()
    os.kill(supervisord, signal.SIGKILL)
    left = wait_for(lambda: len(node.leftover_processes()) == 2 and node.leftover_processes(), timeout_s=10,
                    diagnose=node.leftover_processes)
    assert all(" sleep 300" in line for line in left), left
    node.start()
    assert "ended 2 process(es) left by an earlier run" in node.log("cnetd.out")
    wait_for(lambda: node.workload(service["id"])["process_pid"] not in (None, service["process_pid"]), timeout_s=30)
    assert running_programs(node) == {f"workloads:wl-{service['id']}"}
