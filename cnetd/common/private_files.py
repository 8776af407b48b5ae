"""Private runtime state: where a node keeps it by default, a directory only its user may use, and files
written there without following links.

The runtime dir holds the token (``node.json``), the ledger and the sockets that control the node: a
directory someone else made (or could replace) would let them read or redirect all of it.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

PRIVATE_DIR_MODE = 0o700
TRAVERSE_ONLY_MODE = 0o711  # others may pass through to a directory of theirs below, not list or read it
PRIVATE_FILE_MODE = 0o600
WORKLOAD_FILE_MODE = 0o400  # a file the node gives a workload: its user may read it, not change it
PRIVATE_UMASK = 0o077


class UnsafeDirectory(Exception):
    """A runtime dir that is not this user's own."""


def default_runtime_root() -> Path:
    """Not a shared, predictable /tmp path: /var/lib/cnet for root, else the user's runtime or state dir."""
    if os.geteuid() == 0:
        return Path("/var/lib/cnet")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "cnet" if runtime else Path.home() / ".local" / "state" / "cnet"


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def make_traversable_parents(path: Path) -> None:
    """Make the missing folders above ``path`` traversable (0711) rather than this process's umask's 0700: an
    unprivileged workload must pass through them to its own dir, or to the data below ``path``."""
    for parent in reversed([ancestor for ancestor in path.parents if not ancestor.exists()]):
        parent.mkdir(exist_ok=True)
        os.chmod(parent, TRAVERSE_ONLY_MODE)


def make_private_dir(path: Path, mode: int = PRIVATE_DIR_MODE) -> None:
    """Create ``path`` or accept it only if it is a real directory owned by this user, then give it ``mode``
    (0700; 0711 for the dir that holds workloads' own dirs). Missing parents are made traversable (0711), so
    an unprivileged workload can reach its dir; nothing below ``path`` can be planted by anyone else."""
    make_traversable_parents(path)
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(f"{path} is not a directory (a link or a file is there)")
    if info.st_uid != os.geteuid():
        raise UnsafeDirectory(f"{path} is owned by {owner_name(info.st_uid)}, not by {owner_name(os.geteuid())} "
                              "who runs this node")
    os.chmod(path, mode, follow_symlinks=False)


@contextlib.contextmanager
def replacing(path: Path, mode: int = PRIVATE_FILE_MODE, user: str | None = None) -> Iterator[BinaryIO]:
    """Write a new ``path``: a new file (exclusive create, links not followed, ``mode``, owned by ``user``
    before it has a name), renamed over the old name once written, which replaces a link and never writes
    through it. Nothing is left behind on failure."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if user is not None:
                account = pwd.getpwnam(user)
                os.fchown(handle.fileno(), account.pw_uid, account.pw_gid)
            yield handle
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, readable by this user only."""
    with replacing(path) as handle:
        handle.write(data)


def write_workload_file(path: Path, data: bytes, user: str | None) -> None:
    """Replace ``path`` in a workload's dir with ``data``, readable by the workload's user only (0400)."""
    with replacing(path, WORKLOAD_FILE_MODE, user) as handle:
        handle.write(data)


def make_workload_dir(path: Path, user: str | None) -> None:
    """A workload's own directory, 0700 and owned by the user it runs as (``None``: this process's user)."""
    path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    if user is not None:
        account = pwd.getpwnam(user)
        os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)
