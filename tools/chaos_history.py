"""The chaos run's history: every request, its answer and every fault, as JSON lines with times, and kept in
memory so that a violation can be printed with the lines behind it; and what the cluster was told (``Told``)."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


class History:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: TextIO | None = None
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self.round = 0
        self.requests = 0

    def __enter__(self) -> History:
        self._file = open(self._path, "w", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        entry = {"t": round(time.time(), 3), "round": self.round, "kind": kind, **fields}
        with self._lock:
            if kind == "request":
                self.requests += 1
            entry["line"] = len(self._entries) + 1
            self._entries.append(entry)
            if self._file is not None:
                self._file.write(json.dumps(entry, default=str) + "\n")
                self._file.flush()
        return entry

    def about(self, needle: str, limit: int = 6) -> list[str]:
        """The last history lines that mention ``needle``, as written."""
        with self._lock:
            found = [entry for entry in self._entries if needle in json.dumps(entry, default=str)]
        return [json.dumps(entry, default=str) for entry in found[-limit:]]


@dataclass
class Told:
    """What the cluster answered, for the invariants: submissions answered 201 (id → origin), every id tried
    (id → origin), ids deleted (200) and those whose delete was sent, uploads stored (key → (node, sha256, md5)),
    predictions answered wrong, gateway reads answered wrong, requests answered 500; the key of the model uploaded
    at the parent."""

    admitted: dict[str, str] = field(default_factory=dict)
    tried: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    deleting: set[str] = field(default_factory=set)
    stored: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    wrong_answers: list[str] = field(default_factory=list)
    wrong_reads: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    model_key: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, name: str, what: str, subject: str, status: int, message: Any) -> None:
        """Note an answer of ``name``'s to a request about ``subject`` (a workload's id, or the path asked for): a
        500 is a bug's (every failure that a fault can cause has a status of its own: 503 unavailable, 504 timed
        out, 507 disk full, ...)."""
        if status == 500:
            with self.lock:
                self.server_errors.append(f"{subject} on {name}: {what} answered 500: {message}")

    def answered_wrong(self) -> list[str]:
        """The violations found as the answers came (5: gateway reads, 7: predictions, 8: 500s), taken: each is
        reported once."""
        with self.lock:
            found = [f"5: {wrong}" for wrong in self.wrong_reads] + [f"7: {wrong}" for wrong in self.wrong_answers] \
                + [f"8: {error}" for error in self.server_errors]
            self.wrong_reads.clear()
            self.wrong_answers.clear()
            self.server_errors.clear()
        return found
