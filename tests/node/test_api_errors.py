"""Bad input to a real node's API: a 4xx with {"error", "message"}, never a 500, and nothing allocated."""
from __future__ import annotations

import pytest
import requests

from tests.support.nodes import Node

SLEEP = {"command": "sleep", "args": ["1"]}


@pytest.mark.parametrize("body, status, code, words", [
    (b"", 400, "invalid_request", "empty"),
    (b"{not json", 400, "invalid_request", "not valid JSON"),
    (b"[1, 2]", 400, "invalid_request", "JSON object"),
    (b'{"config": {}}', 400, "invalid_request", "type"),
    (b'{"type": "teleport"}', 400, "invalid_request", "unknown workload type 'teleport' (supported: "),
    (b'{"type": "process", "extra": 1}', 400, "invalid_request", "unknown field(s) extra"),
    (b'{"type": "process", "config": {}}', 400, "invalid_request", "config.command"),
    (b'{"type": "process", "config": {"command": "no-such-binary"}}', 422, "unprocessable", "not an executable"),
    (b'{"type": "process", "config": {"command": "sleep 5"}}', 422, "unprocessable", "config.args"),
    (b'{"type": "process", "config": {"command": "sleep", "args": "5"}}', 400, "invalid_request", "config.args"),
    (b'{"type": "process", "config": {"command": "sleep", "env": {"A": 1}}}', 400, "invalid_request", "config.env"),
    (b'{"type": "process", "config": {"command": "sleep", "working_dir": "/nope"}}', 422, "unprocessable", "working_dir"),
    (b'{"type": "process", "name": null, "config": {"command": "sleep"}}', 400, "invalid_request", "name"),
    (b'{"type": "opencv", "name": "a\\u0000b"}', 400, "invalid_request", "control character"),  # on a command line
    (b'{"type": "opencv", "name": "two\\nlines"}', 400, "invalid_request", "control character"),
    (b'{"type": "opencv", "replicas": 2, "placement": "some"}', 400, "invalid_request", "placement"),
    (b'{"type": "container", "replicas": 2, "config": {"image": "x"}}', 400, "invalid_request", "no replicas"),
    (b'{"type": "opencv", "replicas": 2, "delegation": {"visited": ["elsewhere"]}}', 422, "unprocessable",
     "not forwarded"),  # found by fuzzing
    (b'{"type": "opencv", "config": {"cascade_type": {}}}', 400, "invalid_request", "cascade_type"),
    (b'{"type": "opencv", "config": {"service_port": 80}}', 422, "unprocessable", "privileged port"),
    (b'{"type": "process", "delegation": {"visited": [], "settle": true}}', 400, "invalid_request", "settle"),
    (b'{"type": "process", "config": {"command": "sleep", "restart": "sometimes"}}', 400, "invalid_request", "restart"),
    (b'{"type": "process", "config": {"command": "sleep"}, "requirements": {"cpu": -1}}', 400, "invalid_request", "negative"),
    (b'{"type": "process", "config": {"command": "sleep"}, "requirements": {"cpu": "two"}}', 400, "invalid_request", "number"),
    (b'{"type": "process", "config": {"command": "sleep"}, "requirements": {"cpu": true}}', 400, "invalid_request", "number"),
    (b'{"type": "process", "config": {"command": "sleep"}, "requirements": {"memory": 1.5}}', 400, "invalid_request", "whole"),
    (b'{"type": "process", "config": {"command": "sleep"}, "requirements": {"cores": 1}}', 400, "invalid_request", "cores"),
    (b'{"type": "process", "config": {"command": "sleep"}, "requirements": {"cpu": 1000}}', 409, "insufficient_resources", "cpu"),
    (b'{"type": "process", "id": "Bad_Id!", "config": {"command": "sleep"}}', 400, "invalid_request", "id"),
])
def test_bad_submissions(shared_node: Node, body: bytes, status: int, code: str, words: str) -> None:
    before = shared_node.resources()
    count = shared_node.api("GET", "/api/workloads").json()["count"]
    answer = shared_node.api("POST", "/api/workloads", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code and words in answer.json()["message"]
    assert shared_node.resources() == before
    assert shared_node.api("GET", "/api/workloads").json()["count"] == count


def test_insufficient_resources_says_what_was_asked_and_what_is_free(shared_node: Node) -> None:
    answer = shared_node.submit(SLEEP, {"cpu": 64, "memory": 1})
    body = answer.json()
    assert answer.status_code == 409
    assert body["requested"]["cpu"] == 64.0 and body["available"]["cpu"] == shared_node.resources()["available"]["cpu"]


def test_oversized_body_is_413(shared_node: Node) -> None:
    # Its own connection: after a 413 the server may drop a connection whose body it did not read.
    answer = requests.post(f"{shared_node.url}/api/workloads", data=b"{" + b" " * (2 << 20) + b"}", timeout=60,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"] == "payload_too_large"


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/api/workloads/nope", 404),
    ("POST", "/api/workloads/nope/stop", 404),
    ("DELETE", "/api/workloads/nope", 404),
    ("GET", "/api/workloads/nope/logs", 404),
    ("POST", "/api/workloads/nope/predict", 404),
    ("GET", "/api/nowhere", 404),
    ("GET", "/ui/no-such-file.js", 404),
    ("PUT", "/api/health", 405),
])
def test_unknown_ids_routes_and_methods(shared_node: Node, method: str, path: str, status: int) -> None:
    answer = shared_node.api(method, path)
    assert answer.status_code == status and set(answer.json()) == {"error", "message"}


def test_predict_on_a_workload_that_is_no_service(shared_node: Node) -> None:
    record = shared_node.submit({"command": "sleep", "args": ["30"]}).json()
    answer = shared_node.api("POST", f"/api/workloads/{record['id']}/predict", data=b"x",
                             headers={"Content-Type": "image/png"})
    assert answer.status_code == 409 and answer.json()["error"] == "not_a_service"
    assert "predictions need one of mlmodel, opencv" in answer.json()["message"]
    shared_node.api("DELETE", f"/api/workloads/{record['id']}")


def test_an_id_names_one_submission(shared_node: Node) -> None:
    first = shared_node.api("POST", "/api/workloads", json={"id": "once", "type": "process", "config": SLEEP})
    again = shared_node.api("POST", "/api/workloads", json={"id": "once", "type": "process", "config": SLEEP})
    other = shared_node.api("POST", "/api/workloads", json={"id": "once", "type": "process", "config": {"command": ""}})
    try:
        assert first.status_code == 201 and again.status_code == 201 and again.json()["id"] == "once"  # a retry
        assert other.status_code == 409 and "different submission" in other.json()["message"], other.text
        assert "fingerprint" not in again.json()
    finally:
        shared_node.api("DELETE", "/api/workloads/once")


@pytest.mark.parametrize("parts, status, words", [
    ([("file", ("a.txt", b"1")), ("file", ("a.txt", b"2"))], 422, "'a.txt' twice"),
    ([("file", ("a", b"1")), ("file", ("a/b.txt", b"2"))], 422, "both a file and a directory"),
    ([("file", ("a.txt", b"1")), ("name", (None, "x")), ("name", (None, "y"))], 400, "'name' is given twice"),
    ([("file", ("a.txt", b"1")), ("file", ("b.txt", b"2"))], 201, ""),  # control: two names, stored
])
def test_uploads_whose_parts_collide(shared_node: Node, parts: list, status: int, words: str) -> None:
    before = shared_node.resources()
    answer = shared_node.api("POST", "/api/workloads", files=parts)
    assert answer.status_code == status and words in answer.text, answer.text
    if status == 201:
        shared_node.api("DELETE", f"/api/workloads/{answer.json()['id']}")
    assert shared_node.resources() == before


@pytest.mark.parametrize("field", [{"delegation": None}, {"delegation": {"visited": "x"}}, {"id": ""}, {"name": []},
                                   {"requirements": {"memory": 2**64}}])
def test_fields_found_by_fuzzing_are_refused(shared_node: Node, field: dict) -> None:
    answer = shared_node.api("POST", "/api/workloads", json={"type": "opencv", **field})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request", answer.text
    assert shared_node.api("GET", "/api/workloads").json()["count"] == 0


@pytest.mark.parametrize("headers, query, status, code", [
    ({}, "tail=" + "9" * 5000, 414, "uri_too_long"),  # refused by the HTTP server itself
    ({"X-Padding": "p" * 9000}, "", 431, "request_header_fields_too_large"),  # one header over its field limit
    ({}, "tail=5", 200, None),  # control: the same request, of a sane size
])
def test_what_the_http_server_refuses_is_json_too(shared_node: Node, headers: dict, query: str, status: int,
                                                   code: str | None) -> None:
    record = shared_node.submit({"command": "true"}).json()
    answer = requests.get(f"{shared_node.url}/api/workloads/{record['id']}/logs?{query}", headers=headers, timeout=30)
    assert answer.status_code == status and answer.headers["Content-Type"].startswith("application/json"), answer.text
    if code:
        assert answer.json()["error"] == code
    shared_node.api("DELETE", f"/api/workloads/{record['id']}")
