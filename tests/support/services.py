"""Test helper: runs a standalone service (cnet-inference-yolo / -opencv, cnet-gateway-data) on a free port."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

from tests.support.nodes import VENV_BIN, free_port, wait_until_answers


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
