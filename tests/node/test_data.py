"""Data workloads and the S3 gateway on a real node: curl uploads, directories, accounting, boto3."""
from __future__ import annotations

import collections
import hashlib
import itertools
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from typing import Iterator

import boto3
import botocore
import pytest
import requests

from cnetd.core.lifecycle import mark_deleting
from ledger.records import Resources, WorkloadRecord
from ledger.store import Ledger
from tests.support.disks import fill, small_disk
from tests.support.nodes import VENV_BIN, Node, running, wait_for, wait_until_answers
from tests.support.services import standalone_service

STORAGE = 20_000_000


NODE = {"resources": {"cpu": 4, "memory": 2**32, "gpu": 0, "storage": STORAGE}}


def data_root(node: Node) -> Path:
    return Path(node.config["storage"]["sqlite"]["data_path"])


def curl(*args: str) -> dict:
    import orjson
    return orjson.loads(subprocess.run(["curl", "-s", *args], capture_output=True, timeout=60, check=True).stdout)


def upload_tree(node: Node, files: dict[str, bytes]) -> dict:
    parts = [("file", (name, content, "application/octet-stream")) for name, content in files.items()]
    answer = node.api("POST", "/api/workloads", data={"type": "data", "name": "tree"}, files=parts)
    assert answer.status_code == 201, answer.text
    return answer.json()


def nothing_left_behind(node: Node, storage_before: int, data_before: int) -> bool:
    staging = [entry for entry in os.listdir(data_root(node)) if entry.startswith(".uploading-")]
    return (not staging and node.resources()["allocated"]["storage"] == storage_before
            and node.api("GET", "/api/data").json()["count"] == data_before
            and node.api("GET", "/api/workloads", params={"type": "data"}).json()["count"] == data_before)


def test_curl_single_file_upload(node: Node, tmp_path) -> None:
    source = tmp_path / "gw_test.txt"
    source.write_bytes(b"hello, gateway\n" * 100)
    before = node.resources()["allocated"]["storage"]
    record = curl("-X", "POST", f"{node.url}/api/workloads", "-F", "type=data", "-F", "name=test-file",
                  "-F", f"file=@{source}")
    assert record["status"] == "stored" and record["name"] == "test-file" and record["data_key"] == record["id"]
    assert record["config"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert record["config"]["size_bytes"] == 1500 and record["files"][0]["rel_path"] == "gw_test.txt"
    stored = Path(record["config"]["path"]) / "gw_test.txt"
    assert stored.read_bytes() == source.read_bytes() and stored.is_relative_to(data_root(node))
    assert node.resources()["allocated"]["storage"] == before + 1500
    assert node.api("GET", f"/api/data/{record['data_key']}").json()["files"][0]["size_bytes"] == 1500
    listed = node.api("GET", "/api/workloads", params={"type": "data"}).json()["workloads"]
    assert [item["status"] for item in listed if item["id"] == record["id"]] == ["stored"]
    assert node.api("GET", f"/api/workloads/{record['id']}").json()["config"]["size_bytes"] == 1500
    assert node.api("DELETE", f"/api/data/{record['data_key']}").json()["deleted"] is True
    assert node.resources()["allocated"]["storage"] == before and not stored.exists()
    assert node.api("GET", f"/api/data/{record['data_key']}").status_code == 404


def test_a_data_delete_cut_short_by_the_schedulers_end_is_finished_when_it_starts(node: Node) -> None:
    """A data delete records itself (``deleting``), then removes the catalogue row, the files and the record.
    A scheduler that ended in between finishes it when it starts: the storage is not held for good by data that
    can no longer be found (control: before, its start tried to delete data as a program, and failed)."""
    record = node.api("POST", "/api/workloads", files=[("file", ("doomed.txt", b"x" * 1000))]).json()
    before = node.resources()["allocated"]["storage"]
    node.supervisorctl("stop", "scheduler")
    ledger = Ledger(str(node.runtime_dir / "ledger"))  # as the scheduler left it: the delete recorded, not done
    try:
        ledger.update(record["id"], mark_deleting)
    finally:
        ledger.close()
    node.supervisorctl("start", "scheduler")
    wait_for(lambda: node.api("GET", f"/api/workloads/{record['id']}").status_code == 404, timeout_s=30)
    assert node.resources()["allocated"]["storage"] == before - 1000
    assert node.api("GET", f"/api/data/{record['id']}").status_code == 404
    assert not (data_root(node) / record["id"]).exists()


def test_concurrent_uploads_are_byte_identical_with_their_sha256_and_md5(node: Node) -> None:
    """Several MiB each (many reads and hashing chunks, the SHA-256 a chunk behind on its own thread), four at
    once: every file as sent, its SHA-256 in the record, and its MD5, computed once the upload is recorded,
    where the gateway reads its ETag."""
    blobs = [os.urandom(4 * 2**20 + 12_345 * index) for index in range(4)]
    records: list[dict] = [{}] * len(blobs)

    def upload(index: int) -> None:
        records[index] = requests.post(f"{node.url}/api/workloads", data={"type": "data"}, timeout=120,
                                       files=[("file", (f"blob{index}.bin", blobs[index]))]).json()
    threads = [threading.Thread(target=upload, args=(index,)) for index in range(len(blobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        for blob, record in zip(blobs, records):
            assert record.get("status") == "stored", record
            stored = Path(record["config"]["path"]) / record["files"][0]["rel_path"]
            assert stored.read_bytes() == blob
            assert record["config"]["sha256"] == hashlib.sha256(blob).hexdigest()
            wait_for(lambda: "user.cnet.md5" in os.listxattr(stored), timeout_s=30)
            assert os.getxattr(stored, "user.cnet.md5").decode() == hashlib.md5(blob).hexdigest()
            stat = stored.stat()  # and the content it is the MD5 of, so that the gateway takes it
            assert os.getxattr(stored, "user.cnet.md5_of").decode() == f"{stat.st_size} {stat.st_mtime_ns}"
    finally:
        for record in records:
            if record.get("id"):
                node.api("DELETE", f"/api/workloads/{record['id']}")


def test_directory_round_trip(node: Node) -> None:
    tree = {f"photos/{folder}/img{index}.bin": os.urandom(1000 + index)
            for folder in ("a", "b/c") for index in range(40)}  # 80 parts: past Falcon's default of 64
    record = upload_tree(node, tree)
    assert record["config"]["kind"] == "directory" and record["config"]["files"] == 80
    root = Path(record["config"]["path"])
    stored = {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}
    assert stored == tree
    assert node.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200  # through its workload too
    assert not root.exists()


def test_stored_data_is_listed_a_page_at_a_time(node: Node) -> None:
    """``GET /api/data`` pages as the workload listing does: ``limit``, ``after`` = ``next``, ``reverse``; the walk
    goes on past an upload deleted under it."""
    def walk(limit: int, **params: object) -> list[str]:
        keys: list[str] = []
        while True:
            answer = node.api("GET", "/api/data", params={"limit": limit, **params})
            assert answer.status_code == 200, answer.text
            page = answer.json()
            assert page["count"] == len(page["data"]) <= limit and (page["next"] is None or page["count"] == limit)
            keys += [item["data_key"] for item in page["data"]]
            if page["next"] is None:
                return keys
            params["after"] = page["next"]

    ours = [node.api("POST", "/api/workloads", data={"type": "data", "name": f"paged-{number}"},
                     files=[("file", (f"part-{number}.bin", b"x" * 10, "application/octet-stream"))]).json()
            for number in range(4)]
    try:
        whole = [item["data_key"] for item in node.api("GET", "/api/data").json()["data"]]
        assert {record["id"] for record in ours} <= set(whole)
        assert walk(1) == walk(3) == walk(1000) == whole and walk(2, reverse="true") == whole[::-1]
        first = node.api("GET", "/api/data", params={"limit": whole.index(ours[1]["id"]) + 1}).json()
        node.api("DELETE", f"/api/workloads/{ours[1]['id']}")  # the one its next names
        after = whole.index(ours[1]["id"])
        assert walk(2, after=first["next"]) == whole[after + 1:]
        assert walk(2, after=first["next"], reverse="true") == whole[:after][::-1]
        for wrong in ({"limit": 0}, {"limit": 1001}, {"after": "x"}, {"reverse": "maybe"}):
            answer = node.api("GET", "/api/data", params=wrong)
            assert answer.status_code == 400 and answer.json()["error"] == "invalid_request", (wrong, answer.text)
    finally:
        for record in ours:
            node.api("DELETE", f"/api/workloads/{record['id']}")


def test_upload_refused_when_storage_is_full(node: Node, tmp_path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (STORAGE + 1))
    before = node.resources()["allocated"]["storage"]
    data_before = node.api("GET", "/api/data").json()["count"]
    answer = curl("-X", "POST", f"{node.url}/api/workloads", "-F", "type=data", "-F", f"file=@{big}")
    assert answer["error"] == "insufficient_resources" and "storage" in answer["message"]
    assert nothing_left_behind(node, before, data_before)


def test_an_upload_onto_a_full_disk_is_507_and_leaves_nothing(open_dir: Path) -> None:
    """What a chaos run's full disk found (it answered 400 invalid_request, blaming the client): the storage
    ledger had room, but other files filled the disk while the upload was written. The control: the same
    upload with the disk's space back is stored."""
    with small_disk(open_dir / "data", "4m") as data:
        node = Node(**NODE)
        node.config["storage"]["sqlite"]["data_path"] = str(data)
        with running(node):
            filler = fill(data)
            answer = node.api("POST", "/api/workloads", data={"type": "data"}, files=[("file", ("a.bin", b"\1" * 2**20))])
            assert answer.status_code == 507, answer.text
            assert answer.json()["error"] == "insufficient_storage" and str(data) not in answer.text
            assert nothing_left_behind(node, 0, 0)
            filler.unlink()
            assert upload_tree(node, {"a.bin": b"\1" * 2**20})["status"] == "stored"


@pytest.mark.parametrize("filename", ["../escape.txt", "/etc/cron.d/x", "a/../../b.txt", "dir\\file.txt", "a/./b"])
def test_traversal_on_upload_is_refused(node: Node, filename: str) -> None:
    before = node.resources()["allocated"]["storage"]
    data_before = node.api("GET", "/api/data").json()["count"]
    answer = node.api("POST", "/api/workloads", data={"type": "data"}, files=[("file", (filename, b"x"))])
    assert answer.status_code == 400 and "file name refused" in answer.json()["message"]
    assert nothing_left_behind(node, before, data_before)


def half_sent_upload(node: Node) -> socket.socket:
    """A connection that has sent a fifth of a 5,000,000-byte upload, and sends no more."""
    head = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n")
    client = socket.create_connection(("127.0.0.1", node.port))
    client.sendall(b"POST /api/workloads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
                   b"Content-Length: 5000000\r\n\r\n" + head + b"\1" * 1_000_000)
    return client


def test_interrupted_upload_leaves_nothing(node: Node) -> None:
    before = node.resources()["allocated"]["storage"]
    data_before = node.api("GET", "/api/data").json()["count"]
    with half_sent_upload(node):
        wait_for(lambda: node.resources()["allocated"]["storage"] == before + 5_000_000)  # reserved meanwhile
    wait_for(lambda: nothing_left_behind(node, before, data_before), timeout_s=30)


def test_an_upload_whose_api_is_killed_mid_way_leaves_nothing(node: Node) -> None:
    """What a chaos round found: supervisord killed during an upload took the API with it, and the upload's
    reservation (its storage) and staging directory stayed for good. The scheduler now undoes an upload whose
    receiving process is gone."""
    before = node.resources()["allocated"]["storage"]
    data_before = node.api("GET", "/api/data").json()["count"]
    with half_sent_upload(node):
        wait_for(lambda: any(entry.startswith(".uploading-") for entry in os.listdir(data_root(node))))
        os.killpg(os.getpgid(node.program_pid("api")), signal.SIGKILL)  # its workers with it; supervisord restarts it
    time.sleep(1)  # supervisord sees it gone and starts it again
    wait_until_answers(f"{node.url}/api/health")
    wait_for(lambda: nothing_left_behind(node, before, data_before), timeout_s=30,
             diagnose=lambda: (node.resources()["allocated"], os.listdir(data_root(node))))


def test_gateway_serves_uploads_to_boto3(node: Node, tmp_path) -> None:
    files = {f"keys/k{index:05d}.txt": f"object {index}\n".encode() for index in range(2500)}
    files["keys/nested/deep.bin"] = os.urandom(300_000)
    record = upload_tree(node, files)
    (data_root(node) / "outside-link").symlink_to("/etc")
    gateway = node.submit({"base_path": str(data_root(node)), "bucket": "cnet"}, {"cpu": 0.5},
                          workload_type="datagateway").json()
    assert gateway["status"] == "running", gateway
    s3 = boto3.client("s3", endpoint_url=f"{gateway['endpoint']}/s3", aws_access_key_id="cnet",
                      aws_secret_access_key="cnet", region_name="us-east-1",
                      config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    prefix = f"{record['data_key']}/keys/"
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket="cnet", Prefix=prefix,
                                                                 PaginationConfig={"PageSize": 1000}))
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    assert len(pages) == 3 and len(keys) == len(set(keys)) == 2501
    assert sorted(keys) == keys and set(keys) == {record["data_key"] + "/" + name for name in files}

    listing = s3.list_objects_v2(Bucket="cnet", Prefix=prefix, Delimiter="/", MaxKeys=5)
    assert [item["Key"] for item in listing["Contents"]] == [f"{prefix}k0000{i}.txt" for i in range(5)]
    assert listing["IsTruncated"]
    grouped = list(s3.get_paginator("list_objects_v2").paginate(Bucket="cnet", Prefix=prefix, Delimiter="/"))
    assert [common["Prefix"] for page in grouped for common in page.get("CommonPrefixes", [])] == [f"{prefix}nested/"]
    assert sum(page["KeyCount"] for page in grouped) == 2501  # 2,500 keys and one common prefix

    deep = f"{prefix}nested/deep.bin"
    head = s3.head_object(Bucket="cnet", Key=deep)
    assert head["ContentLength"] == 300_000 and head["ETag"] and head["LastModified"]
    ranged = s3.get_object(Bucket="cnet", Key=deep, Range="bytes=1000-1999")
    assert ranged["ContentRange"] == "bytes 1000-1999/300000"
    assert ranged["Body"].read() == files["keys/nested/deep.bin"][1000:2000]
    s3.download_file("cnet", deep, str(tmp_path / "deep.bin"))
    assert (tmp_path / "deep.bin").read_bytes() == files["keys/nested/deep.bin"]

    for call, code in ((lambda: s3.get_object(Bucket="cnet", Key=f"{prefix}missing"), "NoSuchKey"),
                       (lambda: s3.get_object(Bucket="other", Key=deep), "NoSuchBucket"),
                       (lambda: s3.get_object(Bucket="cnet", Key="outside-link/passwd"), "NoSuchKey"),  # links are no objects
                       (lambda: s3.get_object(Bucket="cnet", Key="../etc/passwd"), "InvalidArgument"),
                       (lambda: s3.get_object(Bucket="cnet", Key=deep, Range="bytes=400000-"), "InvalidRange"),
                       (lambda: s3.put_object(Bucket="cnet", Key="new", Body=b"x"), "MethodNotAllowed"),
                       (lambda: s3.delete_object(Bucket="cnet", Key=deep), "MethodNotAllowed")):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == code
    assert "outside-link" not in str(s3.list_objects_v2(Bucket="cnet").get("CommonPrefixes"))
    node.api("DELETE", f"/api/workloads/{gateway['id']}")
    (data_root(node) / "outside-link").unlink()
    node.api("DELETE", f"/api/data/{record['data_key']}")


def test_upload_without_length_is_411_and_leaves_nothing(node: Node) -> None:
    before = node.resources()["allocated"]["storage"]
    data_before = node.api("GET", "/api/data").json()["count"]
    body = iter([b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.bin\"\r\n\r\nabc\r\n--XyZ--\r\n"])
    answer = node.api("POST", "/api/workloads", data=body,
                      headers={"Content-Type": "multipart/form-data; boundary=XyZ"})  # chunked: no length
    assert answer.status_code == 411 and answer.json()["error"] == "length_required"
    assert nothing_left_behind(node, before, data_before)


def test_data_is_deleted_not_stopped(node: Node) -> None:
    record = upload_tree(node, {"keep/me.txt": b"still here"})
    allocated = node.resources()["allocated"]["storage"]
    answer = node.api("POST", f"/api/workloads/{record['id']}/stop")
    assert answer.status_code == 409 and answer.json()["error"] == "data_not_stoppable", answer.text
    assert node.resources()["allocated"]["storage"] == allocated  # its bytes are still on disk
    assert node.api("GET", f"/api/data/{record['data_key']}").status_code == 200
    assert node.workload(record["id"])["status"] == "stored"
    assert node.api("DELETE", f"/api/workloads/{record['id']}").status_code == 200
    assert node.resources()["allocated"]["storage"] == allocated - record["requirements"]["storage"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("objects")
    (base / "hello.txt").write_bytes(b"hello world")
    yield from standalone_service(tmp_path_factory.mktemp("gateway-logs"), "cnet-gateway-data", "--base-path", str(base),
                           "--bucket", "cnet")


@pytest.mark.parametrize("query", ["max-keys=\u00b2", "max-keys=" + "9" * 3000, "max-keys=-1", "max-keys=\u0661"])
def test_gateway_odd_numbers_are_400_not_500(gateway: str, query: str) -> None:
    answer = requests.get(f"{gateway}/s3/cnet?list-type=2&{query}", timeout=10)
    assert answer.status_code == 400 and b"<Code>InvalidArgument</Code>" in answer.content, answer.text[:300]
    assert requests.get(f"{gateway}/s3/cnet?list-type=2&max-keys=5", timeout=10).status_code == 200  # control


@pytest.mark.parametrize("header", ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=\u00b2-"])
def test_gateway_odd_ranges_are_not_500(gateway: str, header: str) -> None:
    answer = requests.get(f"{gateway}/s3/cnet/hello.txt", headers={"Range": header}, timeout=10)
    assert answer.status_code == 200 and answer.content == b"hello world"  # an unreadable Range is ignored
    ranged = requests.get(f"{gateway}/s3/cnet/hello.txt", headers={"Range": "bytes=0-4"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == b"hello"  # control


def test_upload_errors_name_no_server_paths(node: Node) -> None:
    files = [("file", ("clash", b"a file", "application/octet-stream")),
             ("file", ("clash/inside", b"under a file", "application/octet-stream"))]
    answer = node.api("POST", "/api/workloads", data={"type": "data"}, files=files)
    assert answer.status_code == 422, answer.text
    message = answer.json()["message"]
    assert message == "the upload names 'clash/inside' twice, or as both a file and a directory", message  # says what
    assert str(data_root(node)) not in message and "/tmp" not in message, message


def test_swapping_a_directory_for_a_link_never_escapes_the_gateway(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow").write_bytes(b"SECRET")
    base = tmp_path / "base"
    (base / "d").mkdir(parents=True)
    (base / "d" / "shadow").write_bytes(b"harmless")
    stop = threading.Event()

    def swap() -> None:  # d is a directory, then a link to outside, then the directory again …
        for cycle in itertools.count():
            if stop.is_set():
                return
            os.rename(base / "d", base / "d.real")
            os.symlink(outside, base / "d")
            os.unlink(base / "d")
            os.rename(base / "d.real", base / "d")
            if cycle % 64 == 0:  # a directory for a moment, now and then: the control finds it
                time.sleep(0.001)
    service = standalone_service(tmp_path, "cnet-gateway-data", "--base-path", str(base), "--bucket", "cnet")
    url = next(service)
    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        seen = collections.Counter()
        with requests.Session() as session:
            for _ in range(1500):
                answer = session.get(f"{url}/s3/cnet/d/shadow", timeout=10)
                seen[(answer.status_code, answer.content if answer.status_code == 200 else b"")] += 1
    finally:
        stop.set()
        swapper.join()
        service.close()
    assert not any(content == b"SECRET" for _, content in seen), seen
    assert seen[(200, b"harmless")] > 0, seen  # control: the real file was served meanwhile


@pytest.mark.parametrize("base_path", ["/etc", "/", "DATA/../.."])
def test_a_gateway_serves_only_from_the_data_path(node: Node, base_path: str) -> None:
    base_path = base_path.replace("DATA", str(data_root(node)))
    before = node.resources()
    answer = node.submit({"base_path": base_path, "bucket": "cnet"}, {"cpu": 0.1}, workload_type="datagateway")
    assert answer.status_code == 422 and "gateway.allowed_roots" in answer.json()["message"], answer.text
    assert node.resources() == before
    inside = data_root(node) / "served"  # control: below the data path it runs
    inside.mkdir(exist_ok=True)
    served = node.submit({"base_path": str(inside), "bucket": "cnet"}, {"cpu": 0.1}, workload_type="datagateway")
    assert served.status_code == 201, served.text
    node.api("DELETE", f"/api/workloads/{served.json()['id']}")


def test_gateway_allowed_roots_widen_where_it_may_serve(open_dir: Path) -> None:
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    with running(Node(gateway={"allowed_roots": [str(open_dir)]})) as node:
        answer = node.submit({"base_path": str(open_dir), "bucket": "cnet"}, {"cpu": 0.1}, workload_type="datagateway")
        assert answer.status_code == 201, answer.text
        node.api("DELETE", f"/api/workloads/{answer.json()['id']}")
        # The gateway runs as nobody: a root the node may serve, but nobody cannot read, is refused up front.
        refused = node.submit({"base_path": str(private), "bucket": "cnet"}, {"cpu": 0.1}, workload_type="datagateway")
        assert refused.status_code == 422 and "not readable by nobody" in refused.json()["message"], refused.text


def signed_client(url: str, access_key: str, secret_key: str, **config) -> "botocore.client.BaseClient":
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                        region_name="us-east-1", config=botocore.config.Config(s3={"addressing_style": "path"},
                                                                               **config))


def test_a_gateway_with_keys_checks_every_signature(node: Node) -> None:
    record = upload_tree(node, {"signed/hello.txt": b"hello"})
    answer = node.submit({"base_path": record["config"]["path"], "bucket": "cnet", "access_key": "AKCNET",
                          "secret_key": "s3cret-key"}, {"cpu": 0.1}, workload_type="datagateway")
    assert answer.status_code == 201, answer.text
    gateway = answer.json()
    assert gateway["config"]["secret_key"] == "********" and "s3cret-key" not in node.api("GET", "/api/workloads").text
    s3_url = f"{gateway['endpoint']}/s3"
    try:
        key = "signed/hello.txt"
        good = signed_client(s3_url, "AKCNET", "s3cret-key")
        assert good.get_object(Bucket="cnet", Key=key)["Body"].read() == b"hello"  # control
        assert [item["Key"] for item in good.list_objects_v2(Bucket="cnet")["Contents"]] == [key]
        for client, code in ((signed_client(s3_url, "AKCNET", "wrong"), "SignatureDoesNotMatch"),
                             (signed_client(s3_url, "AKOTHER", "s3cret-key"), "InvalidAccessKeyId"),
                             (signed_client(s3_url, "x", "y", signature_version=botocore.UNSIGNED), "AccessDenied")):
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                client.get_object(Bucket="cnet", Key=key)
            assert refused.value.response["Error"]["Code"] == code
        for signature_version in ("s3v4", None):  # boto3's default presigned form is V2
            presigning = signed_client(s3_url, "AKCNET", "s3cret-key",
                                       **({"signature_version": signature_version} if signature_version else {}))
            url = presigning.generate_presigned_url("get_object", Params={"Bucket": "cnet", "Key": key}, ExpiresIn=2)
            assert requests.get(url, timeout=10).content == b"hello"
            assert requests.get(url.replace("hello", "jello"), timeout=10).status_code == 403  # tampered
            wait_for(lambda: requests.get(url, timeout=10).status_code == 403, timeout_s=10, interval_s=0.5)  # expired
        assert requests.get(f"{s3_url}/cnet/{key}", timeout=10).status_code == 403  # plain, unsigned
        health = requests.get(f"{gateway['endpoint']}/health", timeout=10)  # open to the node's checks
        assert health.ok and record["config"]["path"] not in health.text  # but it names no server path
    finally:
        node.api("DELETE", f"/api/workloads/{gateway['id']}")
        node.api("DELETE", f"/api/workloads/{record['id']}")


def aws(config: Path, s3_url: str, secret_key: str, *argv: str) -> subprocess.CompletedProcess:
    """The real aws-cli (v1, on the same botocore signers as boto3) against the gateway."""
    env = {"PATH": os.environ["PATH"], "HOME": str(config.parent), "AWS_CONFIG_FILE": str(config),
           "AWS_ACCESS_KEY_ID": "AKCNET", "AWS_SECRET_ACCESS_KEY": secret_key}
    return subprocess.run([str(VENV_BIN / "aws"), "--endpoint-url", s3_url, *argv], env=env, capture_output=True,
                          text=True, timeout=60)


def test_aws_cli_with_the_right_keys_works_and_with_wrong_ones_is_refused(node: Node, tmp_path: Path) -> None:
    record = upload_tree(node, {"cli/hello.txt": b"hello"})
    gateway = node.submit({"base_path": record["config"]["path"], "bucket": "cnet", "access_key": "AKCNET",
                           "secret_key": "s3cret-key"}, {"cpu": 0.1}, workload_type="datagateway").json()
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    s3_url = f"{gateway['endpoint']}/s3"
    try:
        listed = aws(config, s3_url, "s3cret-key", "s3", "ls", "s3://cnet/cli/")
        assert listed.returncode == 0 and "hello.txt" in listed.stdout, listed.stderr  # control
        copied = aws(config, s3_url, "s3cret-key", "s3", "cp", "s3://cnet/cli/hello.txt", "-")
        assert copied.returncode == 0 and copied.stdout == "hello", copied.stderr
        refused = aws(config, s3_url, "wrong", "s3", "cp", "s3://cnet/cli/hello.txt", "-")
        assert refused.returncode != 0 and "403" in refused.stderr, refused.stderr
        presigned = aws(config, s3_url, "s3cret-key", "s3", "presign", "s3://cnet/cli/hello.txt", "--expires-in", "2")
        url = presigned.stdout.strip()
        assert requests.get(url, timeout=10).content == b"hello", url
        wait_for(lambda: requests.get(url, timeout=10).status_code == 403, timeout_s=10, interval_s=0.5)  # expired
    finally:
        node.api("DELETE", f"/api/workloads/{gateway['id']}")
        node.api("DELETE", f"/api/workloads/{record['id']}")


def test_a_gateway_off_loopback_needs_keys(node: Node) -> None:
    inside = data_root(node) / "served"
    inside.mkdir(exist_ok=True)
    answer = node.submit({"base_path": str(inside), "service_host": "0.0.0.0"}, {"cpu": 0.1}, workload_type="datagateway")
    assert answer.status_code == 422 and "access_key" in answer.json()["message"], answer.text


def test_a_pointer_still_settling_hides_its_secret_too(node: Node) -> None:
    ledger = Ledger(str(node.runtime_dir / "ledger"))  # as a delegation whose outcome is not known left it
    pointer = WorkloadRecord(id="settling-gateway", type="datagateway", name="g", requirements=Resources(cpu=0.1),
                             config={"base_path": "/x", "bucket": "cnet", "access_key": "AK", "secret_key": "hush"},
                             status="unknown", delegated_to="elsewhere", remote_api="http://127.0.0.1:9",
                             delegation_attempt="a1")
    ledger.record_holding_nothing(pointer)
    try:
        shown = node.workload(pointer.id)
        assert shown["status"] == "unknown" and shown["config"]["secret_key"] == "********", shown
        assert "hush" not in node.api("GET", "/api/workloads").text
        assert node.api("DELETE", f"/api/workloads/{pointer.id}").status_code == 409  # still settling
    finally:
        ledger.remove(pointer.id)
        ledger.close()
