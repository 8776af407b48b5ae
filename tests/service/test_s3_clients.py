"""Real S3 clients, unchanged, against a standalone gateway with keys over a tree of 1,500 keys (more
than one page): boto3 (v1 and v2 paginators, list_buckets, HeadBucket, GetBucketLocation, a parallel
ranged download_file), aws-cli (ls, ls --recursive, cp, sync), rclone with provider Other (every key
listed once, `rclone check` by MD5) and s3fs (a FUSE mount). The gateway's endpoint is its root."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import botocore
import pytest
from boto3.s3.transfer import TransferConfig

from gateway.app import IN_MEMORY_BYTES
from tests.support.nodes import MIB, VENV_BIN
from tests.support.services import GATEWAY_ACCESS_KEY, GATEWAY_SECRET_KEY, s3_client, signed_gateway

KEYS = 1500
EDGE_SIZES = (0, IN_MEMORY_BYTES, IN_MEMORY_BYTES + 1)  # read and sent with the headers / sendfiled


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s3-tree")
    for index in range(KEYS):
        path = root / f"many/{index // 100:02d}/file-{index:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"object {index}\n".encode())
    (root / "big.bin").write_bytes(os.urandom(20 * MIB))
    for size in EDGE_SIZES:
        (root / f"edge-{size}.bin").write_bytes(os.urandom(size))
    (root / "sub").mkdir()
    for name in ("a.txt", "b.txt"):
        (root / "sub" / name).write_bytes(name.encode() * 100)
    return root


@pytest.fixture(scope="module")
def gateway(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from signed_gateway(tree, tmp_path_factory.mktemp("gateway-logs"), "cnet")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_boto3_listings_each_key_once_and_md5_etags(gateway: str, tree: Path) -> None:
    s3 = s3_client(gateway)
    for operation in ("list_objects", "list_objects_v2"):
        keys = [item["Key"] for page in s3.get_paginator(operation).paginate(Bucket="cnet", Prefix="many/")
                for item in page.get("Contents", [])]
        assert len(keys) == KEYS and len(set(keys)) == KEYS, operation
    folders = [prefix["Prefix"] for page in s3.get_paginator("list_objects").paginate(
        Bucket="cnet", Prefix="many/", Delimiter="/", PaginationConfig={"PageSize": 4}) for prefix in
        page.get("CommonPrefixes", [])]
    assert folders == [f"many/{index:02d}/" for index in range(15)]  # v1 pages by NextMarker, each once
    assert [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]] == ["cnet"]
    s3.head_bucket(Bucket="cnet")
    assert s3.get_bucket_location(Bucket="cnet")["LocationConstraint"] is None  # us-east-1
    head = s3.head_object(Bucket="cnet", Key="sub/a.txt")
    assert head["ETag"] == f'"{md5(tree / "sub" / "a.txt")}"'
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.get_object(Bucket="cnet", Key="sub/")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"


def test_boto3_parallel_ranged_download(gateway: str, tree: Path, tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    s3_client(gateway).download_file("cnet", "big.bin", str(target), Config=TransferConfig(
        multipart_threshold=4 * MIB, multipart_chunksize=2 * MIB, max_concurrency=6))
    assert md5(target) == md5(tree / "big.bin")


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_objects_and_ranges_on_both_sides_of_the_in_memory_size_read_back_whole(gateway: str, tree: Path,
                                                                               size: int) -> None:
    s3, content = s3_client(gateway), (tree / f"edge-{size}.bin").read_bytes()
    whole = s3.get_object(Bucket="cnet", Key=f"edge-{size}.bin")
    assert whole["Body"].read() == content and whole["ContentLength"] == size
    assert whole["ETag"] == f'"{hashlib.md5(content).hexdigest()}"'
    for first, last in ((0, size - 1), (1, size - 2), (size // 2, size - 1)):
        if 0 <= first <= last:
            part = s3.get_object(Bucket="cnet", Key=f"edge-{size}.bin", Range=f"bytes={first}-{last}")
            assert part["Body"].read() == content[first:last + 1]
            assert part["ContentRange"] == f"bytes {first}-{last}/{size}"


def aws(gateway: str, *argv: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "AWS_ACCESS_KEY_ID": GATEWAY_ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": GATEWAY_SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run([str(VENV_BIN / "aws"), "--endpoint-url", gateway, "s3", *argv], env=env,
                          capture_output=True, text=True, timeout=120)


def test_aws_cli_ls_cp_and_sync(gateway: str, tree: Path, tmp_path: Path) -> None:
    top = aws(gateway, "ls", "s3://cnet/")
    assert top.returncode == 0 and "PRE many/" in top.stdout and "big.bin" in top.stdout, top.stderr
    recursive = aws(gateway, "ls", "--recursive", "s3://cnet/many/")
    assert recursive.returncode == 0 and len(recursive.stdout.splitlines()) == KEYS, recursive.stderr
    copied = aws(gateway, "cp", "s3://cnet/sub/a.txt", str(tmp_path / "a.txt"))
    assert copied.returncode == 0 and md5(tmp_path / "a.txt") == md5(tree / "sub" / "a.txt"), copied.stderr
    synced = aws(gateway, "sync", "s3://cnet/sub", str(tmp_path / "synced"))
    assert synced.returncode == 0 and sorted(p.name for p in (tmp_path / "synced").iterdir()) == ["a.txt", "b.txt"]
    again = aws(gateway, "sync", "s3://cnet/sub", str(tmp_path / "synced"))
    assert again.returncode == 0 and again.stdout == ""  # nothing to do: sizes and times agree


def rclone(gateway: str, *argv: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "RCLONE_CONFIG": "/dev/null",
           "RCLONE_CONFIG_GW_TYPE": "s3", "RCLONE_CONFIG_GW_PROVIDER": "Other", "RCLONE_CONFIG_GW_ENDPOINT": gateway,
           "RCLONE_CONFIG_GW_ACCESS_KEY_ID": GATEWAY_ACCESS_KEY,
           "RCLONE_CONFIG_GW_SECRET_ACCESS_KEY": GATEWAY_SECRET_KEY}
    return subprocess.run(["rclone", *argv], env=env, capture_output=True, text=True, timeout=120)


def test_rclone_lists_every_key_once_and_checks_by_md5(gateway: str, tree: Path) -> None:
    buckets = rclone(gateway, "lsd", "gw:")
    assert buckets.returncode == 0 and "cnet" in buckets.stdout, buckets.stderr
    listed = rclone(gateway, "lsf", "-R", "--files-only", "gw:cnet/many")
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == KEYS == len(set(listed.stdout.splitlines()))
    checked = rclone(gateway, "check", str(tree / "sub"), "gw:cnet/sub")
    assert checked.returncode == 0 and "0 differences found" in checked.stderr, checked.stderr
    assert "could not be checked" not in checked.stderr and "2 matching files" in checked.stderr


def test_s3fs_mounts_the_bucket(gateway: str, tree: Path, tmp_path: Path) -> None:
    credentials = tmp_path / "passwd"
    credentials.write_text(f"{GATEWAY_ACCESS_KEY}:{GATEWAY_SECRET_KEY}\n")
    credentials.chmod(0o600)
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["s3fs", "cnet", str(mount), "-o", f"url={gateway},use_path_request_style,passwd_file="
                    f"{credentials},ro,sigv4,endpoint=us-east-1"], check=True, timeout=60)
    try:
        assert (mount / "sub" / "a.txt").read_bytes() == (tree / "sub" / "a.txt").read_bytes()
        assert sorted(path.name for path in (mount / "sub").iterdir()) == ["a.txt", "b.txt"]
    finally:
        subprocess.run(["fusermount", "-u", str(mount)], timeout=30) if shutil.which("fusermount") else \
            subprocess.run(["umount", str(mount)], timeout=30)
