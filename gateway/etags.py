"""MD5 ETags, as S3 clients compare them (``rclone check``, ``aws s3 sync``): read from the file's
``user.cnet.md5`` attribute, which CNET's uploads set, or computed once per file version (device, inode,
size, mtime) and kept in memory."""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict

XATTR = "user.cnet.md5"
KEPT_VERSIONS = 200_000
_READ_BYTES = 1 << 20

Version = tuple[int, int, int, int]


def version_of(stat: os.stat_result) -> Version:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def set_md5_attribute(descriptor: int, md5_hex: str) -> None:
    """Record a file's MD5 where the gateway finds it (best effort: a filesystem without user attributes
    only makes the gateway compute it once)."""
    try:
        os.setxattr(descriptor, XATTR, md5_hex.encode())
    except OSError:
        pass


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

    def of(self, descriptor: int) -> str:
        """The ETag of an open file (its offset is left at 0)."""
        version = version_of(os.fstat(descriptor))
        etag = self.known(version)
        if etag is None:
            etag = f'"{self._md5(descriptor)}"'
            with self._lock:
                self._known[version] = etag
                while len(self._known) > self._kept:
                    self._known.popitem(last=False)
        return etag

    @staticmethod
    def _md5(descriptor: int) -> str:
        try:
            recorded = os.getxattr(descriptor, XATTR).decode()
            if len(recorded) == 32:
                return recorded
        except OSError:
            pass
        digest, offset = hashlib.md5(), 0
        while chunk := os.pread(descriptor, _READ_BYTES, offset):
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()
