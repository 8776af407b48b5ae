"""Slow or half-open clients cannot hold the API: a connection that stalls mid-request is closed after
api.client_timeout_s (a stalled body gets 408), so the API's threads come back. With a long timeout the
same stall does hold every thread: the control that shows the check can fail."""
from __future__ import annotations

import http.client
import socket
import time

import orjson
import pytest
import requests

from tests.nodes import Node, running

STALLERS = 8  # four times the API's threads: one worker (so none can take the check's request aside), 2 threads


def stall(port: int, payload: bytes, count: int) -> list[socket.socket]:
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(payload)
        connections.append(connection)
    return connections


@pytest.mark.parametrize("client_timeout_s, answers", [(1, True), (600, False)])
def test_stalled_headers_do_not_hold_the_api(client_timeout_s: float, answers: bool) -> None:
    node = Node(api={"workers": 1, "threads": 2, "client_timeout_s": client_timeout_s})
    with running(node):
        connections = stall(node.port, b"GET /api/health HTTP/1.1\r\nHost: x\r\n", STALLERS)
        try:
            time.sleep(0.5)
            try:
                answered = requests.get(f"{node.url}/api/health", timeout=10).ok  # ~4 rounds of 1 s timeouts
            except requests.Timeout:
                answered = False
            assert answered == answers
        finally:
            for connection in connections:
                connection.close()


def test_a_stalled_body_gets_408_and_nothing_is_left(start_node) -> None:
    node = start_node(api={"client_timeout_s": 1})
    before = node.resources()
    head = (b"POST /api/workloads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n{\"type\": \"process\"")
    connection = stall(node.port, head, 1)[0]
    connection.settimeout(10)
    answer = http.client.HTTPResponse(connection)  # headers and body may come in separate segments
    answer.begin()
    body = orjson.loads(answer.read())
    connection.close()
    assert answer.status == 408 and body["error"] == "request_timeout", body
    assert node.resources() == before and node.api("GET", "/api/workloads").json()["count"] == 0
    assert "Traceback" not in node.log("api.log")
