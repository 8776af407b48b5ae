"""Models across real test hosts with private filesystems: a model only the origin has (its directory is an
empty tmpfs on the other hosts) is deployed on a child and a grandchild, which fetch it from the origin
by its hash; predictions through the origin match the origin's own; a second deployment is a cache hit;
a wrong model_sha256 is refused with nothing cached or allocated anywhere; data uploaded on the origin is
a model source for its child, and for its grandchild (the child carries it across its hop); forwards that
outlast their timeout while the model is fetched are settled once the fetch ends (run, or fenced off), never
run twice; data the origin may hold, asked for while it is cut off, is refused naming it as not asked; a model
is kept for the forward that names it."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import onnx
import pytest

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.file_server import FileServer, copy_of
from tests.support.hosts import make_hosts
from tests.support.nodes import GIB, Node, link, nodes_view, running, samples, wait_for
from tests.support.uploads import upload_model

TOKEN = "models-across-hosts"
SHA256 = hashlib.sha256(Path(YOLO_MODEL).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="cnet-origin-models-"))
    folder.chmod(0o755)
    copy_of(YOLO_MODEL, folder, "faces.onnx")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tree(model_dir: Path) -> Iterator[dict[str, Node]]:
    """origin (0.5 cpu) ← child (2 cpu) ← grandchild (4 cpu), each on its own host."""
    with make_hosts(3) as hosts:
        origin = link(Node({"cpu": 0.5, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, token=TOKEN, host=hosts[0]),
                      heartbeat_period_s=1.0)
        child = link(Node({"cpu": 2, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, token=TOKEN,
                          host=hosts[1].hiding(str(model_dir))), parent=origin, heartbeat_period_s=1.0)
        grandchild = link(Node({"cpu": 4, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, token=TOKEN,
                               host=hosts[2].hiding(str(model_dir))), parent=child, heartbeat_period_s=1.0)
        with running(origin, child, grandchild):
            wait_for(lambda: _subtree_cpu(origin) >= 4, timeout_s=30, diagnose=lambda: nodes_view(origin))
            yield {"origin": origin, "child": child, "grandchild": grandchild}


def _subtree_cpu(origin: Node) -> float:
    """The most cpu free on one node below the origin, as its child's heartbeats say."""
    children = [child for child in origin.api("GET", "/api/nodes").json()["children"] if child["status"] == "online"]
    return max(((child.get("subtree") or {}).get("available_max") or {}).get("cpu", 0) for child in children) \
        if children else 0


def deploy(node: Node, cpu: float, **config: Any) -> dict[str, Any]:
    answer = node.submit({"model_type": "yolo", **config}, {"cpu": cpu}, workload_type="mlmodel")
    assert answer.status_code == 201, answer.text
    return answer.json()


def from_data(stored: dict[str, Any]) -> dict[str, str]:
    """The config of a YOLO deployment whose model is the file of the data ``stored``."""
    return {"model_type": "yolo", "model_path": f"data://{stored['data_key']}/faces.onnx"}


def relayed(node: Node, workload_id: str) -> list[dict[str, Any]]:
    with open(ASTRONAUT, "rb") as handle:
        answer = node.api("POST", f"/api/workloads/{workload_id}/predict", data=handle.read(),
                          headers={"Content-Type": "image/png"})
    assert answer.status_code == 200, answer.text
    return answer.json()["detections"]


def cached(node: Node) -> list[dict[str, Any]]:
    return node.api("GET", "/api/models").json()["models"]


def test_a_model_only_the_origin_has_runs_on_a_child_and_a_grandchild(tree: dict[str, Node], model_dir: Path) -> None:
    origin, child, grandchild = tree["origin"], tree["child"], tree["grandchild"]
    path = str(model_dir / "faces.onnx")
    # Control: the other hosts do not see the origin's file.
    unseen = child.submit({"model_type": "yolo", "model_path": path}, {"cpu": 0.5}, workload_type="mlmodel")
    assert unseen.status_code == 422 and "does not exist" in unseen.json()["message"], unseen.text
    here = deploy(origin, 0.4, model_path=path)
    on_child = deploy(origin, 1.5, model_path=path)
    on_grandchild = deploy(origin, 3, model_path=path)
    assert (here["node"], on_child["node"], on_grandchild["node"]) == (origin.node_id, child.node_id,
                                                                        grandchild.node_id)
    expected = relayed(origin, here["id"])
    assert expected and relayed(origin, on_child["id"]) == expected and relayed(origin, on_grandchild["id"]) == expected
    for node in (child, grandchild):
        [entry] = cached(node)
        assert (entry["sha256"], entry["kind"], entry["size_bytes"]) == (SHA256, "cached", Path(path).stat().st_size)
        assert f"{origin.url}/api/artifacts/{SHA256}" == entry["source"]
        assert sum(samples(node, "cnet_model_fetched_bytes_total")) == Path(path).stat().st_size
    # A second deployment on the child: a cache hit, nothing transferred.
    again = deploy(origin, 0.3, model_path=path)
    assert again["node"] == child.node_id
    assert sum(samples(child, "cnet_model_cache_total", outcome="hit")) == 1
    assert sum(samples(child, "cnet_model_cache_total", outcome="fetched")) == 1
    assert sum(samples(child, "cnet_model_fetched_bytes_total")) == Path(path).stat().st_size
    for record in (here, on_child, on_grandchild, again):
        assert origin.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200


def test_a_model_is_kept_for_the_forward_that_names_it(tree: dict[str, Node]) -> None:
    """A deployment forwarded with data only the origin has names the model by a link to the origin's
    /api/artifacts, and the origin keeps the model for it until the forward is answered: an eviction meanwhile
    (the child's scheduler, stopped, holds the forward open) is a 409 naming it, not a link that goes dead on
    its way. Once answered, the pointer does not hold the model: the node that runs it has its own copy.
    Control: with the keep taken out of ``forwarded``, the eviction is answered 200."""
    origin, child = tree["origin"], tree["child"]
    stored = upload_model(origin)
    with ThreadPoolExecutor(1) as pool:
        with child.paused("scheduler"):
            pending = pool.submit(origin.submit, from_data(stored), {"cpu": 1.5}, workload_type="mlmodel")
            [pointer] = wait_for(lambda: [view for view in origin.workloads() if view["status"] == "delegating"]
                                 or None, timeout_s=30)
            evicted = origin.api("DELETE", f"/api/models/{SHA256}")
        answer = pending.result()
    assert evicted.status_code == 409 and evicted.json()["users"] == [pointer["id"]], evicted.text
    assert answer.status_code == 201 and answer.json()["node"] == child.node_id, answer.text
    assert relayed(origin, pointer["id"])
    assert origin.api("DELETE", f"/api/models/{SHA256}").status_code == 200  # the pointer holds it no more
    for workload_id in (pointer["id"], stored["data_key"]):
        assert origin.api("DELETE", f"/api/workloads/{workload_id}").status_code == 200


def test_a_carried_model_is_kept_for_a_forward_whose_outcome_is_unknown(tree: dict[str, Node]) -> None:
    """The child carries the origin's data to the grandchild (it fetches the model into its cache and forwards a
    link to it). The forward outlasts its time (the grandchild's scheduler, stopped, has not fetched it yet), so its
    outcome is unknown and the child settles it later: until then the child keeps its copy, so an eviction meanwhile
    is a 409 naming the pointer, and the grandchild, resumed, fetches the model and runs the deployment.
    Control: with the unknown pointer not counted among the model's users, the eviction was a 200 that deleted the
    child's copy, and the deployment that had been accepted ran nowhere."""
    origin, child, grandchild = tree["origin"], tree["child"], tree["grandchild"]
    stored = upload_model(origin)
    with grandchild.paused("scheduler"):  # 3 cpu: no room on the child; a forward given 2 s, not 15
        unknown = child.submit(from_data(stored), {"cpu": 3}, workload_type="mlmodel",
                               delegation={"visited": [], "budget_s": 2})
        evicted = child.api("DELETE", f"/api/models/{SHA256}")
    assert unknown.status_code == 503 and unknown.json()["error"] == "delegation_unknown", unknown.text
    pointer = unknown.json()["id"]
    assert evicted.status_code == 409 and evicted.json()["users"] == [pointer], evicted.text
    wait_for(lambda: child.workload(pointer)["status"] == "running", timeout_s=60,
             diagnose=lambda: child.workload(pointer))
    assert child.workload(pointer)["node"] == grandchild.node_id
    assert relayed(child, pointer)
    assert child.api("DELETE", f"/api/models/{SHA256}").status_code == 200  # settled: the pointer holds it no more
    assert child.api("DELETE", f"/api/workloads/{pointer}").status_code == 200
    assert origin.api("DELETE", f"/api/workloads/{stored['data_key']}").status_code == 200


def test_a_wrong_sha256_is_refused_with_nothing_cached_or_allocated(tree: dict[str, Node], model_dir: Path) -> None:
    before = {name: (node.resources()["allocated"], len(cached(node))) for name, node in tree.items()}
    answer = tree["origin"].submit({"model_type": "yolo", "model_path": str(model_dir / "faces.onnx"),
                                    "model_sha256": "f" * 64}, {"cpu": 1.5}, workload_type="mlmodel")
    assert answer.status_code == 422 and "faces.onnx" in answer.json()["message"], answer.text
    assert {name: (node.resources()["allocated"], len(cached(node))) for name, node in tree.items()} == before


def test_data_on_the_origin_is_a_model_source_for_its_child(tree: dict[str, Node]) -> None:
    origin, child = tree["origin"], tree["child"]
    stored = upload_model(origin)
    record = deploy(child, 0.5, **from_data(stored))  # asked of the child
    assert record["node"] == child.node_id and record["config"]["model_sha256"] == SHA256
    assert relayed(child, record["id"])
    assert child.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200
    assert origin.api("DELETE", f"/api/workloads/{stored['data_key']}").status_code == 200


def test_data_a_neighbour_holds_is_carried_across_the_hop_to_a_node_that_cannot_reach_it(tree: dict[str, Node]) -> None:
    """The child has too little cpu and passes the deployment on to the grandchild, whose one neighbour (the child)
    has no such data. The child fetches the model from the origin and carries it across its hop, as it does a model
    file of its own. Neither the grandchild's record nor a refusal shows the signature of the link it went with.
    Control: a deployment the grandchild refuses (its file is no model) leaves nothing cached or allocated
    anywhere, the carried copy included."""
    origin, child, grandchild = tree["origin"], tree["child"], tree["grandchild"]
    for node in (child, grandchild):  # copies earlier tests left
        assert node.api("DELETE", f"/api/models/{SHA256}").status_code in (200, 404)
    stored = upload_model(origin)
    record = deploy(child, 3, **from_data(stored))
    assert record["node"] == grandchild.node_id and record["config"]["model_sha256"] == SHA256, record
    assert relayed(child, record["id"])
    # Readers see the link it went with, not the signature that lets anyone holding it fetch the model.
    shown = grandchild.api("GET", f"/api/workloads/{record['id']}").json()["config"]["model_path"]
    assert shown == f"{child.url}/api/artifacts/{SHA256}?********" == record["config"]["model_path"], shown
    [carried] = [entry for entry in cached(child) if entry["sha256"] == SHA256]
    assert carried["source"] == from_data(stored)["model_path"]
    [entry] = [entry for entry in cached(grandchild) if entry["sha256"] == SHA256]
    assert entry["source"] == f"{child.url}/api/artifacts/{SHA256}"
    for node, workload_id in ((child, record["id"]), (origin, stored["data_key"])):
        assert node.api("DELETE", f"/api/workloads/{workload_id}").status_code == 200

    before = {name: (node.resources()["allocated"], len(cached(node))) for name, node in tree.items()}
    garbage = upload_model(origin, b"no model " * 1000)
    refused = child.submit(from_data(garbage), {"cpu": 3}, workload_type="mlmodel")
    assert refused.status_code == 422 and grandchild.node_id in refused.text, refused.text
    assert "is not a loadable ONNX model" in refused.text and "signature" not in refused.text, refused.text
    assert origin.api("DELETE", f"/api/workloads/{garbage['data_key']}").status_code == 200
    assert {name: (node.resources()["allocated"], len(cached(node))) for name, node in tree.items()} == before


def test_forwards_that_outlast_their_timeout_while_a_model_is_fetched_are_settled_once_it_ends(
        tree: dict[str, Node], tmp_path: Path) -> None:
    """The child's fetch outlasts the origin's forward (15 s): the origin answers that the outcome is not
    known yet, and settles each forward once the child is done with it (admitted there before its fetch, it
    is 'pending' until then). A model that loads then runs there, and the origin's pointer follows it; one
    that does not is refused there with its forward fenced off, and the origin's pointer goes. Nothing runs
    twice, and nothing is left of the refused one anywhere."""
    origin, child, grandchild = tree["origin"], tree["child"], tree["grandchild"]
    slow = onnx.load(YOLO_MODEL)
    slow.doc_string = "fetched slowly"
    onnx.save(slow, str(tmp_path / "slow.onnx"))
    (tmp_path / "broken.onnx").write_bytes(os.urandom((tmp_path / "slow.onnx").stat().st_size))
    tmp_path.chmod(0o755)
    before = child.resources()["allocated"]
    forwards = {"slow-fetch": "slow.onnx", "broken-fetch": "broken.onnx"}
    with FileServer(tmp_path, host="198.51.100.254", chunk_delay_s=0.11) as server:  # ~20 s for 12 MB
        with ThreadPoolExecutor(len(forwards)) as pool:
            answers = [pool.submit(origin.submit, {"model_type": "yolo", "model_path": f"{server.url}/{name}"},
                                   {"cpu": 1}, workload_type="mlmodel", id=workload_id, fresh_connection=True)
                       for workload_id, name in forwards.items()]
            for answer in answers:
                unknown = answer.result(timeout=60)
                assert unknown.status_code == 503 and unknown.json()["error"] == "delegation_unknown", unknown.text
        assert origin.api("GET", "/api/workloads/slow-fetch").json()["status"] == "unknown"  # pending at the child
        wait_for(lambda: origin.api("GET", "/api/workloads/slow-fetch").json()["status"] == "running", timeout_s=60,
                 diagnose=lambda: origin.api("GET", "/api/workloads/slow-fetch").json())
        wait_for(lambda: origin.api("GET", "/api/workloads/broken-fetch").status_code == 404, timeout_s=60)
    assert child.api("GET", "/api/workloads/slow-fetch").json()["status"] == "running"
    assert child.api("GET", "/api/workloads/broken-fetch").status_code == 404
    assert "wl-broken-fetch" not in child.supervisorctl("status")
    assert not [model for model in cached(child) if model["source"].endswith("/broken.onnx")]
    assert all(grandchild.api("GET", f"/api/workloads/{workload_id}").status_code == 404 for workload_id in forwards)
    assert origin.api("DELETE", "/api/workloads/slow-fetch").status_code == 200
    kinds = ("cpu", "memory", "gpu")  # storage: the model it fetched stays cached
    wait_for(lambda: [child.resources()["allocated"][kind] for kind in kinds] == [before[kind] for kind in kinds])


def test_data_a_neighbour_may_hold_is_503_naming_the_neighbour_that_could_not_be_asked(tree: dict[str, Node]) -> None:
    """The origin, which holds the data, is cut off while deployments of it are submitted at the child: 503 (trying
    again may find it), naming the neighbour that could not be asked, not a 422 that says no data was found. The
    origin is not a candidate (the child's parent); the grandchild, which has no way to the data, is 422. With
    1.5 cpu the child tries it itself; with 3 it has no room and could not carry the model to the grandchild."""
    origin, child, grandchild = tree["origin"], tree["child"], tree["grandchild"]
    stored = upload_model(origin)
    expected = {1.5: [(child.node_id, "unreachable"), (grandchild.node_id, "unprocessable")],
                3: [(child.node_id, "no_room"), (child.node_id, "unreachable"), (grandchild.node_id, "unprocessable")]}
    refusals = {}
    origin.host.cut()
    try:
        for cpu in expected:
            refusals[cpu] = child.submit(from_data(stored), {"cpu": cpu}, workload_type="mlmodel")
    finally:
        origin.host.heal()
    for cpu, refused in refusals.items():
        assert refused.status_code == 503 and refused.json()["error"] == "unavailable", refused.text
        kinds = sorted((refusal["node_id"], refusal["kind"]) for refusal in refused.json()["refused"])
        assert kinds == sorted(expected[cpu]), refused.text
        assert f"not asked: GET {origin.url}/api/data/{stored['data_key']}: " in refused.text, refused.text
    deleted = origin.api("DELETE", f"/api/workloads/{stored['data_key']}", fresh_connection=True)  # the cut's reset
    assert deleted.status_code == 200, deleted.text


def test_a_forward_refused_with_503_by_a_node_that_let_it_go_is_a_certain_refusal(tree: dict[str, Node]) -> None:
    """The grandchild holds the data and is cut off (its parent, the child, sees it offline). A deployment of it at
    the origin goes to the child, which cannot ask the grandchild and answers 503 with its refusals: the
    origin takes that as certain (the child let it go) and answers 503 at once, with no pointer left to settle.
    Control: a 503 without the refusals (a scheduler that may have acted) stays an unknown outcome."""
    origin, child, grandchild = tree["origin"], tree["child"], tree["grandchild"]
    stored = upload_model(grandchild)
    grandchild.host.cut()
    try:
        wait_for(lambda: (grandchild.node_id, "offline") in nodes_view(child)["children"], timeout_s=30)
        refused = origin.submit(from_data(stored), {"cpu": 1.5}, workload_type="mlmodel",
                                fresh_connection=True)  # its kept-alive connection idled while the child waited
    finally:
        grandchild.host.heal()
    assert refused.status_code == 503 and refused.json()["error"] == "unavailable", refused.text
    by_node = {refusal["node_id"]: refusal for refusal in refused.json()["refused"]}
    assert {node: refusal["kind"] for node, refusal in by_node.items()} == {
        origin.node_id: "no_room", child.node_id: "unreachable"}, refused.text
    assert by_node[child.node_id]["status"] == 503 and "not asked: GET " in by_node[child.node_id]["message"]
    assert origin.api("GET", "/api/workloads", fresh_connection=True).json()["count"] == 0  # no pointer at all
    deleted = grandchild.api("DELETE", f"/api/workloads/{stored['data_key']}", fresh_connection=True)
    assert deleted.status_code == 200, deleted.text
