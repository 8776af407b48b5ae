"""Models across two real test hosts: artifact transfer throughput, and deploy → healthy, cold and warm.

    sudo .venv/bin/python bench/model_transfer.py [--rounds 5]

An origin (0.5 cpu) and a child (4 cpu) on their own hosts; the 12 MB YOLO model lies in a directory
only the origin sees (the child's host has an empty tmpfs over it).

- transfer: the child's host downloads the model from the origin's host, --rounds times each, with the
  same client: from a plain ``python -m http.server`` (the baseline) and from the origin's signed
  ``/api/artifacts/{sha256}`` link (what a child's fetch uses). Median MiB/s and their ratio.
- deploy: time from the POST to the origin to its 201 (the service healthy on the child): cold (the child
  evicted the model first, so it fetches it), warm (cached), and local (on the origin from its own file,
  the baseline). Medians and ratios. And the same for a plain process, local and delegated: what the
  delegation hop costs by itself.

Prints JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.assets import YOLO_MODEL  # noqa: E402
from tests.support.file_server import copy_of  # noqa: E402
from tests.support.hosts import Host, make_hosts  # noqa: E402
from tests.support.nodes import GIB, VENV_BIN, Node, link, running, wait_for  # noqa: E402

TOKEN = "bench-models"
HTTP_PORT = 8090
# Run on the child's host: download a URL once, print its bytes and seconds (the client's start not counted).
DOWNLOAD = """
import sys, time, requests
started = time.perf_counter()
size = sum(len(chunk) for chunk in requests.get(sys.argv[1], stream=True, timeout=60).iter_content(1 << 20))
print(size, time.perf_counter() - started)
"""


def download_mib_s(host: Host, url: str) -> float:
    out = subprocess.run([*host.launcher(), str(VENV_BIN / "python"), "-c", DOWNLOAD, url], check=True,
                         capture_output=True, text=True, timeout=120).stdout.split()
    return int(out[0]) / float(out[1]) / 2**20


def timed_deploy(node: Node, cpu: float, model_path: str | None) -> tuple[float, dict]:
    """Seconds from the POST to its 201: a model service (a process, with no ``model_path``)."""
    started = time.perf_counter()
    answer = node.submit({"model_type": "yolo", "model_path": model_path}, {"cpu": cpu}, workload_type="mlmodel") \
        if model_path else node.submit({"command": "sleep", "args": ["60"]}, {"cpu": cpu})
    elapsed = time.perf_counter() - started
    if answer.status_code != 201:
        raise SystemExit(f"deploy failed: {answer.text}")
    return elapsed, answer.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cnet-bench-models-"))
    folder.chmod(0o755)
    model = str(copy_of(YOLO_MODEL, folder, "faces.onnx"))
    sha256 = hashlib.sha256(Path(model).read_bytes()).hexdigest()
    try:
        with make_hosts(2) as hosts:
            origin_host, child_host = hosts[0], hosts[1].hiding(str(folder))
            origin = link(Node({"cpu": 0.5, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, token=TOKEN,
                               host=origin_host), heartbeat_period_s=1.0)
            child = link(Node({"cpu": 4, "memory": 8 * GIB, "gpu": 0, "storage": GIB}, token=TOKEN,
                              host=child_host), parent=origin, heartbeat_period_s=1.0)
            plain = subprocess.Popen([*origin_host.launcher(), sys.executable, "-m", "http.server", str(HTTP_PORT),
                                      "--bind", origin_host.address, "-d", str(folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                with running(origin, child):
                    wait_for(lambda: any(c["status"] == "online" for c in origin.api("GET", "/api/nodes").json()
                                         ["children"]), timeout_s=30)
                    time.sleep(3)  # a heartbeat or two: the child's free cpu is known to the origin
                    print(orjson.dumps(run(args.rounds, origin, child, child_host, model, sha256),
                                       option=orjson.OPT_INDENT_2).decode())
            finally:
                plain.terminate()
                plain.wait(10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(rounds: int, origin: Node, child: Node, child_host: Host, model: str, sha256: str) -> dict:
    local_s, process_local_s, process_remote_s = [], [], []
    for _ in range(rounds):
        for cpu, path, times in ((0.4, model, local_s), (0.4, None, process_local_s), (1.5, None, process_remote_s)):
            elapsed, record = timed_deploy(origin, cpu, path)
            times.append(elapsed)
            origin.api("DELETE", f"/api/workloads/{record['id']}")
    from cnetd.core.links import signed_link
    link_url = signed_link(origin.url, TOKEN, sha256)
    plain_url = f"http://{origin.ip}:{HTTP_PORT}/faces.onnx"
    plain = [download_mib_s(child_host, plain_url) for _ in range(rounds)]
    artifact = [download_mib_s(child_host, link_url) for _ in range(rounds)]
    cold_s, warm_s = [], []
    for _ in range(rounds):
        child.api("DELETE", f"/api/models/{sha256}")
        elapsed, record = timed_deploy(origin, 1.5, model)
        assert record["node"] == child.node_id, record
        cold_s.append(elapsed)
        origin.api("DELETE", f"/api/workloads/{record['id']}")
        elapsed, record = timed_deploy(origin, 1.5, model)
        warm_s.append(elapsed)
        origin.api("DELETE", f"/api/workloads/{record['id']}")
    return {
        "model_bytes": Path(model).stat().st_size, "rounds": rounds,
        "transfer_mib_s": {"plain_http_median": round(statistics.median(plain), 1),
                           "artifact_link_median": round(statistics.median(artifact), 1),
                           "ratio": round(statistics.median(artifact) / statistics.median(plain), 2)},
        "deploy_to_healthy_s": {"local_median": round(statistics.median(local_s), 3),
                                "remote_cold_median": round(statistics.median(cold_s), 3),
                                "remote_warm_median": round(statistics.median(warm_s), 3),
                                "warm_over_local": round(statistics.median(warm_s) / statistics.median(local_s), 2)},
        # What delegation itself adds, with no model: a process submitted to the origin, run there or on the child.
        "process_submit_s": {"local_median": round(statistics.median(process_local_s), 3),
                             "delegated_median": round(statistics.median(process_remote_s), 3)},
    }


if __name__ == "__main__":
    main()
