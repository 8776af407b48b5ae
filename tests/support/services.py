"""Test helper: runs a standalone service (cnet-inference-yolo / -opencv, cnet-gateway-data) on a free port,
and asks a model service about the test image."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import requests

from tests.support.assets import ASTRONAUT
from tests.support.nodes import VENV_BIN, free_port, wait_until_answers


def predict(endpoint: str) -> dict:
    """A model service's answer for the astronaut (one face), sent as a raw PNG body."""
    with open(ASTRONAUT, "rb") as image:
        return requests.post(f"{endpoint}/predict", data=image.read(), headers={"Content-Type": "image/png"},
                             timeout=30).json()


def standalone_service(log_dir: Path, *argv: str) -> Iterator[str]:
    """Start ``argv`` (a console script and its options) with --port and --log-dir; yield its URL; stop it."""
    port = free_port()
    process = subprocess.Popen([str(VENV_BIN / argv[0]), *argv[1:], "--port", str(port), "--log-dir", str(log_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/health", process=process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
