"""The real ``cnet`` command against a real node with a token: every command, -o json, logs -f to the end,
a directory upload, predict --draw; a refusal exits 1 with the node's message, bad usage exits 2."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import cv2
import orjson
import pytest

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.http_recorder import PROXY_VARIABLES, HttpRecorder
from tests.support.nodes import MIB, VENV_BIN, Node

TOKEN = "cli-token"
NODE = {"token": TOKEN}


def cnet(node: Node, *argv: str, stdin: str | None = None, token: str = TOKEN) -> subprocess.CompletedProcess:
    env = {**os.environ, "CNET_ADDR": node.url, "CNET_TOKEN": token}
    return subprocess.run([str(VENV_BIN / "cnet"), *argv], env=env, input=stdin, capture_output=True, text=True,
                          timeout=120)


def json_of(node: Node, *argv: str, stdin: str | None = None) -> object:
    """``argv`` with ``-o json`` after its command (before a ``--`` that ends cnet's own options)."""
    command = 2 if argv[0] in ("data", "models") else 1
    done = cnet(node, *argv[:command], "-o", "json", *argv[command:], stdin=stdin)
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def test_status_nodes_and_ps_read_the_node(node: Node) -> None:
    status = cnet(node, "status")
    assert status.returncode == 0 and node.node_id in status.stdout and "capacity" in status.stdout, status.stderr
    assert json_of(node, "status")["health"]["node"] == node.node_id
    assert json_of(node, "nodes")["self"]["id"] == node.node_id
    assert cnet(node, "nodes").returncode == 0
    assert isinstance(json_of(node, "ps"), list)


def test_run_a_quick_process_and_follow_its_logs_to_the_end(node: Node) -> None:
    started = json_of(node, "run", "process", "--cpu", "0.2", "--name", "greeter", "--",
                      "sh", "-c", "echo hello; sleep 2; echo bye")
    assert started["name"] == "greeter" and started["requirements"]["cpu"] == 0.2
    followed = cnet(node, "logs", started["id"], "-f")  # returns once the workload has ended
    assert followed.returncode == 0 and followed.stdout == "hello\nbye\n", followed
    assert node.workload(started["id"])["status"] == "completed"
    assert cnet(node, "logs", started["id"], "--tail", "1").stdout == "bye\n"
    listed = cnet(node, "ps").stdout
    assert started["id"] not in listed and started["id"] in cnet(node, "ps", "--all").stdout  # finished: --all only
    assert cnet(node, "rm", started["id"]).returncode == 0


def test_a_workload_is_named_by_its_id_its_name_or_the_start_of_its_id(node: Node) -> None:
    """As docker and nomad read one; a name that two workloads have is refused, naming both, and acts on neither.
    Control: before, a name or the start of an id was a 404 (``no workload with id 'named-once'``)."""
    once = json_of(node, "run", "process", "--name", "named-once", "--", "sleep", "60")
    twice = [json_of(node, "run", "process", "--name", "named-twice", "--", "sleep", "60") for _ in range(2)]
    assert json_of(node, "show", "named-once")["id"] == once["id"]
    assert json_of(node, "show", once["id"][:7])["id"] == once["id"]
    ambiguous = cnet(node, "rm", "named-twice")
    assert ambiguous.returncode == 1 and "names 2 workloads" in ambiguous.stderr, ambiguous
    assert all(record["id"] in ambiguous.stderr and node.workload(record["id"])["status"] == "running"
               for record in twice)
    assert cnet(node, "stop", "named-once").returncode == 0 and node.workload(once["id"])["status"] == "stopped"
    assert cnet(node, "rm", "named-once").returncode == 0
    gone = cnet(node, "show", "named-once")
    assert gone.returncode == 1 and "not_found" in gone.stderr, gone
    for record in twice:
        assert cnet(node, "rm", record["id"]).returncode == 0


def test_show_gives_times_as_dates_and_json_as_the_node_does(node: Node) -> None:
    """As kubectl describe shows them. Control: before, ``created_at: 1796580073.54``."""
    started = json_of(node, "run", "process", "--name", "dated", "--", "sleep", "60")
    shown = cnet(node, "show", started["id"])
    assert shown.returncode == 0, shown
    for field in ("created_at", "started_at"):
        assert re.search(rf"^{field}: '?\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+[sm] ago\)'?$", shown.stdout,
                         re.MULTILINE), shown.stdout
    assert "finished_at: null" in shown.stdout
    assert isinstance(json_of(node, "show", started["id"])["created_at"], float)
    assert cnet(node, "rm", started["id"]).returncode == 0


def test_run_a_spec_file_or_stdin_with_sizes(node: Node, tmp_path: Path) -> None:
    spec = tmp_path / "sleeper.yaml"
    spec.write_text("type: process\nname: sleeper\nconfig: {command: sleep, args: ['60']}\n"
                    "requirements: {cpu: 0.1, memory: 64MiB}\n")
    record = json_of(node, "run", str(spec))
    assert record["status"] == "running" and record["requirements"]["memory"] == 64 * MIB
    shown = cnet(node, "show", record["id"])
    assert shown.returncode == 0 and "name: sleeper" in shown.stdout
    assert cnet(node, "stop", record["id"]).stdout.strip() == f"{record['id']} stopped"
    assert cnet(node, "rm", record["id"]).returncode == 0
    from_stdin = json_of(node, "run", "-", stdin='{"type": "process", "config": {"command": "true"}}')
    assert from_stdin["type"] == "process"
    cnet(node, "rm", from_stdin["id"])


@pytest.mark.parametrize("argv, code, words", [
    (("show", "no-such-workload"), 1, "not_found"),
    (("run", "-"), 1, "a workload spec is a mapping"),  # stdin: nothing
    (("run", "process", "--memory", "lots", "--", "true"), 1, "not a size"),
    (("run", "process", "--cpu", "1000", "--", "true"), 1, ": no_room: not enough cpu (cpu 1000 asked"),  # per node
    (("logs",), 2, "Missing argument"),
    (("frobnicate",), 2, "No such command"),
])
def test_refusals_exit_1_with_the_reason_and_bad_usage_exits_2(node: Node, argv: tuple, code: int, words: str) -> None:
    done = cnet(node, *argv, stdin="")
    assert done.returncode == code and words in done.stderr, done


def test_a_wrong_token_is_refused_and_nothing_runs(node: Node) -> None:
    before = len(node.workloads())
    done = cnet(node, "run", "process", "--", "true", token="wrong")
    assert done.returncode == 1 and "unauthorized" in done.stderr
    assert len(node.workloads()) == before


def test_run_a_deployment_ps_it_and_scale_it(node: Node, tmp_path: Path) -> None:
    spec = tmp_path / "faces.yaml"
    spec.write_text("type: opencv\nid: cli-faces\nreplicas: 2\nconfig: {cascade_type: face}\n"
                    "requirements: {cpu: 0.1}\n")
    record = json_of(node, "run", str(spec))
    assert record["deployment"]["summary"] == "running 2/2", record
    assert f"running 2/2 on {node.node_id}" in cnet(node, "ps").stdout.replace("\n", " ").replace("│", " ")
    scaled = cnet(node, "scale", "cli-faces", "1")
    assert scaled.returncode == 0 and scaled.stdout.startswith("cli-faces scaled to 1"), scaled
    assert cnet(node, "scale", "cli-faces", "0").returncode == 2  # bad usage: at least 1
    assert cnet(node, "rm", "cli-faces").returncode == 0


def test_autoscale_a_deployment_and_show_its_decisions(node: Node, tmp_path: Path) -> None:
    spec = tmp_path / "faces.yaml"
    spec.write_text("type: opencv\nid: cli-auto\nautoscale: {min_replicas: 1, max_replicas: 3}\n"
                    "config: {cascade_type: face}\nrequirements: {cpu: 0.1}\n")
    assert json_of(node, "run", str(spec))["deployment"]["autoscale"]["policy"]["max_replicas"] == 3
    changed = cnet(node, "autoscale", "cli-auto", "--min", "2")
    assert changed.returncode == 0 and "2 wanted (2 to 3)" in changed.stdout, changed
    assert "bounds changed to 2–3" in changed.stdout, changed.stdout
    shown = cnet(node, "show", "cli-auto")
    assert shown.returncode == 0 and "bounds changed to 2–3" in shown.stdout and "autoscale:" in shown.stdout
    refused = cnet(node, "autoscale", "cli-auto", "--min", "4")
    assert refused.returncode == 1 and "autoscale.min_replicas: 4 is more than" in refused.stderr, refused
    assert cnet(node, "scale", "cli-auto", "2").returncode == 1  # autoscaled: its bounds change instead
    assert cnet(node, "autoscale", "cli-auto").returncode == 2  # bad usage: nothing to change
    assert cnet(node, "rm", "cli-auto").returncode == 0


def test_models_ls_and_rm(node: Node) -> None:
    deployed = node.submit({"model_type": "yolo", "model_path": YOLO_MODEL}, {"cpu": 0.5}, workload_type="mlmodel")
    sha256 = deployed.json()["config"]["model_sha256"]
    listed = json_of(node, "models", "ls")
    assert [model["sha256"] for model in listed["models"]] == [sha256]
    table = cnet(node, "models", "ls").stdout
    assert sha256[:12] in table and deployed.json()["id"] in table and "local" in table
    refused = cnet(node, "models", "rm", sha256)  # in use
    assert refused.returncode == 1 and deployed.json()["id"] in refused.stderr
    node.api("DELETE", f"/api/workloads/{deployed.json()['id']}")
    assert cnet(node, "models", "rm", sha256).returncode == 0
    assert sha256[:12] not in cnet(node, "models", "ls").stdout


def test_data_put_a_directory_ls_and_rm(node: Node, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "2026").mkdir(parents=True)
    (photos / "a.txt").write_bytes(b"a" * 1000)
    (photos / "2026" / "b.txt").write_bytes(b"b" * 3000)
    [stored] = json_of(node, "data", "put", str(photos))
    assert stored["name"] == "photos" and stored["config"]["files"] == 2 and stored["config"]["size_bytes"] == 4000
    assert sorted(f["rel_path"] for f in stored["files"]) == ["photos/2026/b.txt", "photos/a.txt"]
    assert stored["data_key"] in cnet(node, "data", "ls").stdout
    assert cnet(node, "data", "rm", stored["data_key"]).returncode == 0
    assert stored["data_key"] not in cnet(node, "data", "ls").stdout


def test_predict_prints_detections_and_draws_them(node: Node, tmp_path: Path) -> None:
    service = node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv").json()
    drawn = tmp_path / "boxes.jpg"
    try:
        printed = cnet(node, "predict", service["id"], ASTRONAUT, "--draw", str(drawn))
        assert printed.returncode == 0 and "face" in printed.stdout, printed
        answer = json_of(node, "predict", service["id"], ASTRONAUT, "--confidence", "0.2")
        assert answer["count"] >= 1
        original, boxed = cv2.imread(ASTRONAUT), cv2.imread(str(drawn))
        assert boxed.shape == original.shape and (boxed != original).any()  # the same picture, boxes on it
    finally:
        node.api("DELETE", f"/api/workloads/{service['id']}")


def test_a_node_on_this_machine_is_reached_past_the_shells_proxy(node: Node) -> None:
    """An operator's shell behind a site's proxy names it in http_proxy and its kin: ``cnet`` still reaches
    the node on this machine. Control: a node at another name goes through the proxy, which sees it."""
    with HttpRecorder(status=502, body=b"proxy") as proxy:
        proxied = {**os.environ, **{variable: proxy.url for variable in PROXY_VARIABLES}, "CNET_TOKEN": TOKEN}
        proxied.pop("no_proxy", None), proxied.pop("NO_PROXY", None)
        here = subprocess.run([str(VENV_BIN / "cnet"), "--addr", node.url, "status"], env=proxied,
                              capture_output=True, text=True, timeout=60)
        assert here.returncode == 0 and node.node_id in here.stdout, here.stderr
        assert proxy.seen == []
        elsewhere = subprocess.run([str(VENV_BIN / "cnet"), "--addr", "http://node.example.invalid:8080", "status"],
                                   env=proxied, capture_output=True, text=True, timeout=60)
        assert elsewhere.returncode == 1
        assert [url for url, _ in proxy.seen][:1] == ["http://node.example.invalid:8080/api/health"], proxy.seen
