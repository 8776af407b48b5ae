"""Gives the C heap's free pages back to the kernel once a process has started. Importing and setting up
leave freed buffers (read .pyc files, parsed config) in the middle of glibc's heap, where its automatic
trim (top of the heap only) never reaches; ``malloc_trim(0)`` releases them, about 1 MiB per idle node
process (``bench/idle_memory.py``)."""
from __future__ import annotations

import ctypes

_libc = ctypes.CDLL(None)


def release_free_heap() -> None:
    """glibc only: another C library (musl) has no malloc_trim, and there this does nothing."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
