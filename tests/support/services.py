"""Test helper: runs a standalone service (cnet-inference-yolo / -opencv, cnet-gateway-data) on a free port,
and asks a model service about the test image."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import boto3
import botocore.client
import requests

from gateway import SECRET_KEY_ENV
from tests.support.assets import ASTRONAUT
from tests.support.nodes import VENV_BIN, free_port, wait_until_answers


def predict(endpoint: str) -> dict:
    """A model service's answer for the astronaut (one face), sent as a raw PNG body."""
    with open(ASTRONAUT, "rb") as image:
        return requests.post(f"{endpoint}/predict", data=image.read(), headers={"Content-Type": "image/png"},
                             timeout=30).json()


GATEWAY_ACCESS_KEY, GATEWAY_SECRET_KEY = "AKCNETCLIENTS", "clients-secret-key"


def standalone_service(log_dir: Path, *argv: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``argv`` (a console script and its options) with --port and --log-dir, and ``env`` added to this
    process's environment; yield its URL; stop it."""
    port = free_port()
    process = subprocess.Popen([str(VENV_BIN / argv[0]), *argv[1:], "--port", str(port), "--log-dir", str(log_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/health", process=process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def signed_gateway(base_path: Path, log_dir: Path, bucket: str) -> Iterator[str]:
    """A standalone gateway over ``base_path`` that needs requests signed with the test keys (its secret in its
    environment, as a node gives it, never on its command line); yields its URL, the S3 endpoint."""
    yield from standalone_service(log_dir, "cnet-gateway-data", "--base-path", str(base_path), "--bucket", bucket,
                                  "--access-key", GATEWAY_ACCESS_KEY, env={SECRET_KEY_ENV: GATEWAY_SECRET_KEY})


def s3_client(url: str, retries: int = 4) -> botocore.client.BaseClient:
    """boto3 with the test keys, path-style, against a gateway; ``retries``: its attempts in all (boto3 retries
    a 5xx by default, which would hide one)."""
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=GATEWAY_ACCESS_KEY,
                        aws_secret_access_key=GATEWAY_SECRET_KEY, region_name="us-east-1",
                        config=botocore.config.Config(s3={"addressing_style": "path"},
                                                      retries={"total_max_attempts": retries}))
