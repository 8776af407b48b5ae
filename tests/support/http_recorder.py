"""An HTTP server on loopback that records what it is asked, standing for a node or for a site's proxy."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

# What an operator behind a site's proxy has set where the node starts (curl, pip and urllib read them).
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


class HttpRecorder(ThreadingHTTPServer):
    """Answers every GET with ``status`` and ``body``, and records what each asked for (the full URL, when it
    is asked as a proxy) and the Authorization it carried. A context manager: serves while inside."""

    daemon_threads = True

    def __init__(self, status: int = 200, body: bytes = b'{"status": "ok"}') -> None:
        super().__init__(("127.0.0.1", 0), _Recording)
        self.status, self.body = status, body
        self.seen: list[tuple[str, str | None]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> HttpRecorder:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.shutdown()
        self.server_close()


class _Recording(BaseHTTPRequestHandler):
    server: HttpRecorder

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args: object) -> None:
        pass
