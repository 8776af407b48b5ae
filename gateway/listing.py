"""Listing a directory tree as S3 does: walk, then page with prefix / delimiter from a position (ListObjects
v1's marker, v2's start-after or continuation token). ``ListingIndex`` keeps the walk, sorted, and walks again
only when one of the tree's directories changed (an entry added, removed or renamed moves its directory's
mtime); a page's own entries are stat'ed again, so a file rewritten in place shows its new size and ETag."""
from __future__ import annotations

import base64
import bisect
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from gateway.etags import version_of

MAX_KEYS = 1000
STAGING_PREFIX = ".uploading-"  # uploads in progress are not objects yet
RACY_NS = 2_000_000_000  # a directory whose mtime is this recent at a walk may change unseen: walk again next time


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float
    version: tuple[int, int, int, int] = (0, 0, 0, 0)  # device, inode, size, mtime_ns: what an ETag is kept by


@dataclass
class ListPage:
    contents: list[ObjectInfo] = field(default_factory=list)
    common_prefixes: list[str] = field(default_factory=list)
    next_after: tuple[str, bool] | None = None  # truncated: the last entry returned, and whether a prefix

    @property
    def key_count(self) -> int:
        return len(self.contents) + len(self.common_prefixes)


class BadToken(ValueError):
    """A continuation token this gateway did not issue."""


def walk(root: Path, directories: dict[str, int] | None = None) -> list[ObjectInfo]:
    """Every regular file under ``root`` as a key, in S3 order (UTF-8 bytes); symlinks are never followed.
    ``directories``, when given, gets each directory walked with its mtime (ns) before its entries were read."""
    found: list[ObjectInfo] = []
    pending = [(str(root), "")]
    while pending:
        directory, key_prefix = pending.pop()
        try:
            if directories is not None:
                directories[directory] = os.stat(directory, follow_symlinks=False).st_mtime_ns
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink() or (not key_prefix and entry.name.startswith(STAGING_PREFIX)):
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append((entry.path, f"{key_prefix}{entry.name}/"))
            elif entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                found.append(ObjectInfo(f"{key_prefix}{entry.name}", stat.st_size, stat.st_mtime, version_of(stat)))
    return sorted(found, key=lambda info: info.key.encode())


class ListingIndex:
    """The objects under ``root``, walked when first asked for and again once a directory of the tree changed
    (each list stats the directories, not the files). Thread-safe: the gateway's threads share one."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._objects: list[ObjectInfo] = []
        self._directories: dict[str, int] = {}  # path → mtime_ns when walked

    def objects(self) -> list[ObjectInfo]:
        with self._lock:
            if not self._directories or self._changed():
                directories: dict[str, int] = {}
                walked_at_ns = time.time_ns()
                self._objects = walk(self._root, directories)
                # A directory changed in the last moments may change again within the same timestamp tick
                # (the kernel's clock for mtimes is coarse): such a walk is used once, not kept.
                racy = any(mtime_ns > walked_at_ns - RACY_NS for mtime_ns in directories.values())
                self._directories = {} if racy else directories
            return self._objects

    def _changed(self) -> bool:
        for directory, mtime_ns in self._directories.items():
            try:
                if os.stat(directory, follow_symlinks=False).st_mtime_ns != mtime_ns:
                    return True
            except OSError:
                return True
        return False

    def current(self, info: ObjectInfo) -> ObjectInfo | None:
        """``info`` as its file is now (None: gone since the walk)."""
        try:
            stat = os.stat(os.path.join(self._root, info.key), follow_symlinks=False)  # not pathlib: a page is 1,000
        except OSError:
            return None
        return ObjectInfo(info.key, stat.st_size, stat.st_mtime, version_of(stat))


def encode_token(marker: str, is_prefix: bool) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"after": marker, "prefix": is_prefix})).decode()


def decode_token(token: str) -> tuple[str, bool]:
    try:
        body = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return str(body["after"]), bool(body["prefix"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise BadToken("the continuation token is not valid") from None


def list_page(objects: list[ObjectInfo], prefix: str = "", delimiter: str = "", max_keys: int = MAX_KEYS,
              after: str = "", after_is_prefix: bool = False) -> ListPage:
    """One page: keys and common prefixes in order after ``after`` (all of a common prefix, when it is one),
    at most ``max_keys`` of them together."""
    page = ListPage()
    last: tuple[str, bool] | None = None
    start = max(prefix.encode(), after.encode())  # sorted by key bytes: begin there, not at the first key
    first = bisect.bisect_left(objects, start, key=lambda info: info.key.encode())
    for info in objects[first:]:
        key = info.key
        if not key.startswith(prefix) or key.encode() <= after.encode():
            continue
        if after_is_prefix and key.startswith(after):
            continue  # inside a common prefix already returned on an earlier page
        rest = key[len(prefix):]
        cut = rest.find(delimiter) if delimiter else -1
        entry = (prefix + rest[:cut + len(delimiter)], True) if cut >= 0 else (key, False)
        if entry[1] and page.common_prefixes and page.common_prefixes[-1] == entry[0]:
            continue
        if page.key_count >= max_keys:
            page.next_after = last
            return page
        if entry[1]:
            page.common_prefixes.append(entry[0])
        else:
            page.contents.append(info)
        last = entry
    return page
