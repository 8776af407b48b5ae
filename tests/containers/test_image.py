"""CNET itself in containers: ``make image`` builds localhost/cnet offline (a debootstrap base cached in
~/.cache/cnet, the bundle installed in it); a node container answers the host, runs process, OpenCV and
YOLO workloads, keeps its ledger across a restart and relaunches them; bad config, a volume it cannot own
and a port clash are refused in one line; the seed's four-node cluster runs as containers (scenario 2: a
YOLO model given to jiangsu runs on nanjing, its model carried by the cache, answering as on the host);
the Kubernetes manifests validate (a broken one is the control). Everything is removed afterwards."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import pytest
import requests

from cnetd import __version__
from inference.yolo_model import YoloModel
from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.nodes import VENV_BIN, free_port, wait_for, wait_until_answers
from tests.support.packaging import REPO as REPO_ROOT

IMAGE = "localhost/cnet:latest"
PNG = Path(ASTRONAUT).read_bytes()
COMPOSE = [str(VENV_BIN / "podman-compose"), "-f", str(REPO_ROOT / "deploy/compose/cluster.yaml"), "-p",
           "cnet-cluster-test"]


def podman(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *argv], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    """``make image`` as a user runs it (its base cached outside the clone)."""
    done = subprocess.run(["make", "image"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"localhost/cnet:{__version__} localhost/cnet:latest" in done.stdout, done.stdout
    return IMAGE


class Container:
    """A node container, removed with its anonymous volume (the image's /var/lib/cnet) whatever happened."""

    def __init__(self, *options: str, name: str | None = None) -> None:
        self.name = name or f"cnet-test-{uuid.uuid4().hex[:8]}"
        self.options = options

    def run(self, detach: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return podman("run", *(["-d"] if detach else []), "--name", self.name, *self.options, IMAGE, check=False,
                      timeout=timeout)

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", "--time", "10", self.name, check=False)


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    made: list[Container] = []
    yield made
    for container in made:
        container.remove()


def test_a_node_container_runs_workloads_and_keeps_them_across_a_restart(image: str, containers: list) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "cnet" and "/var/lib/cnet" in config["Volumes"], config
    assert {"8080/tcp", "9080/tcp"} <= set(config["ExposedPorts"]), config
    assert inspected["Healthcheck"]["Test"][1:3] == ["/opt/cnet/bin/cnetd", "health"], inspected["Healthcheck"]
    port, token = free_port(), "container-token"
    node = Container("-p", f"127.0.0.1:{port}:8080", "-e", "CNET__AGENT__NODE_ID=boxed", "-e",
                     f"CNET__AUTH__TOKEN={token}", "-e", "CNET__RESOURCES__CPU=2")  # state: the image's anonymous volume
    containers.append(node)
    assert node.run().returncode == 0
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    wait_until_answers(f"{url}/api/health", timeout_s=90)
    assert podman("healthcheck", "run", node.name, check=False).returncode == 0
    status = subprocess.run([str(VENV_BIN / "cnet"), "status"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "CNET_ADDR": url, "CNET_TOKEN": token})
    assert status.returncode == 0 and "boxed" in status.stdout, status
    console = requests.get(f"{url}/", timeout=10)  # the console, served by the node in the container
    assert console.status_code == 200 and "text/html" in console.headers["Content-Type"], console.text[:200]
    with open(YOLO_MODEL, "rb") as handle:
        stored = requests.post(f"{url}/api/workloads", files=[("file", ("faces.onnx", handle))], headers=headers,
                               timeout=60).json()
    submitted = {
        "sleeper": {"type": "process", "config": {"command": "sleep", "args": ["600"]}, "requirements": {"cpu": 0.1}},
        "faces": {"type": "opencv", "config": {"cascade_type": "face"}, "requirements": {"cpu": 0.5}},
        "yolo": {"type": "mlmodel", "config": {"model_type": "yolo",
                                               "model_path": f"data://{stored['data_key']}/faces.onnx"},
                 "requirements": {"cpu": 1}},
    }
    for workload_id, body in submitted.items():
        answer = requests.post(f"{url}/api/workloads", json={"id": workload_id, **body}, headers=headers, timeout=120)
        assert answer.status_code == 201 and answer.json()["status"] == "running", answer.text
    before = {workload_id: requests.get(f"{url}/api/workloads/{workload_id}", headers=headers, timeout=10).json()
              for workload_id in submitted}
    for service in ("faces", "yolo"):
        found = requests.post(f"{url}/api/workloads/{service}/predict", data=PNG, timeout=60,
                              headers={**headers, "Content-Type": "image/png"})
        assert found.status_code == 200 and found.json()["count"] >= 1, found.text
    assert podman("restart", "--time", "30", node.name, timeout=120).returncode == 0
    wait_until_answers(f"{url}/api/health", timeout_s=90)

    def relaunched() -> dict[str, Any] | None:
        """Every record running, and its sleep's pid a sleep in the container now: the restart ended every process
        of the container, so that sleep was started again by the node (a record read before the node's start
        settled it still shows the old run's pid)."""
        views = {workload_id: requests.get(f"{url}/api/workloads/{workload_id}", headers=headers, timeout=10).json()
                 for workload_id in submitted}
        if not all(view["status"] == "running" for view in views.values()):
            return None
        command = podman("exec", node.name, "cat", f"/proc/{views['sleeper']['process_pid']}/cmdline", check=False)
        return views if command.stdout.split("\0")[:2] == ["/usr/bin/sleep", "600"] else None
    after = wait_for(relaunched, timeout_s=90, interval_s=1.0, diagnose=node.logs)
    for workload_id in submitted:  # the same records, their programs started again
        assert after[workload_id]["created_at"] == before[workload_id]["created_at"]
    found = requests.post(f"{url}/api/workloads/yolo/predict", data=PNG, timeout=60,
                          headers={**headers, "Content-Type": "image/png"})
    assert found.status_code == 200 and found.json()["count"] >= 1, found.text


@pytest.mark.parametrize("case", ["bad value", "mounted config", "unreadable config", "volume of another user",
                                  "port in use"])
def test_what_a_node_container_cannot_start_with_is_named_in_one_line(image: str, containers: list, case: str,
                                                                       tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cnet-image-case-"))
    try:
        options: list[str] = ["-e", "CNET__AGENT__NODE_ID=refused"]
        if case == "bad value":
            options += ["-e", "CNET__AGENT__PORT=high"]
            expected, says = 2, "agent.port: expected a port number"
        elif case == "mounted config":  # read: its value is the one refused (the control for the next case)
            config = folder / "config.yaml"
            config.write_text("agent: {node_id: refused, port: high}\n")
            config.chmod(0o644)
            folder.chmod(0o755)
            options += ["-v", f"{config}:/etc/cnet/config.yaml:ro"]
            expected, says = 2, "agent.port: expected a port number"
        elif case == "unreadable config":
            config = folder / "config.yaml"
            config.write_text("agent: {node_id: refused}\n")
            config.chmod(0o600)  # root's: the image's user cannot read it
            options += ["-v", f"{config}:/etc/cnet/config.yaml:ro"]
            expected, says = 2, "cannot read /etc/cnet/config.yaml: Permission denied"
        elif case == "volume of another user":
            folder.chmod(0o700)  # root's, 0700: mounted as the state volume
            options += ["-v", f"{folder}:/var/lib/cnet", "-e", "CNET__AUTH__INSECURE=true"]
            expected, says = 1, "/var/lib/cnet"
        else:
            taken = socket.socket()
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            options += ["--network", "host", "-e", "CNET__AGENT__ADDRESS=127.0.0.1",
                        "-e", f"CNET__AGENT__PORT={taken.getsockname()[1]}"]
            expected, says = 1, f"agent.port: 127.0.0.1:{taken.getsockname()[1]} is already in use"
        container = Container(*options)
        containers.append(container)
        assert container.run(detach=False, timeout=120).returncode == expected, container.logs()
        lines = [line for line in container.logs().splitlines() if line.startswith("cnetd:")]
        assert len(lines) == 1 and says in lines[0], container.logs()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_seed_cluster_runs_as_four_containers_and_scenario_2_answers_as_the_host(image: str) -> None:
    """jiangsu (2 cpu) is given a YOLO model needing 4: it delegates to nanjing, which fetches the model
    from jiangsu's data through the model cache; predictions through jiangsu equal the model on the host."""
    try:
        up = subprocess.run([*COMPOSE, "up", "-d"], capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        urls = {name: f"http://127.0.0.1:{port}" for name, port in
                (("jiangsu", 8080), ("nanjing", 8081), ("suqian", 8082), ("changzhou", 8083))}
        for url in urls.values():
            wait_until_answers(f"{url}/api/health", timeout_s=120)

        def tree() -> bool:
            nodes = requests.get(f"{urls['nanjing']}/api/nodes", timeout=5).json()
            return nodes["parent"] and nodes["parent"]["status"] == "online" and \
                sorted((child["id"], child["status"]) for child in nodes["children"]) == \
                [("changzhou", "online"), ("suqian", "online")]
        wait_for(tree, timeout_s=60)
        with open(YOLO_MODEL, "rb") as handle:
            stored = requests.post(f"{urls['jiangsu']}/api/workloads", files=[("file", ("faces.onnx", handle))],
                                   timeout=60).json()
        answer = requests.post(f"{urls['jiangsu']}/api/workloads", timeout=180, json={
            "type": "mlmodel", "id": "scenario2", "requirements": {"cpu": 4},
            "config": {"model_type": "yolo", "model_path": f"data://{stored['data_key']}/faces.onnx"}})
        assert answer.status_code == 201, answer.text
        wait_for(lambda: requests.get(f"{urls['jiangsu']}/api/workloads/scenario2", timeout=10).json()["status"]
                 == "running", timeout_s=120)
        assert requests.get(f"{urls['nanjing']}/api/workloads/scenario2", timeout=10).json()["node"] == "nanjing"
        assert any(entry["sha256"] for entry in requests.get(f"{urls['nanjing']}/api/models", timeout=10).json()
                   ["models"]), "the model did not reach nanjing's cache"
        got = requests.post(f"{urls['jiangsu']}/api/workloads/scenario2/predict", data=PNG, timeout=60,
                            headers={"Content-Type": "image/png"})
        assert got.status_code == 200, got.text
        expected, _ = YoloModel(YOLO_MODEL, threads=1).predict(cv2.imread(ASTRONAUT))
        detections = got.json()["detections"]
        assert [item["class"] for item in detections] == [item.class_name for item in expected], detections
        for mine, theirs in zip(detections, expected):
            assert abs(mine["confidence"] - theirs.confidence) < 1e-3 and \
                np.allclose(mine["bbox"], theirs.bbox, atol=0.5), (mine, theirs)
    finally:
        down = subprocess.run([*COMPOSE, "down", "-v", "-t", "10"], capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stderr
    left = podman("ps", "-a", "--filter", "label=io.podman.compose.project=cnet-cluster-test", "--format",
                  "{{.Names}}").stdout.split()
    assert left == [] and podman("network", "exists", "cnet-cluster-test_cnet", check=False).returncode != 0
    assert not [name for name in podman("volume", "ls", "--format", "{{.Name}}").stdout.split()
                if name.startswith("cnet-cluster-test_")]


def test_the_kubernetes_manifests_validate_and_a_broken_one_does_not(tmp_path: Path) -> None:
    validate = [str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet"]
    manifests = sorted(str(path) for path in (REPO_ROOT / "deploy/k8s").glob("*.yaml"))
    assert len(manifests) >= 3
    done = subprocess.run([*validate, *manifests], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "daemonset.yaml"  # the control: containers given as a mapping, a port as a word
    broken.write_text((REPO_ROOT / "deploy/k8s/daemonset.yaml").read_text()
                      .replace("containerPort: 8080, hostPort: 8080", "containerPort: api, hostPort: 8080"))
    failed = subprocess.run([*validate, str(broken)], capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0 and "containerPort" in failed.stdout + failed.stderr, failed

