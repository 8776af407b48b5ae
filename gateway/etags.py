"""MD5 ETags, as S3 clients compare them (``rclone check``, ``aws s3 sync``): read from the file's
``user.cnet.md5`` attribute, which CNET's uploads set once they are recorded (``record_md5``), or computed
once per file version (device, inode, size, mtime) and kept in memory. Beside the MD5, ``user.cnet.md5_of``
names the size and mtime it was taken at: a file rewritten in place keeps its attributes, and its old MD5 is
then not used (an attribute without it, from an older upload, is taken as it is)."""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from gateway.keys import NotAFile, UnsafeKey, open_inside

XATTR = "user.cnet.md5"
VERSION_XATTR = "user.cnet.md5_of"  # "SIZE MTIME_NS" of the content XATTR is the MD5 of
KEPT_VERSIONS = 200_000
_READ_BYTES = 1 << 20

Version = tuple[int, int, int, int]


def version_of(stat: os.stat_result) -> Version:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def set_md5_attribute(descriptor: int, md5_hex: str, stat: os.stat_result) -> None:
    """Record the MD5 of a file's content as ``stat`` found it, where the gateway finds it (best effort: a
    filesystem without user attributes only makes the gateway compute it once)."""
    try:
        os.setxattr(descriptor, VERSION_XATTR, _content_version(stat))
        os.setxattr(descriptor, XATTR, md5_hex.encode())
    except OSError:
        pass


def record_md5(path: Path) -> None:
    """Compute and record the MD5 of a file written in full (an upload's, once it is recorded): best effort.
    A file gone or rewritten meanwhile is left as it is, and the gateway computes what it misses at its first
    read, so an ETag is right from the first GET either way."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        before = os.fstat(descriptor)
        md5 = _md5_of_content(descriptor)
        if version_of(os.fstat(descriptor)) == version_of(before):
            set_md5_attribute(descriptor, md5, before)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _md5_of_content(descriptor: int) -> str:
    digest, offset = hashlib.md5(), 0
    while chunk := os.pread(descriptor, _READ_BYTES, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _content_version(stat: os.stat_result) -> bytes:
    return f"{stat.st_size} {stat.st_mtime_ns}".encode()


class ETags:
    def __init__(self, kept: int = KEPT_VERSIONS) -> None:
        self._known: OrderedDict[Version, str] = OrderedDict()
        self._kept = kept
        self._lock = threading.Lock()

    def known(self, version: Version) -> str | None:
        with self._lock:
            etag = self._known.get(version)
            if etag is not None:
                self._known.move_to_end(version)
            return etag

    def of(self, descriptor: int, stat: os.stat_result) -> str:
        """The ETag of an open file, of which ``stat`` is what fstat said (its offset is left at 0)."""
        version = version_of(stat)
        etag = self.known(version)
        if etag is None:
            etag = f'"{self._md5(descriptor, stat)}"'
            with self._lock:
                self._known[version] = etag
                while len(self._known) > self._kept:
                    self._known.popitem(last=False)
        return etag

    def of_key(self, root: Path, key: str) -> str | None:
        """The ETag of the object ``key`` under ``root``, read through a descriptor opened as GetObject opens
        it (a link swapped in meanwhile is never followed); None if it is no file there now."""
        try:
            descriptor, stat = open_inside(root, key)
        except (UnsafeKey, NotAFile):
            return None
        try:
            return self.of(descriptor, stat)
        finally:
            os.close(descriptor)

    @staticmethod
    def _md5(descriptor: int, stat: os.stat_result) -> str:
        try:
            recorded = os.getxattr(descriptor, XATTR).decode()
            if len(recorded) == 32 and _recorded_for_this_content(descriptor, stat):
                return recorded
        except OSError:
            pass
        return _md5_of_content(descriptor)


def _recorded_for_this_content(descriptor: int, stat: os.stat_result) -> bool:
    try:
        taken_at = os.getxattr(descriptor, VERSION_XATTR)
    except OSError:
        return True  # an upload of an older version recorded no version: its MD5 is taken as it is
    return taken_at == _content_version(stat)
