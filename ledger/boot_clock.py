"""The clock a node times its decisions by: seconds since this machine booted (CLOCK_BOOTTIME).

Whether a neighbour is online, when a silent child is forgotten, when a fence is old enough to drop: each
compares a stamp one process wrote with another process's now, so it needs a clock all of a node's processes
share, and one that NTP (or a person setting the date) never steps. The wall clock is neither safe nor needed
there: a step forward would forget live children and drop fences early, a step back would keep a dead child
online for as long as the step. This clock counts through a suspend, and restarts at each boot: a stamp kept on
disk means something only with the boot it was taken in (``BOOT_ID``).
"""
from __future__ import annotations

import time
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def now() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)
