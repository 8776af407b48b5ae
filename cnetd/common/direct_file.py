"""A new file written around the page cache (``O_DIRECT``): what an upload receives goes to the disk at the
disk's pace, from one reused buffer, instead of being copied into fresh page-cache pages.

Measured on the test machines (a VM): writing 1 GiB through the page cache took from 0.2 to 5.5 s, as the
kernel found recycled pages or had to take fresh ones from the hypervisor; with ``O_DIRECT`` it took 0.65 s
each time (``dd ... oflag=direct`` agrees), and the thread that writes waits for the device without holding
a core.

``O_DIRECT`` asks for whole blocks from an aligned buffer: data is gathered into a page-aligned ``mmap`` and
written a buffer at a time; the tail, shorter than a buffer, is written at ``finish`` with ``O_DIRECT``
cleared. A filesystem that refuses ``O_DIRECT`` (``EINVAL`` at open) gets the same writes through the page
cache.
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
from pathlib import Path
from types import TracebackType

BUFFER_BYTES = 1 << 20  # a multiple of every block size O_DIRECT may ask for (at most the 4 KiB page)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def new_buffer(size: int = BUFFER_BYTES) -> mmap.mmap:
    """A page-aligned buffer for ``DirectFile``; one can serve files written one after another."""
    return mmap.mmap(-1, size)


class DirectFile:
    """A file created at ``path`` (never over or through anything already there: ``FileExistsError`` and the
    like, as ``open(path, "xb")``), written in order with ``write`` and completed with ``finish``. Use it as
    a context manager: the descriptor closes on exit, written in full only if ``finish`` ran."""

    def __init__(self, path: Path, buffer: mmap.mmap) -> None:
        try:
            self._descriptor = os.open(path, _CREATE | os.O_DIRECT, 0o666)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._descriptor = os.open(path, _CREATE, 0o666)
        self._buffer, self._filled = buffer, 0

    @property
    def direct(self) -> bool:
        return bool(fcntl.fcntl(self._descriptor, fcntl.F_GETFL) & os.O_DIRECT)

    def fileno(self) -> int:
        return self._descriptor

    def write(self, data: bytes | memoryview) -> None:
        view, capacity = memoryview(data), len(self._buffer)
        while view:
            taken = min(len(view), capacity - self._filled)
            self._buffer[self._filled:self._filled + taken] = view[:taken]
            self._filled += taken
            view = view[taken:]
            if self._filled == capacity:
                self._write_buffer()

    def finish(self) -> None:
        """Write the tail through the page cache (it is shorter than a block ``O_DIRECT`` takes)."""
        self._without_direct()
        self._write_buffer()

    def _write_buffer(self) -> None:
        pending = memoryview(self._buffer)[:self._filled]
        try:
            while pending:
                written = os.write(self._descriptor, pending)
                if written < len(pending):  # short (the disk filling up): the rest may not be aligned any more
                    self._without_direct()
                pending = pending[written:]
        finally:
            pending.release()
        self._filled = 0

    def _without_direct(self) -> None:
        flags = fcntl.fcntl(self._descriptor, fcntl.F_GETFL)
        fcntl.fcntl(self._descriptor, fcntl.F_SETFL, flags & ~os.O_DIRECT)

    def __enter__(self) -> DirectFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None) -> None:
        os.close(self._descriptor)
