"""Finds and ends every process of a node's runtime dir: what an unclean end (supervisord killed) left.

supervisord gives each program its own process group, so a dead supervisord's programs are not signalled
by anyone. Each carries ``CNET_RUNTIME_DIR`` in its environment (cnetd sets it for supervisord, and every
program and workload inherits it), which names the node they belong to.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

from cnetd.common.paths import RUNTIME_DIR_ENV

GONE_WAIT_S = 10.0


def processes_of(runtime_dir: Path) -> list[psutil.Process]:
    """Live processes (other than this one) whose environment names ``runtime_dir``."""
    wanted, found = str(runtime_dir), []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(RUNTIME_DIR_ENV) == wanted and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue  # gone meanwhile, or not ours to read
    return found


def end_processes_of(runtime_dir: Path) -> int:
    """SIGKILL every process of ``runtime_dir`` and wait until they are gone; returns how many there were."""
    leftovers = processes_of(runtime_dir)
    for process in leftovers:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(leftovers, timeout=GONE_WAIT_S)
    deadline = time.monotonic() + GONE_WAIT_S
    while processes_of(runtime_dir) and time.monotonic() < deadline:  # one forked while we swept
        for process in processes_of(runtime_dir):
            try:
                process.kill()
            except psutil.Error:
                pass
        time.sleep(0.05)
    return len(leftovers)
