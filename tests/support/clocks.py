"""A node with a wall clock of its own: every process of the node runs with libfaketime (``tools/libfaketime.sh``
builds it), which reads the node's clock offset from a file in its root at most once a second. Its monotonic clock
is left alone, as when NTP steps a real machine's clock."""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from tests.support.nodes import Node

CLOCK_FILE = "clock-offset"  # libfaketime's offset: "+0", "-7200"


@functools.cache
def libfaketime() -> str:
    script = Path(__file__).resolve().parents[2] / "tools" / "libfaketime.sh"
    return subprocess.run([str(script)], check=True, capture_output=True, text=True, timeout=600).stdout.strip()


def with_own_clock(node: Node) -> Node:
    """``node`` (before it starts), its processes' wall clock offset by what its clock file says (at first, 0)."""
    step_clock(node, 0)
    node.environment.update({"LD_PRELOAD": libfaketime(), "FAKETIME_TIMESTAMP_FILE": str(node.root / CLOCK_FILE),
                             "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_CACHE_DURATION": "1"})
    return node


def step_clock(node: Node, offset_s: int) -> None:
    """Set a node's wall clock ``offset_s`` from the machine's (0: back to it); its processes see it within a
    second."""
    (node.root / CLOCK_FILE).write_text(f"{offset_s:+d}\n")
