"""supervisord's event listener protocol: READY on stdout, a header line and payload on stdin, RESULT back."""
from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Iterator


@dataclass(frozen=True)
class Event:
    name: str
    payload: dict[str, str]


def _tokens(line: str) -> dict[str, str]:
    return dict(token.split(":", 1) for token in line.split() if ":" in token)


def events(stdin: IO[str], stdout: IO[str]) -> Iterator[Event]:
    """Yield events one at a time; each is acknowledged when the consumer asks for the next one.

    stdout is the protocol channel: nothing else may ever be written to it.
    """
    while True:
        stdout.write("READY\n")
        stdout.flush()
        header_line = stdin.readline()
        if not header_line:
            return
        headers = _tokens(header_line)
        body = stdin.read(int(headers["len"]))
        payload_line = body.split("\n", 1)[0]
        yield Event(headers["eventname"], _tokens(payload_line))
        stdout.write("RESULT 2\nOK")
        stdout.flush()
