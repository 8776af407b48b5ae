"""The C heap's free pages: given back to the kernel once a process has started, and kept for reuse while an
API worker moves large bodies.

Importing and setting up leave freed buffers (read .pyc files, parsed config) in the middle of glibc's heap,
where its automatic trim (top of the heap only) never reaches; ``malloc_trim(0)`` releases them, about 1 MiB
per idle node process (``bench/idle_memory.py``).

An upload moves its body in 1 MiB pieces, each a new buffer freed soon after. By default glibc maps each such
block on its own and unmaps it when freed, or, on a thread's arena, hands its pages back to the kernel as
soon as they top the arena: the next piece then faults fresh zeroed pages in. perf put a quarter of an
API worker's CPU during a 1 GiB upload in those faults, zeroing and unmapping. ``keep_freed_blocks`` lets
such blocks come from the heap and stay there for the next; ``release_free_heap`` after each upload gives
them back once. glibc only: another C library (musl) has neither call, and there both do nothing."""
from __future__ import annotations

import ctypes

_libc = ctypes.CDLL(None)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
OWN_MAPPING_FROM_BYTES = 4 << 20  # blocks this large or larger are still mapped on their own
KEPT_FREE_BYTES = 16 << 20  # free pages at the top of an arena beyond this go back to the kernel at once


def release_free_heap() -> None:
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def keep_freed_blocks() -> None:
    mallopt = getattr(_libc, "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, OWN_MAPPING_FROM_BYTES)
        mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES)
