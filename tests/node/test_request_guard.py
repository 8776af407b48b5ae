"""Requests must be meant: the drive-by request a web page can send, and DNS rebinding, against a real node.

Each attack has its control: the same request made as the console or the CLI makes it succeeds.
"""
from __future__ import annotations

import os
import uuid

import pytest
import requests

from tests.support.nodes import Node, wait_for

PROOF = "/tmp/cnet-drive-by-proof-{}"


def raw(node: Node, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, node.url + path, timeout=30, **kwargs)


def count(node: Node) -> int:
    return node.api("GET", "/api/workloads").json()["count"]


def body(proof: str) -> bytes:
    return ('{"type":"process","config":{"command":"sh","args":["-c","id > %s"]}}' % proof).encode()


def test_the_drive_by_request_runs_nothing(shared_node: Node) -> None:
    proof = PROOF.format(uuid.uuid4().hex)
    before = count(shared_node)
    answer = raw(shared_node, "POST", "/api/workloads", data=body(proof),
                 headers={"Host": f"attacker.example:{shared_node.port}", "Origin": "http://attacker.example",
                          "Content-Type": "text/plain"})
    assert answer.status_code == 421 and answer.json()["error"] == "misdirected_request"
    assert count(shared_node) == before and not os.path.exists(proof)


@pytest.mark.parametrize("headers, status, error", [
    ({"Host": "attacker.example"}, 421, "misdirected_request"),  # a rebound name
    ({"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ({"Content-Type": ""}, 415, "unsupported_media_type"),  # a body with no type
    ({"Origin": "http://attacker.example"}, 403, "foreign_origin"),
    ({"Origin": "http://127.0.0.1:1"}, 403, "foreign_origin"),  # another local web app
    ({"Origin": "null"}, 403, "foreign_origin"),
])
def test_each_rule_refuses_alone(shared_node: Node, headers: dict[str, str], status: int, error: str) -> None:
    proof = PROOF.format(uuid.uuid4().hex)
    before = count(shared_node)
    answer = raw(shared_node, "POST", "/api/workloads", data=body(proof),
                 headers={"Content-Type": "application/json", **headers})
    assert answer.status_code == status and answer.json()["error"] == error, answer.text
    assert count(shared_node) == before and not os.path.exists(proof)


@pytest.mark.parametrize("headers", [
    {},  # the CLI, curl, another node: no Origin
    {"Origin": "CONSOLE"},  # the console's own page
    {"Host": "localhost:PORT"},
])
def test_controls_the_same_request_as_meant_succeeds(shared_node: Node, headers: dict[str, str]) -> None:
    proof = PROOF.format(uuid.uuid4().hex)
    headers = {name: value.replace("CONSOLE", shared_node.url).replace("PORT", str(shared_node.port))
               for name, value in headers.items()}
    answer = raw(shared_node, "POST", "/api/workloads", data=body(proof),
                 headers={"Content-Type": "application/json", **headers})
    assert answer.status_code == 201, answer.text
    wait_for(lambda: os.path.exists(proof))  # it ran: the control is real
    shared_node.api("DELETE", f"/api/workloads/{answer.json()['id']}")
    os.unlink(proof)


def test_a_rebound_name_cannot_read_either(shared_node: Node) -> None:
    assert raw(shared_node, "GET", "/api/workloads", headers={"Host": "attacker.example"}).status_code == 421
    assert raw(shared_node, "GET", "/api/workloads").status_code == 200


def test_a_bodyless_stop_from_the_cli_still_works(shared_node: Node) -> None:
    record = shared_node.submit({"command": "sleep", "args": ["60"]}).json()
    assert raw(shared_node, "POST", f"/api/workloads/{record['id']}/stop").json()["status"] == "stopped"
    shared_node.api("DELETE", f"/api/workloads/{record['id']}")
