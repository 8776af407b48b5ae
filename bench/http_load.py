"""An HTTP load from a second process that costs the machine's cores as little as can be: ``wrk`` (C, one
epoll thread) posting one body, or getting one URL, over kept-alive connections. What the benches measure a service with, so
that the client's own work (a Python client's is several times wrk's) is not counted against the service.

``make bench`` installs wrk (Debian's package ``wrk``).
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import orjson
import psutil

SCRIPT = Path(__file__).resolve().parent / "wrk_load.lua"


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user and system) used so far by a process and its children."""
    root = psutil.Process(pid)
    return sum(sum(process.cpu_times()[:2]) for process in [root, *root.children(recursive=True)])


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def post_load(url: str, body: bytes, content_type: str, connections: int, seconds: float,
              service_pid: int) -> dict[str, float]:
    """``connections`` clients posting ``body`` to ``url`` back to back for ``seconds`` (see ``load``)."""
    with tempfile.NamedTemporaryFile(suffix=".body") as body_file:
        body_file.write(body)
        body_file.flush()
        return load(url, connections, seconds, service_pid,
                    {"WRK_BODY": body_file.name, "WRK_CONTENT_TYPE": content_type})


def load(url: str, connections: int, seconds: float, service_pid: int,
         request: dict[str, str] | None = None) -> dict[str, float]:
    """``connections`` clients sending ``request`` (a GET of ``url`` when None; ``post_load``'s otherwise)
    back to back for ``seconds``: requests/s, p50 and p99 ms, the service's CPU seconds per request and
    cores busy, and the cores wrk itself used."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    cpu_before, client_before, started = tree_cpu_s(service_pid), _children_cpu_s(), time.perf_counter()
    finished = subprocess.run(
        ["wrk", "--threads", "1", "--connections", str(connections), "--duration", f"{seconds:g}s",
         "--timeout", "30s", "--script", str(SCRIPT), url],
        env={**{name: value for name, value in os.environ.items() if not name.startswith("WRK_")}, **(request or {})},
        capture_output=True, text=True, check=True, timeout=seconds + 60)
    elapsed = time.perf_counter() - started
    service_cpu_s, client_cpu_s = tree_cpu_s(service_pid) - cpu_before, _children_cpu_s() - client_before
    summary = orjson.loads(finished.stdout.strip().splitlines()[-1])
    if summary["socket_errors"] or summary["non_2xx"] or not summary["requests"]:
        raise RuntimeError(f"the load failed: {summary}")
    answered = summary["requests"]
    return {"rps": round(answered / (summary["duration_us"] / 1e6), 1), "p50_ms": round(summary["p50_us"] / 1000, 2),
            "p99_ms": round(summary["p99_us"] / 1000, 2), "cpu_s_per_request": round(service_cpu_s / answered, 4),
            "cores_busy": round(service_cpu_s / elapsed, 2), "client_cores": round(client_cpu_s / elapsed, 2)}
