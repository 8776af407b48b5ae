"""End to end through a real node: resource arithmetic, process exits, logs, restarts, status listing."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq

from cnetd.cli import client
from cnetd.common.paths import WORKLOAD_GROUP, RuntimePaths
from cnetd.core.supervisor_rpc import Supervisor
from mesh.messages import Heartbeat
from tests.support.nodes import GIB, Node, wait_for

SLEEP = {"command": "sleep", "args": ["60"]}


def settled(node: Node, workload_id: str, status: str) -> dict:
    return wait_for(lambda: (record := node.workload(workload_id))["status"] == status and record)


def test_resource_arithmetic_deploy_and_stop(shared_node: Node) -> None:
    before = shared_node.resources()
    answer = shared_node.submit(SLEEP, {"cpu": 2.0, "memory": 2 * GIB})
    assert answer.status_code == 201, answer.text
    record = answer.json()
    assert record["status"] == "running" and record["process_pid"] > 0 and record["node"] == shared_node.node_id
    during = shared_node.resources()
    assert during["available"]["cpu"] == before["available"]["cpu"] - 2
    assert during["available"]["memory"] == before["available"]["memory"] - 2 * GIB
    assert during["allocated"]["cpu"] == before["allocated"]["cpu"] + 2

    stopped = shared_node.api("POST", f"/api/workloads/{record['id']}/stop").json()
    assert stopped["status"] == "stopped"
    assert shared_node.resources() == before  # released the moment the stop answers
    assert shared_node.workload(record["id"])["status"] == "stopped"  # still queryable until deleted


def test_eight_cpu_node_shows_six_then_eight(start_node) -> None:
    node = start_node({"cpu": 8, "memory": 16 * GIB, "gpu": 0, "storage": 0})
    workload = node.submit(SLEEP, {"cpu": 2, "memory": 2 * GIB}).json()
    assert node.resources()["available"] == {"cpu": 6.0, "memory": 14 * GIB, "gpu": 0, "storage": 0}
    node.api("POST", f"/api/workloads/{workload['id']}/stop")
    assert node.resources()["available"] == {"cpu": 8.0, "memory": 16 * GIB, "gpu": 0, "storage": 0}


@pytest.mark.parametrize("script, status, code", [("exit 0", "completed", 0), ("exit 3", "failed", 3)])
def test_exit_code_decides_status_and_releases(shared_node: Node, script: str, status: str, code: int) -> None:
    before = shared_node.resources()["allocated"]
    record = shared_node.submit({"command": "sh", "args": ["-c", f"sleep 0.2; {script}"]}, {"cpu": 1}).json()
    final = settled(shared_node, record["id"], status)
    assert final["exit_code"] == code and final["finished_at"] is not None
    assert shared_node.resources()["allocated"] == before
    assert f"wl-{record['id']}" not in shared_node.supervisorctl("status")


def test_instant_exit_is_recorded(shared_node: Node) -> None:
    record = shared_node.submit({"command": "false"}).json()
    assert settled(shared_node, record["id"], "failed")["exit_code"] == 1


def test_logs_show_stdout_and_stderr_tails(shared_node: Node) -> None:
    script = "for i in $(seq 1 500); do echo out$i; done; echo 'problem' >&2"
    record = shared_node.submit({"command": "sh", "args": ["-c", script]}).json()
    settled(shared_node, record["id"], "completed")
    logs = shared_node.api("GET", f"/api/workloads/{record['id']}/logs", params={"tail": 3}).json()
    assert logs["stdout"] == "out498\nout499\nout500\n"
    assert logs["stderr"] == "problem\n"
    assert shared_node.api("GET", f"/api/workloads/{record['id']}/logs", params={"tail": "x"}).status_code == 400


def test_env_args_and_working_dir_reach_the_process(shared_node: Node) -> None:
    odd = "quote ' \" comma, percent %(here)s %% newline\nend"
    working_dir = tempfile.mkdtemp(prefix="cnet-wd-", dir="/tmp")  # a directory its user (nobody) may enter
    os.chmod(working_dir, 0o755)
    try:
        record = shared_node.submit({"command": "sh", "args": ["-c", 'printf "%s|%s|%s" "$ODD" "$1" "$PWD"', "sh", odd],
                                     "env": {"ODD": odd}, "working_dir": working_dir}).json()
        settled(shared_node, record["id"], "completed")
        stdout = shared_node.api("GET", f"/api/workloads/{record['id']}/logs").json()["stdout"]
        assert stdout == f"{odd}|{odd}|{working_dir}"
    finally:
        os.rmdir(working_dir)


def test_restart_policy_is_capped_at_three(shared_node: Node) -> None:
    before = shared_node.resources()["allocated"]
    record = shared_node.submit({"command": "sh", "args": ["-c", "sleep 0.1; exit 7"], "restart": "on-failure"},
                                {"cpu": 1}).json()
    final = settled(shared_node, record["id"], "failed")
    assert final["restarts"] == 3 and final["exit_code"] == 7
    assert "after 3 restart(s)" in final["message"]
    assert shared_node.resources()["allocated"] == before


def test_a_restart_that_cannot_start_fails_the_workload_and_the_monitor_goes_on(shared_node: Node, tmp_path) -> None:
    working_dir = tmp_path / "gone-before-the-restart"
    working_dir.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(working_dir, 0o777)
    before = shared_node.resources()["allocated"]
    record = shared_node.submit({"command": "sh", "args": ["-c", "sleep 1; exit 7"], "restart": "on-failure",
                                 "working_dir": str(working_dir)}, {"cpu": 1}).json()
    assert record["status"] == "running", record
    working_dir.rmdir()  # its restart cannot enter it
    final = settled(shared_node, record["id"], "failed")
    assert final["restarts"] == 1 and "could not start" in final["message"], final
    assert "handling PROCESS_STATE_EXITED failed" not in shared_node.log("monitor.log")  # an outcome, not a bug
    assert shared_node.resources()["allocated"] == before
    after = shared_node.submit({"command": "true"}).json()  # the monitor still settles what ends
    assert settled(shared_node, after["id"], "completed")["exit_code"] == 0


def test_supervisorctl_lists_node_processes_and_workloads(shared_node: Node) -> None:
    record = shared_node.submit(SLEEP).json()
    status = shared_node.supervisorctl("status")
    for program in ("api", "register", "scheduler", "monitor", f"workloads:wl-{record['id']}"):
        assert program in status and "RUNNING" in status.split(program, 1)[1].split("\n", 1)[0], status
    shared_node.api("DELETE", f"/api/workloads/{record['id']}")
    assert f"wl-{record['id']}" not in shared_node.supervisorctl("status")


def test_delete_removes_record_and_logs(shared_node: Node) -> None:
    record = shared_node.submit({"command": "sh", "args": ["-c", "echo hello; sleep 60"]}, {"cpu": 1}).json()
    before_delete = shared_node.resources()["allocated"]["cpu"]
    answer = shared_node.api("DELETE", f"/api/workloads/{record['id']}")
    assert answer.status_code == 200 and answer.json() == {"id": record["id"], "deleted": True}
    assert shared_node.resources()["allocated"]["cpu"] == before_delete - 1
    assert shared_node.api("GET", f"/api/workloads/{record['id']}").status_code == 404
    assert not list((shared_node.runtime_dir / "logs").glob(f"wl-{record['id']}*"))


def test_resubmitting_an_id_runs_nothing_twice(shared_node: Node) -> None:
    first = shared_node.submit(SLEEP, {"cpu": 1}, id="same-id-twice").json()
    again = shared_node.submit(SLEEP, {"cpu": 1}, id="same-id-twice")
    assert again.status_code == 201 and again.json()["process_pid"] == first["process_pid"]
    assert shared_node.supervisorctl("status").count("wl-same-id-twice") == 1
    shared_node.api("DELETE", "/api/workloads/same-id-twice")


def test_listing_filters_by_status_and_type(shared_node: Node) -> None:
    record = shared_node.submit(SLEEP).json()
    running = shared_node.api("GET", "/api/workloads", params={"status": "running", "type": "process"}).json()
    assert record["id"] in [item["id"] for item in running["workloads"]]
    assert all(item["status"] == "running" for item in running["workloads"])
    assert shared_node.api("GET", "/api/workloads", params={"type": "container"}).json()["count"] == 0
    shared_node.api("DELETE", f"/api/workloads/{record['id']}")


def test_a_listing_is_read_a_page_at_a_time(shared_node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """``limit`` and ``after`` walk the same listing, oldest first (``reverse``: newest first), a page at a time;
    the walk goes on past a workload deleted under it, and a page with a status filter is full. ``type`` takes
    several types. ``cnet`` reads every page."""
    def listed(**params: Any) -> dict[str, Any]:
        answer = shared_node.api("GET", "/api/workloads", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def walk(limit: int, **params: Any) -> list[str]:
        ids = []
        while True:
            page = listed(limit=limit, **params)
            assert page["count"] == len(page["workloads"]) <= limit
            ids += [view["id"] for view in page["workloads"]]
            if page["next"] is None:
                return ids
            assert page["count"] == limit  # only the last page is short
            params["after"] = page["next"]

    ours = [shared_node.submit(SLEEP, {"cpu": 0.01}, name=f"paged-{n}").json()["id"] for n in range(5)]
    try:
        whole = [view["id"] for view in listed()["workloads"]]
        assert listed()["next"] is None and set(ours) <= set(whole)
        assert walk(2) == walk(1) == walk(1000) == whole
        assert walk(2, reverse="true") == walk(1000, reverse="true") == whole[::-1]
        assert walk(2, reverse="false") == whole
        ended = whole.index(ours[1]) + 1
        first = listed(limit=ended)
        shared_node.api("DELETE", f"/api/workloads/{ours[1]}")  # the one its next names
        assert walk(2, after=first["next"]) == whole[ended:]
        assert walk(2, after=first["next"], reverse="true") == whole[:ended - 1][::-1]
        whole.remove(ours[1])
        for workload_id in ours[2:4]:
            shared_node.api("POST", f"/api/workloads/{workload_id}/stop")
        stopped = [view["id"] for view in listed(status="stopped")["workloads"]]
        assert set(ours[2:4]) <= set(stopped) and walk(1, status="stopped") == stopped
        assert walk(1, status="stopped", reverse="true") == stopped[::-1]
        of_type = {view["id"]: view["type"] for view in listed()["workloads"]}
        assert walk(3, type="process,data") == [found for found in whole if of_type[found] in ("process", "data")]
        assert set(ours[2:]) <= set(walk(3, type="process,data")) and not set(ours) & set(walk(3, type="data,opencv"))
        monkeypatch.setattr(client, "LIST_PAGE", 2)
        assert [view["id"] for view in client.NodeClient(shared_node.url, None).workloads()] == whole
        for wrong in ({"limit": 0}, {"limit": 1001}, {"limit": "two"}, {"after": "paged-1"}, {"after": "nan/x"},
                      {"after": "12.5/"}, {"after": ""}, {"after": "1" * 201}, {"reverse": "yes"},
                      {"reverse": ""}):
            answer = shared_node.api("GET", "/api/workloads", params=wrong)
            assert answer.status_code == 400 and answer.json()["error"] == "invalid_request", (wrong, answer.text)
    finally:
        for workload_id in ours:
            shared_node.api("DELETE", f"/api/workloads/{workload_id}")


def test_health_and_nodes(shared_node: Node) -> None:
    health = shared_node.api("GET", "/api/health").json()
    assert health["status"] == "ok" and health["node"] == shared_node.node_id
    nodes = shared_node.api("GET", "/api/nodes").json()
    assert nodes["self"]["id"] == shared_node.node_id and nodes["self"]["status"] == "online"
    resources = shared_node.resources()
    assert nodes["self"]["resources"] == {kind: resources[kind] for kind in ("capacity", "allocated", "available")}
    assert nodes["self"]["gpus"] == resources["gpus"] == []
    assert nodes["parent"] is None and nodes["children"] == [] and nodes["peers"] == []


def test_ledger_change_triggers_a_heartbeat(shared_node: Node) -> None:
    subscriber = zmq.Context.instance().socket(zmq.SUB)
    subscriber.setsockopt(zmq.LINGER, 0)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    subscriber.connect(f"tcp://127.0.0.1:{shared_node.mesh_port}")
    def subscribed() -> bool:  # PUB drops what is sent before the subscription lands (slow joiner)
        shared_node.submit({"command": "true"})
        return bool(subscriber.poll(200))

    try:
        wait_for(subscribed, timeout_s=10)
        while subscriber.poll(100):  # drain, then look for the heartbeat of one new allocation
            subscriber.recv_multipart()
        record = shared_node.submit(SLEEP, {"cpu": 1.5}).json()
        expected = shared_node.resources()["allocated"]["cpu"]
        assert subscriber.poll(2000), "no heartbeat within 2 s of the change"
        beat = Heartbeat.decode(subscriber.recv_multipart())
        while beat.allocated["cpu"] != expected and subscriber.poll(2000):
            beat = Heartbeat.decode(subscriber.recv_multipart())
        assert beat.node_id == shared_node.node_id and beat.allocated["cpu"] == expected
        shared_node.api("DELETE", f"/api/workloads/{record['id']}")
    finally:
        subscriber.close()


def test_supervisorctl_by_hand_and_the_ledger_agree(shared_node: Node) -> None:
    node = shared_node
    before = node.resources()["allocated"]
    record = node.submit(SLEEP, {"cpu": 1}).json()
    program = f"workloads:wl-{record['id']}"

    node.supervisorctl("restart", program)  # an operator's ordinary move: it runs, and the ledger says so
    restarted = wait_for(lambda: (view := node.workload(record["id"]))["status"] == "running"
                         and view["process_pid"] not in (None, record["process_pid"]) and view, timeout_s=15)
    assert restarted["desired"] == "run" and restarted["process_pid"] == node.program_pid(program)
    assert node.resources()["allocated"]["cpu"] == before["cpu"] + 1

    node.supervisorctl("stop", program)
    wait_for(lambda: node.workload(record["id"])["status"] == "stopped", timeout_s=15)
    assert node.resources()["allocated"] == before
    node.supervisorctl("start", program)
    started = wait_for(lambda: (view := node.workload(record["id"]))["status"] == "running" and view, timeout_s=15)
    assert started["desired"] == "run" and node.resources()["allocated"]["cpu"] == before["cpu"] + 1

    assert node.api("POST", f"/api/workloads/{record['id']}/stop").json()["status"] == "stopped"
    assert " RUNNING " not in node.supervisorctl("status", program)
    node.supervisorctl("start", program)  # by hand again, then deleted: nothing may keep running
    wait_for(lambda: node.workload(record["id"])["status"] == "running", timeout_s=15)
    assert node.api("DELETE", f"/api/workloads/{record['id']}").json()["deleted"] is True
    assert f"wl-{record['id']}" not in node.supervisorctl("status")
    assert not psutil.pid_exists(started["process_pid"]) or \
        psutil.Process(started["process_pid"]).status() == psutil.STATUS_ZOMBIE
    assert node.resources()["allocated"] == before


def test_a_stop_sent_as_a_program_starts_reaches_it(shared_node: Node) -> None:
    """Each program is stopped the moment supervisord has started it, as the scheduler's launcher would. Until
    the program's process executes its command it is supervisord's forked copy, whose handler swallows a
    SIGTERM. Control: stopping without waiting for the exec, 32 of 60 such stops were lost, each program
    killed with SIGKILL once its stopwaitsecs ran out."""
    paths = RuntimePaths(shared_node.runtime_dir)
    supervisor = Supervisor(str(paths.supervisor_socket))
    options = {"command": "sleep 600", "autostart": "false", "autorestart": "false", "startsecs": "0",
               "stopwaitsecs": "3"}
    names = [f"quick-stop-{index}" for index in range(20)]
    for name in names:
        supervisor.add_and_start(name, options)
        try:
            supervisor.stop(f"{WORKLOAD_GROUP}:{name}")
        finally:
            supervisor.remove(f"{WORKLOAD_GROUP}:{name}")
    log = (paths.logs_dir / "supervisord.log").read_text()
    assert [name for name in names if f"stopped: {name} (terminated by SIGTERM)" not in log] == []


def test_supervisord_and_the_daemons_run_without_openssl(shared_node: Node) -> None:
    """supervisord, the register, the scheduler and the monitor never speak TLS at start (the three speak it
    only to an https neighbour): OpenSSL's TLS library is not loaded (0.7 MiB of PSS each;
    ``cnetd.common.http_without_tls``). Control: before, each had ``_ssl`` mapped, from ``http.client``'s
    import."""
    pids = {"supervisord": int(RuntimePaths(shared_node.runtime_dir).supervisord_pid.read_text()),
            **{program: shared_node.program_pid(program) for program in ("register", "scheduler", "monitor")}}
    for program, pid in pids.items():
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "/_ssl." not in maps and "/libssl." not in maps, program


def test_workloads_run_below_the_nodes_own_processes(shared_node: Node) -> None:
    """``workloads.nice`` (default 10): a workload that takes every core leaves the API, the scheduler and the
    heartbeats their CPU. Control: before, workloads ran at the node's own priority, 0."""
    record = shared_node.submit(SLEEP, {"cpu": 0.1}).json()
    try:
        assert wait_for(lambda: os.getpriority(os.PRIO_PROCESS, record["process_pid"]) == 10)
        assert os.getpriority(os.PRIO_PROCESS, shared_node.program_pid("scheduler")) == 0
    finally:
        shared_node.api("DELETE", f"/api/workloads/{record['id']}")


def test_finished_workloads_beyond_keep_finished_are_deleted_oldest_first(start_node) -> None:
    """A node kept every finished workload (record, logs, files) for good: its history grew with its age and
    with it every full read of the ledger. The control is in the same node: what runs, and the two it keeps."""
    node = start_node(workloads={"keep_finished": 2})
    running = node.submit(SLEEP).json()
    finished = []
    for index in range(5):
        record = node.submit({"command": "sh", "args": ["-c", f"echo run-{index}"]}).json()
        finished.append(settled(node, record["id"], "completed"))
    paths = RuntimePaths(node.runtime_dir)
    kept = {record["id"] for record in finished[-2:]}
    wait_for(lambda: {view["id"] for view in node.workloads()} == kept | {running["id"]}, timeout_s=15,
             diagnose=lambda: [(view["id"], view["status"]) for view in node.workloads()])
    for record in finished[:3]:
        assert node.api("GET", f"/api/workloads/{record['id']}").status_code == 404
        assert not paths.workload_log(record["id"], "stdout").exists()
        assert not paths.workload_dir(record["id"]).exists()
    for record in finished[-2:]:
        assert node.api("GET", f"/api/workloads/{record['id']}/logs").json()["stdout"].startswith("run-")
    assert node.workload(running["id"])["status"] == "running"


def test_the_node_logs_rotate_at_their_bound(start_node) -> None:
    """A node's own logs (each process's, and supervisord's) grow with each workload it runs: supervisord's
    default lets each reach 550 MB. With ``logging.max_bytes`` and ``logging.backups`` they rotate at that size
    and keep that many older files. The control: the same node's logs did grow past the bound."""
    max_bytes = 4096
    node = start_node(logging={"level": "info", "format": "json", "max_bytes": max_bytes, "backups": 1})
    logs = node.runtime_dir / "logs"
    ids = []
    for _ in range(40):  # each start and delete writes lines naming the workload to scheduler.log
        ids.append(node.submit({"command": "true"}, name="rotated").json()["id"])
        node.api("DELETE", f"/api/workloads/{ids[-1]}")
    for name in ("scheduler.log", "supervisord.log"):
        assert (logs / f"{name}.1").exists() and not (logs / f"{name}.2").exists(), sorted(logs.iterdir())
        for kept in (logs / name, logs / f"{name}.1"):
            assert kept.stat().st_size < 2 * max_bytes, (kept, kept.stat().st_size)  # at most one write past it
    kept_text = "".join(path.read_text() for path in logs.glob("scheduler.log*"))
    assert ids[-1] in kept_text and ids[0] not in kept_text  # the newest lines are kept, the oldest went

