"""A plain HTTP file server for tests and benchmarks (a model's web host): serves one directory, counts the
GETs of each path, and can send slowly (``chunk_delay_s`` between 64 KiB chunks) to show a fetch in flight."""
from __future__ import annotations

import collections
import contextlib
import http.server
import os
import threading
import time
from pathlib import Path
from typing import Iterator

CHUNK_BYTES = 64 * 1024


class FileServer:
    def __init__(self, root: Path, host: str = "127.0.0.1", chunk_delay_s: float = 0.0) -> None:
        self.root, self.chunk_delay_s = root, chunk_delay_s
        self.gets: collections.Counter[str] = collections.Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.gets[self.path] += 1
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.end_headers()
                with open(path, "rb") as handle:
                    while chunk := handle.read(CHUNK_BYTES):
                        self.wfile.write(chunk)
                        if server.chunk_delay_s:
                            time.sleep(server.chunk_delay_s)

            def log_message(self, *args: object) -> None:
                pass

        self._http = http.server.ThreadingHTTPServer((host, 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://{host}:{self._http.server_address[1]}"

    def __enter__(self) -> FileServer:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


@contextlib.contextmanager
def serving(root: Path, **options: object) -> Iterator[FileServer]:
    with FileServer(root, **options) as server:  # type: ignore[arg-type]
        yield server


def copy_of(source: str, folder: Path, name: str) -> Path:
    """``source`` copied to ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(1 << 20):
            writer.write(chunk)
    os.chmod(target, 0o644)
    return target
