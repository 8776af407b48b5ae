"""Container workloads on a real engine (Podman's Docker-compatible API, set up by tools/podman-setup.sh)."""
from __future__ import annotations

import os

import docker
import pytest
import requests

from tests.support.nodes import MIB, Node, free_port, wait_for

ENGINE = os.environ.get("DOCKER_HOST", "unix:///run/podman/podman.sock")


NODE = {"container": {"engine": ENGINE}}


@pytest.fixture(scope="module", autouse=True)
def engine() -> docker.DockerClient:
    client = docker.DockerClient(base_url=ENGINE)
    client.ping()  # make test / .ci/run start the engine first; a missing engine fails here, loudly
    yield client
    client.close()




def containers_of(engine: docker.DockerClient, workload_id: str) -> list:
    """Id and status from the list answer itself (sparse): no inspect that races a container being removed."""
    return engine.containers.list(all=True, sparse=True, filters={"label": f"cnet.workload={workload_id}"})


def run(node: Node, script: str, requirements: dict | None = None, **config) -> dict:
    answer = node.submit({"image": "busybox", "command": ["sh", "-c", script], **config},
                         requirements or {"cpu": 0.5, "memory": 64 * MIB}, workload_type="container")
    assert answer.status_code == 201, answer.text
    return answer.json()


def finished(node: Node, workload_id: str) -> dict:
    return wait_for(lambda: (view := node.workload(workload_id))["status"] in ("completed", "failed") and view,
                    timeout_s=60)


def test_run_logs_exit_code_and_delete(node: Node, engine, tmp_path) -> None:
    before = node.resources()
    (tmp_path / "note.txt").write_text("from the host")
    record = run(node, "echo out; echo err >&2; cat /data/note.txt >&2; touch /data/x || exit 3",
                 volumes={str(tmp_path): {"bind": "/data", "mode": "ro"}})
    assert record["container_id"] == containers_of(engine, record["id"])[0].id
    final = finished(node, record["id"])
    assert final["status"] == "failed" and final["exit_code"] == 3
    assert node.resources() == before
    logs = node.api("GET", f"/api/workloads/{record['id']}/logs").json()
    assert logs["stdout"] == "out\n" and "err" in logs["stderr"] and "from the host" in logs["stderr"]
    assert not (tmp_path / "x").exists()  # mounted read-only
    assert len(containers_of(engine, record["id"])) == 1  # kept until the workload is deleted
    node.api("DELETE", f"/api/workloads/{record['id']}")
    assert containers_of(engine, record["id"]) == []
    ok = run(node, 'echo "$GREETING from $(pwd)"', env={"GREETING": "hello"}, working_dir="/tmp")
    assert finished(node, ok["id"])["status"] == "completed"
    assert node.api("GET", f"/api/workloads/{ok['id']}/logs").json()["stdout"] == "hello from /tmp\n"
    node.api("DELETE", f"/api/workloads/{ok['id']}")


def test_stop_is_quick_and_releases(node: Node, engine) -> None:
    before = node.resources()
    record = run(node, "sleep 300")
    wait_for(lambda: [c.status for c in containers_of(engine, record["id"])] == ["running"], timeout_s=30)
    stopped = node.api("POST", f"/api/workloads/{record['id']}/stop").json()
    assert stopped["status"] == "stopped" and node.resources() == before
    assert [c.status for c in containers_of(engine, record["id"])] == ["exited"]
    node.api("DELETE", f"/api/workloads/{record['id']}")


def test_published_port_answers_from_the_host(node: Node) -> None:
    port = free_port()
    record = run(node, "echo served > /var/www/index.html && exec httpd -f -p 8080 -h /var/www",
                 ports={"8080/tcp": port})
    assert record["endpoint"] == f"http://127.0.0.1:{port}"
    body = wait_for(lambda: _get(record["endpoint"] + "/index.html"), timeout_s=30)
    assert body == "served\n"
    node.api("DELETE", f"/api/workloads/{record['id']}")


def _get(url: str) -> str | None:
    try:
        answer = requests.get(url, timeout=2)
    except (requests.ConnectionError, requests.Timeout):
        return None
    return answer.text if answer.ok else None


def test_requirements_become_cgroup_limits(node: Node) -> None:
    script = ("cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null; "
              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; true")
    record = run(node, script, {"cpu": 0.5, "memory": 48 * MIB})
    finished(node, record["id"])
    limits = node.api("GET", f"/api/workloads/{record['id']}/logs").json()["stdout"]
    assert "50000" in limits and str(48 * MIB) in limits, limits
    node.api("DELETE", f"/api/workloads/{record['id']}")


def test_memory_hog_is_killed_and_reported(node: Node) -> None:
    before = node.resources()
    hog = 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo ${#x}'  # holds 100 MB in the shell
    record = run(node, hog, {"cpu": 0.5, "memory": 16 * MIB})
    final = finished(node, record["id"])
    assert final["status"] == "failed" and final["exit_code"] == 137, final
    assert "exit 137" in node.api("GET", f"/api/workloads/{record['id']}/logs").json()["stderr"]
    assert node.resources() == before
    node.api("DELETE", f"/api/workloads/{record['id']}")


def test_unknown_image_is_400_naming_it(node: Node) -> None:
    before = node.resources()
    answer = node.submit({"image": "no-such-image:1"}, {"cpu": 0.5}, workload_type="container")
    assert answer.status_code == 422 and "no-such-image:1" in answer.json()["message"]
    assert node.resources() == before


def test_no_engine_is_a_4xx_naming_the_address(start_node) -> None:
    address = "unix:///tmp/no-engine-here.sock"
    node = start_node(container={"engine": address})
    before = node.resources()
    answer = node.submit({"image": "busybox"}, {"cpu": 0.5}, workload_type="container")
    assert answer.status_code == 422 and address in answer.json()["message"]
    assert node.resources() == before and node.api("GET", "/api/workloads").json()["count"] == 0


def test_node_restart_keeps_one_container(start_node, engine) -> None:
    node = start_node(container={"engine": ENGINE})
    record = run(node, "sleep 300")
    wait_for(lambda: [c.status for c in containers_of(engine, record["id"])] == ["running"], timeout_s=30)
    node.restart()
    wait_for(lambda: [c.status for c in containers_of(engine, record["id"])] == ["running"], timeout_s=60)
    assert node.workload(record["id"])["status"] == "running"
    assert len(containers_of(engine, record["id"])) == 1
    node.api("DELETE", f"/api/workloads/{record['id']}")
    assert containers_of(engine, record["id"]) == []
