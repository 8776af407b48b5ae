"""Object keys and relative upload paths that cannot leave the data root: the one place that decides."""
from __future__ import annotations

import os
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


def resolve_inside(root: Path, name: str) -> Path:
    """``root / name``, refused when it or any directory on the way is a symlink leading out of ``root``."""
    relative = safe_relative(name)
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, *relative.parts))
    if os.path.commonpath([real_root, target]) != real_root:
        raise UnsafeKey(f"{name!r}: leads outside the data root")
    return Path(target)
