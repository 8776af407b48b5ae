"""Files a workload needs, made readable to the user it runs as: whether that user can read a path, a
private copy in the workload's own dir when it cannot (a model kept where only the node's user may read),
and uploaded data shared with workloads' group (never with other users)."""
from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

from cnetd.common.private_files import WORKLOAD_FILE_MODE, replacing

READ, SEARCH = 4, 1  # permission bits, as in each of the owner / group / other triples (SEARCH: execute)
SHARED_DIR_MODE, SHARED_FILE_MODE = 0o750, 0o640  # the node writes; workloads' group reads; others nothing


def _permits(info: os.stat_result, uid: int, groups: set[int], want: int) -> bool:
    if uid == 0:
        return True
    if info.st_uid == uid:
        return (info.st_mode >> 6) & want == want
    if info.st_gid in groups:
        return (info.st_mode >> 3) & want == want
    return info.st_mode & want == want


def readable_by(path: Path, user: str, want: int = READ) -> bool:
    """Whether ``user`` may read ``path`` (links resolved; ``want=READ | SEARCH``: and execute it): every
    folder above it searchable by that user, the file readable (owner, group and other bits; ACLs are not
    consulted, so they can only make this answer no where the answer is yes)."""
    account = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, account.pw_gid))
    real = Path(os.path.realpath(path))
    try:
        return (all(_permits(os.stat(folder), account.pw_uid, groups, SEARCH) for folder in real.parents)
                and _permits(os.stat(real), account.pw_uid, groups, READ | SEARCH if real.is_dir() else want))
    except OSError:
        return False


def first_closed_folder(path: Path, user: str) -> Path | None:
    """The first folder above ``path`` (outermost first) that ``user`` may not pass through (search), or
    None when every one lets it."""
    account = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, account.pw_gid))
    for folder in reversed(Path(os.path.realpath(path)).parents):
        try:
            if not _permits(os.stat(folder), account.pw_uid, groups, SEARCH):
                return folder
        except OSError:
            return folder
    return None


def readable_copy(source: str, folder: Path, name: str, user: str | None) -> str:
    """``source`` itself when ``user`` (None: the node's own) can read it; else a copy, ``folder/name``
    (the workload's own dir), owned by ``user`` and 0400, made again only when the source changes."""
    if user is None or readable_by(Path(source), user):
        return source
    copy = folder / name
    original = os.stat(source)
    try:
        present = os.lstat(copy)
        if (present.st_size, present.st_mtime_ns) == (original.st_size, original.st_mtime_ns):
            return str(copy)
    except FileNotFoundError:
        pass
    with open(source, "rb") as reader, replacing(copy, WORKLOAD_FILE_MODE, user) as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)
        writer.flush()
        os.utime(writer.fileno(), ns=(original.st_atime_ns, original.st_mtime_ns))
    return str(copy)


def share_with_workloads(tree: Path, user: str | None) -> None:
    """Give ``user``'s group read access to ``tree``, which the node wrote (an upload, before it is renamed
    into place: nothing in it is anyone else's): dirs 0750, files 0640. ``None``: workloads run as the
    node's own user, who reads it already."""
    if user is None:
        return
    gid = pwd.getpwnam(user).pw_gid
    for folder, _, names in os.walk(tree):
        os.lchown(folder, -1, gid)
        os.chmod(folder, SHARED_DIR_MODE)
        for name in names:
            os.lchown(os.path.join(folder, name), -1, gid)
            os.chmod(os.path.join(folder, name), SHARED_FILE_MODE)


def open_to_workloads(folder: Path, user: str | None) -> None:
    """Let ``user``'s group search and list ``folder`` (the data path that holds uploads, opened when the node
    starts) unless it can."""
    if user is None or readable_by(folder, user):
        return
    os.lchown(folder, -1, pwd.getpwnam(user).pw_gid)
    os.chmod(folder, os.stat(folder).st_mode & 0o7777 | 0o050)
