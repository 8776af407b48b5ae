"""``python -m inference.stream.probe URL``: whether a stream's source opens and gives a frame, in a short
subprocess (the node's processes do not load OpenCV). Exit 0: it does; 2: it cannot (the reason on stderr)."""
from __future__ import annotations

import sys

from inference.stream.source import SourceError, open_capture


def main() -> int:
    try:
        capture = open_capture(sys.argv[1])
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        ok, _ = capture.read()
    finally:
        capture.release()
    if not ok:
        print("the source opened but gave no frame", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
