"""A model service never uses more cores than its cpu: under 4 concurrent clients a service of one core
keeps about one busy (its process tree's CPU seconds over the wall time); the control, a service of two,
is seen to use more than one, so the measure can tell."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.assets import ASTRONAUT, YOLO_MODEL
from tests.support.services import standalone_service

IMAGE = Path(ASTRONAUT).read_bytes()
LOAD_S = 3.0


def cores_busy(url: str, clients: int = 4) -> float:
    pid = next(connection.pid for connection in psutil.net_connections("tcp")
               if connection.status == psutil.CONN_LISTEN and connection.laddr.port == int(url.rsplit(":", 1)[1]))
    root = psutil.Process(pid)
    while root.parent() is not None and "inference" in " ".join(root.parent().cmdline()):
        root = root.parent()  # the gunicorn master, above the worker that listens

    def cpu_s() -> float:
        return sum(sum(process.cpu_times()[:2]) for process in [root, *root.children(recursive=True)])
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            assert session.post(f"{url}/predict", data=IMAGE, headers={"Content-Type": "image/png"},
                                timeout=60).status_code == 200
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # past the first requests
    before, started = cpu_s(), time.monotonic()
    time.sleep(LOAD_S)
    used = (cpu_s() - before) / (time.monotonic() - started)
    stop.set()
    for thread in threads:
        thread.join()
    return used


@pytest.mark.skipif(psutil.cpu_count() < 2, reason="the control needs two cores")
def test_a_service_of_one_core_keeps_to_one(tmp_path: Path) -> None:
    for url in standalone_service(tmp_path, "cnet-inference-yolo", "--model", YOLO_MODEL, "--threads", "1"):
        assert cores_busy(url) < 1.2
    for url in standalone_service(tmp_path, "cnet-inference-yolo", "--model", YOLO_MODEL, "--threads", "2"):
        assert cores_busy(url) > 1.3  # control
