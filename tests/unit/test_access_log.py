"""The services' batched access log: each line is what gunicorn's own logger writes for the same request
(the combined format, the size from Content-Length), quotes a client sent stay inside their field, and
lines reach the file a batch at a time: at ``BATCH_LINES``, or when the batch is written out (the flusher
each second, and the worker's exit)."""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn.glogging import Logger

from cnetd.common.access_log import BATCH_LINES, BatchedAccessLog

COMBINED_WITH_LENGTH = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %({content-length}o)s "%(f)s" "%(a)s"'


def configured(path: Path, **settings: str) -> Config:
    config = Config()
    config.set("accesslog", str(path))
    for name, value in settings.items():
        config.set(name, value)
    return config


def request(agent: str, path: str = "/b/a.txt") -> tuple[SimpleNamespace, SimpleNamespace, dict[str, str]]:
    answer = SimpleNamespace(status="200 OK", headers=[("Content-Type", "text/plain"), ("Content-Length", "1234")],
                             sent=0)  # sendfiled: gunicorn counts nothing sent
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path, "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_USER_AGENT": agent, "PATH_INFO": path, "QUERY_STRING": ""}
    return answer, SimpleNamespace(headers=[("USER-AGENT", agent)]), environ


def lines_of(logger: Logger, path: Path) -> list[str]:
    """What ``logger`` writes for two requests, timestamps aside. (gunicorn's loggers share the one Python
    logger "gunicorn.access": each is set up, used and read before the next.)"""
    for agent, uri in (("curl/7.88.1", "/b/a.txt"), ('ev"il', "/b/x%22y?list-type=2")):
        answer, sent, environ = request(agent, uri)
        logger.access(answer, sent, environ, timedelta(milliseconds=3))
    if isinstance(logger, BatchedAccessLog):
        logger.write_batch()
    return [re.sub(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", "[STAMP]", line)
            for line in path.read_text().splitlines()]


def test_a_line_is_what_gunicorn_writes_for_the_same_request(tmp_path: Path) -> None:
    ours = lines_of(BatchedAccessLog(configured(tmp_path / "ours.log")), tmp_path / "ours.log")
    theirs = lines_of(Logger(configured(tmp_path / "theirs.log", access_log_format=COMBINED_WITH_LENGTH)),
                      tmp_path / "theirs.log")
    assert ours == theirs and len(ours) == 2
    assert ours[0] == '127.0.0.1 - - [STAMP] "GET /b/a.txt HTTP/1.1" 200 1234 "-" "curl/7.88.1"'
    assert ours[1].endswith('"-" "ev\\"il"')  # the client's quote stays inside its field


def test_lines_reach_the_file_a_batch_at_a_time(tmp_path: Path) -> None:
    log = BatchedAccessLog(configured(tmp_path / "access.log"))
    answer, sent, environ = request("curl")
    for _ in range(BATCH_LINES - 1):
        log.access(answer, sent, environ, timedelta(0))
    assert (tmp_path / "access.log").read_text() == ""  # held: one write a batch
    log.access(answer, sent, environ, timedelta(0))
    assert len((tmp_path / "access.log").read_text().splitlines()) == BATCH_LINES
    log.access(answer, sent, environ, timedelta(0))
    log.write_batch()  # what the flusher does each second, and the worker's exit
    assert len((tmp_path / "access.log").read_text().splitlines()) == BATCH_LINES + 1
