"""Memory of an idle node: the PSS (proportional set size: shared pages split among their sharers) of
supervisord and every process under it, a few seconds after start, with no workloads.

    .venv/bin/python bench/idle_memory.py [--settle-s 5]

Prints JSON: each process's name and PSS in MiB, the total, and which heavy libraries each of the node's
program modules loads at import (measured in a fresh interpreter per module).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import at_most  # noqa: E402
from tests.support.nodes import Node, running  # noqa: E402  (the same real-node harness the tests use)

PROGRAMS = ("cnetd.launcher.main", "cnetd.api.app", "cnetd.register", "cnetd.scheduler", "cnetd.monitor",
            "inference.yolo_service", "inference.opencv_service", "gateway.server")
HEAVY = ("onnxruntime", "cv2", "torch", "docker", "lmdb", "zmq", "supervisor", "falcon", "numpy", "gunicorn")
MIB = 1024 * 1024


def heavy_imports(module: str) -> list[str]:
    probe = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()


def node_processes(node: Node) -> list[psutil.Process]:
    supervisord = psutil.Process(int((node.runtime_dir / "supervisord.pid").read_text()))
    return [supervisord, *supervisord.children(recursive=True)]


def label(process: psutil.Process, supervisord: psutil.Process) -> str:
    command = " ".join(process.cmdline())
    if process.pid == supervisord.pid:
        return "supervisord"
    if "gunicorn" in command:
        return "api master" if process.ppid() == supervisord.pid else "api worker"
    return next((name for name in ("cnetd.register", "cnetd.scheduler", "cnetd.monitor") if name in command),
                command[:60])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--settle-s", type=float, default=5.0)
    args = parser.parse_args()
    with running(Node()) as node:
        time.sleep(args.settle_s)
        supervisord, *programs = node_processes(node)
        processes = [{"process": label(process, supervisord), "pss_mib": round(process.memory_full_info().pss / MIB, 1)}
                     for process in (supervisord, *programs)]
    total = round(sum(p["pss_mib"] for p in processes), 1)
    print(orjson.dumps({"processes": processes, "total_pss_mib": total,
                        "heavy_imports": {module: heavy_imports(module) for module in PROGRAMS},
                        "goals": {"total_pss_mib": at_most(total, 100)}},  # KubeEdge's EdgeCore: about 70 MB
                       option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
