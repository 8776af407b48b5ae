"""ETags made ahead of the requests: a background thread computes the MD5 ETag of each object the listing
index holds that has none kept yet, at start and after every walk of a changed tree, so that a GET, a HEAD or
a listing finds it known instead of reading the whole file first. A file the thread has not reached yet (or one
rewritten in place, which no directory change announces) is still hashed by the first request that needs it,
once: what either computes is kept for both."""
from __future__ import annotations

import threading
from pathlib import Path

from gateway.etags import ETags
from gateway.listing import ListingIndex, ObjectInfo

INTERVAL_S = 2.0  # how often the tree's directories are looked at for changes


class EtagWarmer(threading.Thread):
    def __init__(self, root: Path, etags: ETags, index: ListingIndex, interval_s: float = INTERVAL_S) -> None:
        super().__init__(name="etag-warmer", daemon=True)
        self._root, self._etags, self._index, self._interval_s = root, etags, index, interval_s
        self._stopping = threading.Event()
        self._warmed: list[ObjectInfo] | None = None  # the walk last gone through (a new walk is a new list)

    def run(self) -> None:
        while not self._stopping.is_set():
            self.warm()
            self._stopping.wait(self._interval_s)

    def stop(self) -> None:
        self._stopping.set()

    def warm(self) -> int:
        """Hash what the index's current walk holds and no ETag is kept for; how many were hashed."""
        objects = self._index.objects()
        if objects is self._warmed:
            return 0
        hashed = 0
        for info in objects:
            if self._stopping.is_set():
                return hashed
            if self._etags.known(info.version) is None and self._hash(info.key):
                hashed += 1
        self._warmed = objects
        return hashed

    def _hash(self, key: str) -> bool:
        try:
            return self._etags.of_key(self._root, key) is not None  # None: gone since the walk
        except OSError:
            return False
