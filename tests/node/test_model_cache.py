"""The model cache on one node: http:// and data:// sources, one fetch for concurrent deployments, LRU
eviction under a small ``models.cache_bytes``, eviction by hand, failures that leave nothing, a fetch's
progress on its record, and the artifact links (token, signature, Range)."""
from __future__ import annotations

import hashlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import onnx
import psutil
import pytest
import requests

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.disks import fill, small_disk
from tests.support.file_server import FileServer, copy_of
from tests.support.model_checks import stopped_model_check
from tests.support.nodes import GIB, Node, free_port, held_by, running, samples, wait_for
from tests.support.services import predict
from tests.support.uploads import upload_model

TOKEN = "model-cache-token"
SIZE = Path(YOLO_MODEL).stat().st_size
SHA256 = hashlib.sha256(Path(YOLO_MODEL).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """faces.onnx (the YOLO model), other.onnx (the same model saved with another doc string: other bytes),
    and astronaut.png (not a model), to be served over HTTP."""
    folder = tmp_path_factory.mktemp("models")
    copy_of(YOLO_MODEL, folder, "faces.onnx")
    other = onnx.load(YOLO_MODEL)
    other.doc_string = "a second model for the cache tests"
    onnx.save(other, str(folder / "other.onnx"))
    copy_of(ASTRONAUT, folder, "astronaut.png")
    return folder


@pytest.fixture(scope="module")
def server(models: Path) -> Iterator[FileServer]:
    with FileServer(models) as serving:
        yield serving


@pytest.fixture
def node() -> Iterator[Node]:
    # The cache holds one model and a half: a second one evicts the first (when it is unused).
    with running(Node({"cpu": 8, "memory": 16 * GIB, "gpu": 0, "storage": 4 * GIB}, token=TOKEN,
                      models={"cache_bytes": SIZE * 3 // 2})) as started:
        yield started


def deploy(node: Node, model_path: str, **config: Any) -> requests.Response:
    return node.submit({"model_type": "yolo", "model_path": model_path, **config}, {"cpu": 1}, workload_type="mlmodel")


def cached(node: Node) -> dict[str, dict[str, Any]]:
    return {model["sha256"]: model for model in node.api("GET", "/api/models").json()["models"]}


def model_files(node: Node) -> list[str]:
    root = Path(node.config["storage"]["sqlite"]["data_path"]) / "models"
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()) if root.exists() else []


def test_an_http_model_is_fetched_once_for_concurrent_deployments(node: Node, server: FileServer) -> None:
    url = f"{server.url}/faces.onnx"
    before = server.gets["/faces.onnx"]
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: deploy(node, url), range(3)))
    assert [answer.status_code for answer in answers] == [201] * 3, [answer.text for answer in answers]
    assert server.gets["/faces.onnx"] - before == 1  # one transfer for three deployments
    records = [answer.json() for answer in answers]
    assert {record["config"]["model_sha256"] for record in records} == {SHA256}
    entry = cached(node)[SHA256]
    assert entry["kind"] == "cached" and entry["size_bytes"] == SIZE and entry["source"] == url
    assert sorted(entry["users"]) == sorted(record["id"] for record in records)
    assert node.resources()["allocated"]["storage"] == SIZE  # the cache's bytes count against storage
    assert model_files(node) == [SHA256]
    assert predict(records[0]["endpoint"])["count"] >= 1
    # A later deployment naming the hash is a cache hit: no transfer.
    hits = sum(samples(node, "cnet_model_cache_total", outcome="hit"))
    again = deploy(node, url, model_sha256=SHA256)
    assert again.status_code == 201 and server.gets["/faces.onnx"] - before == 1
    assert sum(samples(node, "cnet_model_cache_total", outcome="hit")) == hits + 1
    assert sum(samples(node, "cnet_model_fetched_bytes_total")) == SIZE


def test_a_model_urls_password_is_shown_nowhere(node: Node, server: FileServer) -> None:
    """A model URL that carries a password (as a web server behind basic auth wants it) is named in the cache's
    listing, and in a refusal that quotes it, without that password (the cache listed it as given, and urllib3
    quotes the whole URL it cannot parse)."""
    answer = deploy(node, server.url.replace("://", "://user:secret@") + "/faces.onnx")
    assert answer.status_code == 201, answer.text
    assert cached(node)[SHA256]["source"] == server.url.replace("://", "://user:********@") + "/faces.onnx"
    unparsable = deploy(node, "http://user:secret@127.0.0.1:99999/faces.onnx")
    assert unparsable.status_code == 422 and "secret" not in unparsable.text, unparsable.text
    assert "user:********@" in unparsable.json()["message"]
    assert "secret" not in node.api("GET", "/api/workloads").text + node.api("GET", "/api/models").text


def test_least_recently_used_unused_models_are_evicted(node: Node, server: FileServer) -> None:
    first = deploy(node, f"{server.url}/faces.onnx")
    assert first.status_code == 201, first.text
    other = deploy(node, f"{server.url}/other.onnx")
    # The cache holds one and a half models, and faces.onnx is used: other.onnx does not fit.
    assert other.status_code == 409 and "other.onnx" in other.json()["message"], other.text
    assert list(cached(node)) == [SHA256]
    node.api("DELETE", f"/api/workloads/{first.json()['id']}")
    other = deploy(node, f"{server.url}/other.onnx")
    assert other.status_code == 201, other.text  # faces.onnx, unused now, made room
    assert list(cached(node)) == [other.json()["config"]["model_sha256"]]
    assert model_files(node) == [other.json()["config"]["model_sha256"]]
    assert node.resources()["allocated"]["storage"] == cached(node)[other.json()["config"]["model_sha256"]]["size_bytes"]


def test_evicting_by_hand(node: Node, server: FileServer) -> None:
    record = deploy(node, f"{server.url}/faces.onnx").json()
    assert node.api("GET", f"/api/workloads/model-{SHA256}").status_code == 404  # a model is no workload
    used = node.api("DELETE", f"/api/models/{SHA256}")
    assert used.status_code == 409 and record["id"] in used.json()["message"]
    node.api("DELETE", f"/api/workloads/{record['id']}")
    evicted = node.api("DELETE", f"/api/models/{SHA256}")
    assert evicted.status_code == 200 and evicted.json() == {"sha256": SHA256, "evicted": True}
    assert cached(node) == {} and model_files(node) == [] and node.resources()["allocated"]["storage"] == 0
    assert node.api("DELETE", f"/api/models/{SHA256}").status_code == 404
    assert node.api("DELETE", "/api/models/not-a-hash").status_code == 404


def test_a_cached_model_is_kept_for_the_deployment_prepared_with_it(node: Node, server: FileServer) -> None:
    """A deployment of a cached model that no workload uses yet uses it from the moment it is prepared with it,
    before its record names the model: neither a fetch that needs room nor an eviction by hand takes it while the
    deployment's model check runs. (Both did: the deployment then failed, 422 "model file ... does not exist",
    or a 500 when the file went after its check.)"""
    first = deploy(node, f"{server.url}/faces.onnx")
    assert first.status_code == 201, first.text
    node.api("DELETE", f"/api/workloads/{first.json()['id']}")
    node.supervisorctl("restart", "scheduler")  # it forgets the models that passed their check: the next is checked
    with ThreadPoolExecutor(1) as pool:
        prepared = pool.submit(node.submit, {"model_type": "yolo", "model_path": f"{server.url}/faces.onnx"},
                               {"cpu": 1}, workload_type="mlmodel", fresh_connection=True)
        check = stopped_model_check(node)
        try:
            other = deploy(node, f"{server.url}/other.onnx")
            by_hand = node.api("DELETE", f"/api/models/{SHA256}")
            assert not prepared.done() and check.status() == psutil.STATUS_STOPPED  # the control: still checking
        finally:
            check.send_signal(signal.SIGCONT)
        answer = prepared.result(timeout=120)
    assert answer.status_code == 201 and answer.json()["status"] == "running", answer.text
    user = answer.json()["id"]
    assert other.status_code == 409 and user in other.json()["message"], other.text
    assert by_hand.status_code == 409 and user in by_hand.json()["message"], by_hand.text
    assert list(cached(node)) == [SHA256] and model_files(node) == [SHA256]
    node.api("DELETE", f"/api/workloads/{user}")
    evicted = node.api("DELETE", f"/api/models/{SHA256}")  # kept no longer: its record named it, and is gone
    assert evicted.status_code == 200 and model_files(node) == [], evicted.text


@pytest.mark.parametrize("path, config, words", [
    ("/no-such-model.onnx", {}, "answered HTTP 404"),
    ("/faces.onnx", {"model_sha256": "0" * 64}, "not 0000"),
    ("/astronaut.png", {}, "not a loadable ONNX model"),
    ("unreachable", {}, "could not be fetched"),
])
def test_a_failed_fetch_names_the_artifact_and_leaves_nothing(node: Node, server: FileServer, path: str,
                                                              config: dict[str, Any], words: str) -> None:
    before = node.resources()
    url = "http://127.0.0.1:9/faces.onnx" if path == "unreachable" else f"{server.url}{path}"
    answer = deploy(node, url, **config)
    assert answer.status_code == 422 and words in answer.json()["message"], answer.text
    assert url.split("/")[-1] in answer.json()["message"]
    assert node.resources() == before and cached(node) == {} and model_files(node) == []
    assert node.api("GET", "/api/workloads").json()["count"] == 0


def test_a_model_fetched_onto_a_full_disk_is_507_and_leaves_nothing(open_dir: Path, server: FileServer) -> None:
    """What a chaos run's full data disk found: the cache's write failed (ENOSPC) while its storage ledger had
    room, and the deployment was answered 500 "internal error (OSError)". The control: with the disk's space
    back, the same deployment runs."""
    with small_disk(open_dir / "data", "32m") as data:
        node = Node({"cpu": 8, "memory": 16 * GIB, "gpu": 0, "storage": 4 * GIB}, token=TOKEN)
        node.config["storage"]["sqlite"]["data_path"] = str(data)
        with running(node):
            filler = fill(data)
            before = node.resources()
            answer = deploy(node, f"{server.url}/faces.onnx")
            assert answer.status_code == 507, answer.text
            assert answer.json()["error"] == "insufficient_storage" and "faces.onnx" in answer.json()["message"]
            assert str(data) not in answer.text
            assert node.resources() == before and cached(node) == {} and model_files(node) == []
            assert node.api("GET", "/api/workloads").json()["count"] == 0
            filler.unlink()
            assert deploy(node, f"{server.url}/faces.onnx").json()["status"] == "running"


def test_a_data_upload_is_a_model_source(node: Node) -> None:
    stored = upload_model(node)
    answer = deploy(node, f"data://{stored['data_key']}/faces.onnx")
    assert answer.status_code == 201, answer.text
    assert answer.json()["config"]["model_sha256"] == SHA256
    entry = cached(node)[SHA256]
    assert entry["kind"] == "local" and entry["users"] == [answer.json()["id"]]  # used where it lies
    assert node.resources()["allocated"]["storage"] == stored["requirements"]["storage"]  # counted once
    missing = deploy(node, f"data://{stored['data_key']}/other.onnx")
    assert missing.status_code == 422 and "has no file 'other.onnx'" in missing.json()["message"]


def test_data_in_use_is_not_deleted(node: Node) -> None:
    """Data a model service runs from is refused deletion (409, naming the service) by either path. It was
    deleted, and the service then failed at its first restart (its model file gone), while /api/models went on
    listing the model as ready. Once the service is deleted, the data goes, and the model's record with it."""
    stored = upload_model(node)
    service = deploy(node, f"data://{stored['data_key']}/faces.onnx").json()
    for path in (f"/api/data/{stored['data_key']}", f"/api/workloads/{stored['data_key']}"):
        refused = node.api("DELETE", path)
        assert refused.status_code == 409 and refused.json()["users"] == [service["id"]], refused.text
    assert node.api("GET", f"/api/data/{stored['data_key']}").status_code == 200
    assert data_file(node, stored).is_file() and SHA256 in cached(node)
    node.api("DELETE", f"/api/workloads/{service['id']}")
    assert node.api("DELETE", f"/api/data/{stored['data_key']}").json()["deleted"] is True
    assert not data_file(node, stored).exists() and cached(node) == {}
    assert node.resources()["allocated"]["storage"] == 0


def data_file(node: Node, stored: dict[str, Any]) -> Path:
    return Path(node.config["storage"]["sqlite"]["data_path"]) / stored["data_key"] / "faces.onnx"


def test_an_artifact_whose_file_is_gone_is_404(node: Node) -> None:
    """A model's record outlives its file (removed by hand from the data it lay in): it is listed ``missing``, and
    asking for its bytes is a 404 (it was a 500: the file was opened as the record named it)."""
    stored = upload_model(node)
    answer = deploy(node, f"data://{stored['data_key']}/faces.onnx")
    assert answer.status_code == 201, answer.text
    assert node.api("GET", f"/api/artifacts/{SHA256}").status_code == 200
    assert cached(node)[SHA256]["status"] == "ready"
    data_file(node, stored).unlink()
    assert cached(node)[SHA256]["status"] == "missing"  # it was listed ready
    gone = node.api("GET", f"/api/artifacts/{SHA256}")
    assert gone.status_code == 404 and gone.json()["error"] == "not_found", gone.text


def test_a_fetch_shows_its_progress_and_a_restart_settles_an_interrupted_one(node: Node, models: Path) -> None:
    with FileServer(models, chunk_delay_s=0.05) as slow:  # ~186 chunks: about 9 s
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(deploy, node, f"{slow.url}/faces.onnx")
            wait_for(lambda: any(0 < model["received_bytes"] < SIZE for model in cached_all(node)), timeout_s=30)
            fetching = cached_all(node)[0]
            assert fetching["status"] == "fetching" and fetching["size_bytes"] == SIZE and fetching["sha256"] is None
            assert node.resources()["allocated"]["storage"] == SIZE  # reserved before the first byte
            os.kill(node.program_pid("scheduler"), signal.SIGKILL)  # supervisord starts it again
            pending.result()
    wait_for(lambda: node.api("GET", "/api/models").ok and cached_all(node) == [], timeout_s=60)
    assert node.resources()["allocated"]["storage"] == 0 and model_files(node) == []

    def settled() -> bool:  # the restarted scheduler relaunches the admitted service, whose fetch then fails
        workloads = node.workloads()
        return all(workload["status"] not in ("starting", "pending") for workload in workloads) and \
            node.resources()["allocated"] == pytest.approx(held_by(workloads))
    wait_for(settled, timeout_s=30, diagnose=lambda: (node.resources(), node.api("GET", "/api/workloads").json()))


def cached_all(node: Node) -> list[dict[str, Any]]:
    return node.api("GET", "/api/models").json()["models"]


def test_artifact_links(node: Node) -> None:
    record = deploy(node, YOLO_MODEL).json()
    assert record["config"]["model_sha256"] == SHA256
    artifact = f"{node.url}/api/artifacts/{SHA256}"
    assert requests.get(artifact, timeout=10).status_code == 401  # the token, or a signed link
    whole = node.api("GET", f"/api/artifacts/{SHA256}")
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == SHA256
    part = node.api("GET", f"/api/artifacts/{SHA256}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == Path(YOLO_MODEL).read_bytes()[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{SIZE}"
    beyond = node.api("GET", f"/api/artifacts/{SHA256}", headers={"Range": f"bytes={SIZE}-"})
    assert beyond.status_code == 416
    from cnetd.core.links import signed_link
    signed = signed_link(node.url, TOKEN, SHA256)
    assert requests.get(signed, timeout=10).status_code == 200  # no token: the signature stands for it
    assert requests.get(signed.replace("signature=", "signature=0"), timeout=10).status_code == 401
    expired = signed_link(node.url, TOKEN, SHA256, now=time.time() - 7200)
    assert requests.get(expired, timeout=10).status_code == 401
    assert requests.get(signed_link(node.url, "another-token", SHA256), timeout=10).status_code == 401


def test_an_s3_source_is_fetched_signed_from_the_nodes_s3_endpoint(start_node, open_dir: Path) -> None:
    """A CNET gateway with keys stands in for S3; the node signs its GET with SigV4 (botocore's signer)."""
    bucket_dir = open_dir / "models"
    copy_of(YOLO_MODEL, bucket_dir / "yolo", "faces.onnx")
    port = free_port()
    keys = {"access_key": "AKMODELS", "secret_key": "models-secret"}
    node = start_node({"cpu": 8, "memory": 16 * GIB, "gpu": 0, "storage": 4 * GIB},
                      gateway={"allowed_roots": [str(open_dir)]},
                      models={"s3_endpoint": f"http://127.0.0.1:{port}", "s3_access_key": keys["access_key"],
                              "s3_secret_key": keys["secret_key"]})
    gateway = node.submit({"base_path": str(bucket_dir), "bucket": "models", "service_port": port, **keys},
                          {"cpu": 0.1}, workload_type="datagateway")
    assert gateway.status_code == 201, gateway.text
    assert requests.get(f"http://127.0.0.1:{port}/models/yolo/faces.onnx", timeout=10).status_code == 403  # control
    answer = deploy(node, "s3://models/yolo/faces.onnx", model_sha256=SHA256)
    assert answer.status_code == 201, answer.text
    assert cached(node)[SHA256]["source"] == "s3://models/yolo/faces.onnx"
    assert predict(answer.json()["endpoint"])["count"] >= 1
    missing = deploy(node, "s3://models/yolo/none.onnx")
    assert missing.status_code == 422 and "s3://models/yolo/none.onnx answered HTTP 404" in missing.json()["message"]
