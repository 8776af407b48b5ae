"""The data catalogue: one SQLite row per upload and per stored file (WAL, busy timeout: several processes)."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

BUSY_TIMEOUT_S = 10.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS data (
    data_key   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,          -- file | directory
    path       TEXT NOT NULL,          -- where the object tree lives
    size_bytes INTEGER NOT NULL,
    file_count INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS data_in_order ON data (created_at, data_key);
CREATE TABLE IF NOT EXISTS data_files (
    data_key   TEXT NOT NULL REFERENCES data(data_key) ON DELETE CASCADE,
    rel_path   TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    PRIMARY KEY (data_key, rel_path)
);
"""


@dataclass(frozen=True)
class StoredFile:
    rel_path: str
    size_bytes: int
    sha256: str


class Catalog:
    """Metadata of stored data; opened per process, with a connection per thread: one connection shared by
    the API's threads let two uploads' transactions meet ("cannot start a transaction within a
    transaction", found by concurrent uploads). Opened on first use: sqlite3 is then imported, and the schema
    made, so that a node's processes hold neither while no data is stored or read (about 1 MiB each)."""

    def __init__(self, db_path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(db_path)), exist_ok=True)
        self._db_path = db_path
        self._threads = threading.local()
        self._schema_made = False

    @property
    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._threads, "connection", None)
        if connection is None:
            import sqlite3
            connection = sqlite3.connect(self._db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA foreign_keys=ON")
            self._threads.connection = connection
            if not self._schema_made:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(_SCHEMA)
                self._schema_made = True
        return connection

    def add(self, data_key: str, name: str, kind: str, path: str, files: list[StoredFile]) -> dict[str, Any]:
        with self._db:  # one transaction: the upload is described whole or not at all
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO data VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (data_key, name, kind, path, sum(f.size_bytes for f in files), len(files), time.time()))
            self._db.executemany("INSERT INTO data_files VALUES (?, ?, ?, ?)",
                                 [(data_key, f.rel_path, f.size_bytes, f.sha256) for f in files])
        return self.get(data_key)

    def get(self, data_key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM data WHERE data_key = ?", (data_key,)).fetchone()
        if row is None:
            return None
        files = self._db.execute("SELECT rel_path, size_bytes, sha256 FROM data_files WHERE data_key = ? "
                                 "ORDER BY rel_path", (data_key,)).fetchall()
        return {**dict(row), "files": [dict(file) for file in files]}

    def file_with_sha256(self, sha256: str) -> str | None:
        """The path of a stored file with these bytes, if any upload holds one."""
        row = self._db.execute("SELECT data.path, data_files.rel_path FROM data_files JOIN data USING (data_key) "
                               "WHERE data_files.sha256 = ? LIMIT 1", (sha256,)).fetchone()
        return None if row is None else os.path.join(row["path"], row["rel_path"])  # files lie under its folder

    def listed(self, after: tuple[float, str] | None = None, limit: int | None = None,
               newest_first: bool = False) -> list[dict[str, Any]]:
        """Stored data in the order it was stored, by (created_at, data_key) (``newest_first``: the reverse), past
        ``after`` (an item's (created_at, data_key)) in that order, at most ``limit``: one range of an index, so a
        page costs its own size."""
        order, past = ("DESC", "<") if newest_first else ("ASC", ">")
        where, values = ("", []) if after is None else (f"WHERE (created_at, data_key) {past} (?, ?)", list(after))
        query = f"SELECT * FROM data {where} ORDER BY created_at {order}, data_key {order}"
        if limit is not None:
            query, values = f"{query} LIMIT ?", [*values, limit]
        return [dict(row) for row in self._db.execute(query, values)]

    def remove(self, data_key: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM data WHERE data_key = ?", (data_key,))
