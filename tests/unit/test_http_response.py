"""``HeadWithFirstBytes`` puts on the wire exactly the bytes gunicorn's own response does, for every shape of
answer (a small body, a large one, chunked, HEAD, none, sendfile), and sends a small answer's head with its
body in one send where gunicorn makes two."""
from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http.wsgi import FileWrapper, Response

from cnetd.common.http_response import WITH_HEAD_BYTES, HeadWithFirstBytes


class RecordingSocket:
    """What a response sends, one entry per send (a sendfile is one entry of the file's bytes)."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        file.seek(offset)
        self.sends.append(file.read(count))
        return len(self.sends[-1])


class SeekableFile(io.BytesIO):
    """A file-like with a descriptor, as a sendfiled object has (gunicorn seeks it through the descriptor)."""

    def __init__(self, data: bytes, path: Any) -> None:
        super().__init__(data)
        self._file = open(path, "wb+")
        self._file.write(data)
        self._file.seek(0)

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()
        super().close()


def answered(response_class: type[Response], method: str, headers: list[tuple[str, str]],
             body: list[bytes] | None = None, file: Any = None) -> list[bytes]:
    sock = RecordingSocket()
    request = SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False)
    response = response_class(request, sock, Config())
    response.start_response("200 OK", headers)
    if file is not None:
        response.write_file(FileWrapper(file))
    for chunk in body or []:
        response.write(chunk)
    response.close()
    return sock.sends


@pytest.fixture(autouse=True)
def fixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(util, "http_date", lambda *args: "Fri, 04 Dec 2026 21:00:00 GMT")


@pytest.mark.parametrize("method, headers, body, sends", [
    ("GET", [("Content-Length", "4096")], [b"s" * 4096], 1),  # small: head and body in one send
    ("GET", [("Content-Length", str(WITH_HEAD_BYTES + 1))], [b"b" * (WITH_HEAD_BYTES + 1)], 2),  # large: not copied
    ("GET", [("Content-Type", "text/event-stream")], [b"data: 1\n\n", b"data: 2\n\n"], 4),  # chunked: head, 2, end
    ("HEAD", [("Content-Length", "4096")], [b"s" * 4096], 1),  # no body goes out: the head at the close
    ("GET", [("Content-Length", "0")], [], 1),  # nothing written: the head at the close
    ("GET", [("Content-Length", "6")], [b"abc", b"def"], 2),  # the head with the first bytes only
])
def test_the_same_bytes_as_gunicorn_in_fewer_sends(method: str, headers: list[tuple[str, str]], body: list[bytes],
                                                    sends: int) -> None:
    ours = answered(HeadWithFirstBytes, method, headers, body)
    stock = answered(Response, method, headers, body)
    assert b"".join(ours) == b"".join(stock)
    assert ours[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(ours) == sends


def test_a_sendfiled_body_follows_its_head(tmp_path: Any) -> None:
    data = b"f" * 100_000
    ours = answered(HeadWithFirstBytes, "GET", [("Content-Length", str(len(data)))],
                    file=SeekableFile(data, tmp_path / "ours"))
    stock = answered(Response, "GET", [("Content-Length", str(len(data)))], file=SeekableFile(data, tmp_path / "stock"))
    assert b"".join(ours) == b"".join(stock)
    assert ours[-1] == data and ours[0].endswith(b"\r\n\r\n")


def test_the_date_is_gunicorns_and_made_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """``http_date_once_a_second`` (gunicorn's Date header in our workers) says what gunicorn's own does, and
    formats the current time once per second."""
    import time
    from cnetd.common import http_response
    gunicorns = http_response._format_http_date
    http_response.http_date.cache_clear()
    monkeypatch.setattr(time, "time", lambda: 1_764_880_000.7)
    assert http_response.http_date_once_a_second() == gunicorns() == "Thu, 04 Dec 2025 20:26:40 GMT"
    assert http_response.http_date_once_a_second(86_400.5) == gunicorns(86_400.5)  # a given time: as given

    made: list[float] = []
    monkeypatch.setattr(http_response, "_format_http_date", lambda at: made.append(at) or f"second {at}")
    for now, expected in ((2_000.1, "second 2000"), (2_000.9, "second 2000"), (2_001.0, "second 2001")):
        monkeypatch.setattr(time, "time", lambda now=now: now)
        assert http_response.http_date_once_a_second() == expected
    assert made == [2_000, 2_001]
