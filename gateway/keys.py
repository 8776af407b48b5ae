"""Object keys and relative upload paths that cannot leave the data root: the one place that decides."""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath


class UnsafeKey(ValueError):
    """A key or file name that is absolute, climbs out (..), or holds NUL or backslashes."""


def safe_relative(name: str) -> PurePosixPath:
    """A relative path of plain segments, as uploaded file names and S3 keys must be."""
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeKey(f"{name!r}: empty, or contains NUL or a backslash")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", ".", "") for part in name.split("/")):
        raise UnsafeKey(f"{name!r}: must be a relative path without '.' or '..' segments")
    return path


class NotAFile(LookupError):
    """No regular file at that key (absent, a directory, a link, a device …)."""


def open_inside(root: Path, name: str) -> tuple[int, os.stat_result]:
    """A read-only descriptor of the regular file ``root / name``, and its stat, opened one path component at
    a time below ``root`` without following any symlink: a link anywhere on the way (even one swapped in
    while the walk runs) fails the open, so nothing outside ``root`` can be reached. Raises ``UnsafeKey``
    for a malformed name, ``NotAFile`` when no regular file is there."""
    parts = safe_relative(name).parts
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
