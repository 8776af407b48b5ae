"""Test helper: catches a node scheduler's model check (its ``inference.yolo_model`` subprocess) as it starts and
stops it there (SIGSTOP), so that the step it belongs to takes as long as a test likes."""
from __future__ import annotations

import signal

import psutil

from tests.support.nodes import Node, wait_for


def _model_check(node: Node) -> psutil.Process | None:
    """The scheduler's model-check subprocess, if one runs now."""
    scheduler = psutil.Process(node.program_pid("scheduler"))
    for child in scheduler.children(recursive=True):
        try:
            if "inference.yolo_model" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def stopped_model_check(node: Node) -> psutil.Process:
    """Catch the model check as it starts, and stop it where it is (SIGSTOP): it now takes as long as we like.
    The caller sends it SIGCONT."""
    def stop_it() -> psutil.Process | None:
        check = _model_check(node)
        if check is not None:
            check.send_signal(signal.SIGSTOP)
        return check
    return wait_for(stop_it, timeout_s=30, interval_s=0.002)
