"""Reads a log file without reading it whole: its last lines, or what it holds from an offset on (to follow it)."""
from __future__ import annotations

import os
from pathlib import Path

_BLOCK_BYTES = 64 * 1024


def tail_lines(path: Path, line_count: int) -> str:
    """The last ``line_count`` lines of ``path`` ('' when it does not exist)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return ""
    with handle:
        end = handle.seek(0, os.SEEK_END)
        position, chunks, newlines = end, [], 0
        while position > 0 and newlines <= line_count:
            step = min(_BLOCK_BYTES, position)
            position -= step
            handle.seek(position)
            chunk = handle.read(step)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
    data = b"".join(reversed(chunks))
    lines = data.splitlines(keepends=True)[-line_count:] if line_count else []
    return b"".join(lines).decode("utf-8", errors="replace")


def read_from(path: Path, offset: int, max_bytes: int) -> tuple[str, int]:
    """Up to ``max_bytes`` of ``path`` from byte ``offset``, cut after its last whole line when there is
    more, and the offset to ask for next. An offset past the end (the log was rotated) starts again at 0."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return "", 0
    with handle:
        if offset > handle.seek(0, os.SEEK_END):
            offset = 0
        handle.seek(offset)
        data = handle.read(max_bytes)
    if len(data) == max_bytes and b"\n" in data:
        data = data[:data.rindex(b"\n") + 1]
    return data.decode("utf-8", errors="replace"), offset + len(data)
