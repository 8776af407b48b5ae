"""Slow clients cannot starve anything: a request must arrive whole, by a deadline, before a thread takes it
(``cnetd.common.http_worker``). The server-level tests run one small app under gunicorn with our worker and,
as the control that shows they can fail, with stock ``gthread``; the node-level test trickles 150 clients
at the API and at a service while their health checks keep answering."""
from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import orjson
import pytest
import requests

from cnetd.common.http_worker import asks_for_health
from tests.support.nodes import Node, free_port, wait_until_answers
from tests.support.trickle import ENDLESS_HEAD, Tricklers, p99, probe

REPO = Path(__file__).resolve().parents[2]
DEADLINE_WORKER = "cnetd.common.http_worker.DeadlineWorker"


@contextlib.contextmanager
def slow_app(worker_class: str, timeout_s: float = 30.0, threads: int = 2,
             stalled_after_s: float | None = None) -> Iterator[int]:
    """tests.support.slow_app under gunicorn (one worker, ``threads`` threads); yields its port."""
    with slow_app_process(worker_class, timeout_s, threads, stalled_after_s) as (port, _):
        yield port


@contextlib.contextmanager
def slow_app_process(worker_class: str, timeout_s: float = 30.0, threads: int = 2,
                     stalled_after_s: float | None = None) -> Iterator[tuple[int, subprocess.Popen]]:
    """As ``slow_app``, yielding the gunicorn master's process too."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--worker-class", worker_class, "--workers", "1", "--threads",
         str(threads), "--bind", f"127.0.0.1:{port}", "--no-control-socket", "--config", "python:tests.support.slow_app",
         "tests.support.slow_app:app"],
        cwd=REPO, env={**os.environ, "SLOW_APP_TIMEOUT_S": str(timeout_s),
                       **({"SLOW_APP_STALLED_AFTER_S": str(stalled_after_s)} if stalled_after_s else {})},
        start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/health", process=process)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_answer(connection: socket.socket) -> tuple[int, dict]:
    connection.settimeout(20)
    answer = http.client.HTTPResponse(connection)
    answer.begin()
    return answer.status, orjson.loads(answer.read())


@pytest.mark.parametrize("worker_class, answers", [(DEADLINE_WORKER, True), ("gthread", False)])
def test_trickling_clients_cannot_take_the_threads(worker_class: str, answers: bool) -> None:
    with slow_app(worker_class) as port, Tricklers(port, count=20, interval_s=0.5):
        time.sleep(1)  # every trickler has sent bytes: stock gthread has given each of its threads to one
        latencies = probe(f"http://127.0.0.1:{port}/health", duration_s=2, interval_s=0.5)
    assert (max(latencies) < 5) == answers, latencies


@pytest.mark.parametrize("worker_class, answers", [(DEADLINE_WORKER, True), ("gthread", False)])
def test_next_requests_trickled_on_kept_alive_connections_cannot_take_the_threads(worker_class: str,
                                                                                  answers: bool) -> None:
    """A thread that has answered waits a moment on its connection for the next request; one that then only
    begins goes to the event loop to arrive, and does not keep the thread."""
    with slow_app(worker_class) as port, Tricklers(port, count=20, interval_s=0.5, kept_alive=True):
        time.sleep(1)
        latencies = probe(f"http://127.0.0.1:{port}/health", duration_s=2, interval_s=0.5)
    assert (max(latencies) < 5) == answers, latencies


@pytest.mark.parametrize("worker_class, answered_first", [(DEADLINE_WORKER, True), ("gthread", False)])
def test_a_health_check_does_not_wait_behind_a_busy_thread(worker_class: str, answered_first: bool) -> None:
    """A service of one thread (half a core) busy with a long prediction still answers its health checks, each
    of the forms the monitor and KServe v2 clients use, while the prediction runs. Control: stock gthread queues
    them behind it."""
    with slow_app(worker_class, threads=1) as port, ThreadPoolExecutor(1) as client:
        busy = client.submit(requests.post, f"http://127.0.0.1:{port}/busy", params={"seconds": 4}, timeout=30)
        time.sleep(0.5)  # the one thread has taken it
        statuses = [requests.request(method, f"http://127.0.0.1:{port}{path}", timeout=30).status_code
                    for method, path in (("GET", "/health?probe=1"), ("HEAD", "/health"), ("GET", "/v2/health/live"),
                                         ("GET", "/v2/health/ready"))]
        assert (not busy.done()) == answered_first, statuses
        assert statuses == [200, 405, 404, 404]  # HEAD and v2 are no routes of this app: answered all the same
        assert busy.result().json() == {"busy_s": 4}


def test_a_service_whose_threads_are_stuck_fails_its_health_checks() -> None:
    """Health checks on a thread of their own must not hide a service whose threads are all stuck: once requests
    have waited ``stalled_after_s`` with none taken, /health is 503. The control: busy, with a queue that has
    only just begun, it is 200, and so it is again once the queue moves."""
    with slow_app(DEADLINE_WORKER, threads=1, stalled_after_s=1.5) as port, ThreadPoolExecutor(2) as clients:
        url = f"http://127.0.0.1:{port}"
        stuck = clients.submit(requests.post, f"{url}/busy", params={"seconds": 5}, timeout=30)
        time.sleep(0.5)  # the one thread has taken it
        waiting = clients.submit(requests.post, f"{url}/busy", params={"seconds": 0}, timeout=30)
        time.sleep(0.2)  # it waits for the thread
        assert requests.get(f"{url}/health", timeout=30).status_code == 200
        time.sleep(2)
        stalled = requests.get(f"{url}/health", timeout=30)
        assert stalled.status_code == 503 and "stalled" in stalled.json()["message"], stalled.text
        assert stuck.result().status_code == 200 and waiting.result().status_code == 200
        assert requests.get(f"{url}/health", timeout=30).status_code == 200


def test_only_a_get_or_head_of_a_health_path_takes_the_health_thread() -> None:
    for head in (b"POST /health HTTP/1.1\r\n\r\n", b"GET /healthy HTTP/1.1\r\n\r\n", b"GET /x/health HTTP/1.1\r\n\r\n",
                 b"GET /predict HTTP/1.1\r\n\r\n", b"GET\r\n\r\n", b"\r\n\r\n"):
        assert not asks_for_health(head), head


def test_a_graceful_stop_closes_idle_connections_and_finishes_a_request_under_way() -> None:
    with slow_app_process(DEADLINE_WORKER) as (port, server):
        idle = socket.create_connection(("127.0.0.1", port))  # kept alive after one answer
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(idle) == (200, {"status": "healthy"})
        silent = socket.create_connection(("127.0.0.1", port))  # accepted, its request not begun
        under_way = socket.create_connection(("127.0.0.1", port))
        under_way.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
        time.sleep(0.5)  # the server has read what was sent
        server.terminate()
        for closed in (idle, silent):
            closed.settimeout(20)
            assert closed.recv(1) == b""  # closed by the server, while a request is still arriving
        assert server.poll() is None
        under_way.sendall(b"cde")
        assert read_answer(under_way) == (200, {"received_bytes": 5})  # control: it waited for this one
        server.wait(timeout=20)
        for connection in (idle, silent, under_way):
            connection.close()


@pytest.mark.parametrize("worker_class, answered", [(DEADLINE_WORKER, True), ("gthread", False)])
def test_a_request_that_arrives_as_its_kept_alive_connection_expires_is_answered(worker_class: str,
                                                                                 answered: bool) -> None:
    """gunicorn closes an expired kept-alive connection even when its next request arrived after the loop's
    last poll; its client then has no answer and cannot know whether the request was taken."""
    with slow_app(worker_class) as port:  # keep-alive 2 s, gunicorn's default
        kept = socket.create_connection(("127.0.0.1", port))
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(kept) == (200, {"status": "healthy"})
        time.sleep(1.2)
        # The loop stalls 1.5 s: past the connection's expiry, before it next closes expired connections.
        assert requests.post(f"http://127.0.0.1:{port}/stall-loop", params={"seconds": 1.5}, timeout=20).ok
        time.sleep(0.5)
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # arrives during the stall, not yet expired
        try:
            outcome = read_answer(kept)
        except OSError as exc:  # reset, or closed without an answer
            outcome = exc
        kept.close()
    assert (outcome == (200, {"status": "healthy"})) == answered, outcome


def test_a_trickled_request_meets_its_deadline_and_a_slow_complete_one_does_not() -> None:
    with slow_app(DEADLINE_WORKER, timeout_s=2) as port:
        slow_but_whole = socket.create_connection(("127.0.0.1", port))  # control: whole within the deadline
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n":
            slow_but_whole.send(bytes([byte]))
            time.sleep(0.02)
        assert read_answer(slow_but_whole) == (200, {"status": "healthy"})
        slow_but_whole.close()

        trickled = socket.create_connection(("127.0.0.1", port))
        trickled.sendall(ENDLESS_HEAD)
        started = time.monotonic()
        trickled.setblocking(False)
        answer = b""
        while time.monotonic() - started < 20 and not answer:
            with contextlib.suppress(BlockingIOError):
                answer = trickled.recv(4096)
            try:
                trickled.send(b"a")
            except BlockingIOError:
                pass
            except OSError:  # closed: what it answered is waiting to be read
                trickled.setblocking(True)
                trickled.settimeout(5)
                answer = trickled.recv(4096)
            time.sleep(0.2)
        trickled.close()
        took_s = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ") and orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == \
        "request_timeout", answer
    assert took_s < 15, took_s  # cut near its 2 s deadline, though it never stopped sending


BIG_BODY = 300 * 1024  # above what the event loop holds: the thread reads it, under the deadline


@pytest.mark.parametrize("pause_s, status", [(0.0, 200), (0.5, 408)])
def test_a_large_body_must_keep_a_minimum_rate(pause_s: float, status: int) -> None:
    with slow_app(DEADLINE_WORKER, timeout_s=2) as port:
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                           b"Content-Length: %d\r\n\r\n" % BIG_BODY)
        sent = 0
        with contextlib.suppress(OSError):  # the server may cut the slow one while it still sends
            while sent < BIG_BODY:
                piece = 64 * 1024 if not pause_s else 1024
                connection.sendall(b"x" * min(piece, BIG_BODY - sent))
                sent += piece
                time.sleep(pause_s)
                if pause_s and sent > 16 * 1024:
                    break  # far below 16 KiB/s: the deadline has passed
        code, body = read_answer(connection)
        connection.close()
    assert code == status, body
    if status == 200:
        assert body == {"received_bytes": BIG_BODY}
    else:
        assert body["error"] == "request_timeout"


def test_keep_alive_pipelining_split_bodies_and_expect_continue_still_work() -> None:
    with slow_app(DEADLINE_WORKER) as port:
        with requests.Session() as session:
            assert [session.get(f"http://127.0.0.1:{port}/health").ok for _ in range(3)] == [True] * 3

        pipelined = socket.create_connection(("127.0.0.1", port))
        pipelined.settimeout(10)
        pipelined.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        answers = b""
        while answers.count(b'"healthy"') < 2:
            chunk = pipelined.recv(4096)
            assert chunk, answers
            answers += chunk
        pipelined.close()

        split = socket.create_connection(("127.0.0.1", port))
        split.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n")
        time.sleep(0.3)
        split.sendall(b'{"a":1}')
        assert read_answer(split) == (200, {"received_bytes": 7})
        split.close()

        continued = socket.create_connection(("127.0.0.1", port))
        continued.settimeout(10)
        continued.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                          b"Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
        assert continued.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        continued.sendall(b"x" * 1000)
        assert read_answer(continued) == (200, {"received_bytes": 1000})
        continued.close()


def test_a_stalled_body_gets_408_and_nothing_is_left(start_node) -> None:
    node = start_node(api={"client_timeout_s": 1})
    before = node.resources()
    head = (b"POST /api/workloads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n{\"type\": \"process\"")
    connection = socket.create_connection(("127.0.0.1", node.port))
    connection.sendall(head)
    status, body = read_answer(connection)
    connection.close()
    assert status == 408 and body["error"] == "request_timeout", body
    assert node.resources() == before and node.api("GET", "/api/workloads").json()["count"] == 0
    assert "Traceback" not in node.log("api.log")


def test_150_trickling_clients_starve_neither_the_api_nor_a_service(start_node) -> None:
    node: Node = start_node(health={"interval_s": 2})
    record = node.submit({"cascade_type": "face"}, {"cpu": 1}, workload_type="opencv").json()
    assert record["status"] == "running", record
    service_port = int(record["endpoint"].rsplit(":", 1)[1])
    with Tricklers(node.port, 150, interval_s=4), Tricklers(service_port, 150, interval_s=4):
        api_latencies, service_latencies = [], []
        for _ in range(4):  # interleaved, 8 s in all: several health-check rounds of the node's own
            api_latencies += probe(f"{node.url}/api/health", duration_s=1)
            service_latencies += probe(f"{record['endpoint']}/health", duration_s=1)
    assert p99(api_latencies) < 1 and p99(service_latencies) < 1, (api_latencies, service_latencies)
    after = node.workload(record["id"])
    assert after["status"] == "running" and after["restarts"] == 0, after
