"""Object keys and relative upload paths that cannot leave the data root: the one place that decides."""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath


class UnsafeKey(ValueError):
    """A key or file name that is absolute, climbs out (..), or holds NUL or backslashes."""


def safe_relative(name: str) -> PurePosixPath:
    """A relative path of plain segments, as uploaded file names and S3 keys must be."""
    return PurePosixPath(*_segments(name))


def _segments(name: str) -> list[str]:
    """``name``'s segments, when it is a relative path of plain ones (an absolute path's first is empty)."""
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeKey(f"{name!r}: empty, or contains NUL or a backslash")
    segments = name.split("/")
    if any(segment in ("..", ".", "") for segment in segments):
        raise UnsafeKey(f"{name!r}: must be a relative path without '.' or '..' segments")
    return segments


class NotAFile(LookupError):
    """No regular file at that key (absent, a directory, a link, a device …)."""


def open_inside(root: Path, name: str) -> tuple[int, os.stat_result]:
    """A read-only descriptor of the regular file ``root / name``, and its stat, opened one path component at
    a time below ``root`` without following any symlink: a link anywhere on the way (even one swapped in
    while the walk runs) fails the open, so nothing outside ``root`` can be reached. Raises ``UnsafeKey``
    for a malformed name, ``NotAFile`` when no regular file is there."""
    parts = _segments(name)  # no PurePosixPath on a GET's path (2.6 % of the gateway's Python under small GETs)
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            except OSError:
                raise NotAFile(name) from None  # absent, a file, or a link
            os.close(directory)
            directory = inner
        try:  # O_NONBLOCK: a FIFO planted there must not hang the request
            descriptor = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
        except OSError:
            raise NotAFile(name) from None
    finally:
        os.close(directory)
    found = os.fstat(descriptor)
    if not stat.S_ISREG(found.st_mode):
        os.close(descriptor)
        raise NotAFile(name)
    return descriptor, found
