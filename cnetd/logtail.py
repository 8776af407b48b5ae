"""Reads the last lines of a log file without reading the whole file."""
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
