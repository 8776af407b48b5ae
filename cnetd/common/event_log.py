"""A stream's kept events: a JSON-lines file in its workload dir, written by the stream's program and read by
the API (``GET /api/workloads/{id}/events``, Server-Sent Events).

Each event carries ``seq``, counting on across the program's restarts. The writer appends; once the file holds
twice ``keep`` events it rewrites the last ``keep`` to a new file and renames it over the old one, so the
file stays bounded and a reader never sees a half-written file. A follower (``EventTail``) reads what was
appended since it last looked and, when the file was replaced, starts the new one over, skipping what it
has already seen by ``seq``.
"""
from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path
from typing import Any, Iterator

EVENTS_FILE = "events.jsonl"
DEFAULT_KEEP = 1000
_READ_BYTES = 1 << 20


class EventWriter:
    def __init__(self, path: Path, keep: int = DEFAULT_KEEP) -> None:
        self._path = path
        self._keep = keep
        last = last_events(path, 1)
        self.next_seq = last[-1]["seq"] + 1 if last else 1
        try:
            with open(path, "rb") as handle:
                self._lines = sum(1 for _ in handle)
        except FileNotFoundError:
            self._lines = 0

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Keep ``event`` with the next ``seq``; the event as kept."""
        event = {"seq": self.next_seq, **event}
        self.next_seq += 1
        with open(self._path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._lines += 1
        if self._lines >= 2 * self._keep:
            self._trim()
        return event

    def _trim(self) -> None:
        kept = last_events(self._path, self._keep)
        partial = self._path.with_suffix(".partial")
        partial.write_text("".join(json.dumps(event, separators=(",", ":")) + "\n" for event in kept),
                           encoding="utf-8")
        os.replace(partial, self._path)
        self._lines = len(kept)


def _parsed(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:  # a line the writer was cut off in (it was killed): skipped
            continue
        if isinstance(event, dict) and isinstance(event.get("seq"), int):
            yield event


def last_events(path: Path, count: int) -> list[dict[str, Any]]:
    """The last ``count`` events kept in ``path`` (none when it does not exist)."""
    if count <= 0:
        return []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return list(deque(_parsed(handle), maxlen=count))
    except FileNotFoundError:
        return []


class EventTail:
    """Follows ``path``: each ``poll`` gives the events kept since the last one (after ``after_seq`` at first)."""

    def __init__(self, path: Path, after_seq: int = 0) -> None:
        self._path = path
        self._seen = after_seq
        self._inode: int | None = None
        self._offset = 0
        self._pending = b""

    def poll(self) -> list[dict[str, Any]]:
        try:
            handle = open(self._path, "rb")
        except FileNotFoundError:
            return []
        with handle:
            inode = os.fstat(handle.fileno()).st_ino
            if inode != self._inode:  # first look, or the writer replaced the file: read it from the start
                self._inode, self._offset, self._pending = inode, 0, b""
            handle.seek(self._offset)
            data = self._pending + handle.read(_READ_BYTES)
            self._offset = handle.tell()
        whole, _, self._pending = data.rpartition(b"\n")
        fresh = [event for event in _parsed(whole.decode("utf-8", errors="replace").splitlines())
                 if event["seq"] > self._seen]
        if fresh:
            self._seen = fresh[-1]["seq"]
        return fresh
