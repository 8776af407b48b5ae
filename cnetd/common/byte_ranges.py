"""One HTTP ``Range: bytes=…`` header against a file's size (RFC 9110 §14.1.2), as the gateway's GetObject and
the node's artifact links answer it. A header that is not one byte range is ignored (the whole file)."""
from __future__ import annotations

import re

_RANGE = re.compile(r"^bytes=([0-9]{0,18})-([0-9]{0,18})$")  # ASCII digits only: \d takes any script's


class NotSatisfiable(Exception):
    """The range starts past the end: a 416, with ``Content-Range: bytes */SIZE``."""


def byte_range(header: str | None, size: int) -> tuple[int, int, bool]:
    """``(first, last, partial)``: the inclusive byte span to send, and whether it is a 206's."""
    match = _RANGE.match(header.strip()) if header else None
    if not match or not (match.group(1) or match.group(2)):
        return 0, size - 1, False
    if match.group(1):
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    else:
        start, end = max(0, size - int(match.group(2))), size - 1
    if start >= size or start > end:
        raise NotSatisfiable(f"bytes */{size}")
    return start, end, True
