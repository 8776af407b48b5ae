"""The API's handlers alone, under falcon.testing: a real ledger and node table in a temporary directory,
no processes. The scheduler channel is a small stand-in that admits into that ledger (the real scheduler is
tested with real nodes); what matters here is what the handlers send it and how they answer."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import pytest
from falcon import testing

from cnetd.api.app import create_app
from cnetd.api.base import ApiDeps
from cnetd.core.remote import RemoteWorkloads
from cnetd.common.errors import InsufficientResources
from cnetd.core.config import parse_config
from ledger.catalog import Catalog
from ledger.nodetable import NodeTable
from ledger.records import Status, WorkloadRecord
from ledger.store import Ledger
from tests.support.nodes import GIB

HOST = {"Host": "127.0.0.1:8080"}


class SchedulerStandIn:
    """Records every call; ``submit`` admits the workload as running, unless told to refuse."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger, self.calls, self.refuse = ledger, [], False

    def __call__(self, op: str, **args: Any) -> Any:
        self.calls.append((op, args))
        if self.refuse:
            raise InsufficientResources("cpu: 64 wanted, 4 free")
        record = WorkloadRecord.from_dict(args["workload"])
        admitted = self.ledger.admit(dataclasses.replace(record, status=Status.RUNNING, node="unit"))
        return {"placed": admitted.to_dict()}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[testing.TestClient, SchedulerStandIn]]:
    config = parse_config({"agent": {"node_id": "unit", "address": "127.0.0.1", "port": 8080,
                                     "runtime_dir": str(tmp_path / "rt")},
                           "resources": {"cpu": 4, "memory": 4 * GIB, "storage": GIB, "gpu": 0},
                           "storage": {"sqlite": {"db_path": str(tmp_path / "catalog.db"),
                                                  "data_path": str(tmp_path / "data")}}})
    ledger = Ledger(str(tmp_path / "ledger"))
    ledger.set_node({"node_id": "unit", "api_url": config.api_url, "mesh_endpoint": config.mesh_endpoint,
                     "started_at": 0.0, "boot_id": "b1"}, config.capacity, [])
    nodes = NodeTable(str(tmp_path / "nodes"))
    scheduler = SchedulerStandIn(ledger)
    deps = ApiDeps(config=config, ledger=ledger, nodes=nodes, schedule=scheduler, announce_neighbours=lambda: None,
                   remote=RemoteWorkloads(nodes, config.heartbeat_period_s, None), catalog=Catalog(config.db_path))
    yield testing.TestClient(create_app(deps)), scheduler
    ledger.close()


def test_health_names_the_node(api) -> None:
    client, _ = api
    answer = client.simulate_get("/api/health", headers=HOST)
    assert answer.status_code == 200 and answer.json["node"] == "unit" and answer.json["status"] == "ok"


def test_a_submission_goes_to_the_scheduler_and_its_admission_is_the_answer(api) -> None:
    client, scheduler = api
    answer = client.simulate_post("/api/workloads", json={"type": "process", "config": {"command": "true"},
                                                          "requirements": {"cpu": 1}}, headers=HOST)
    assert answer.status_code == 201 and answer.json["status"] == "running", answer.json
    [(op, args)] = scheduler.calls
    assert op == "submit" and args["workload"]["requirements"]["cpu"] == 1 and args["visited"] == []
    listed = client.simulate_get("/api/workloads", headers=HOST).json
    assert [view["id"] for view in listed["workloads"]] == [answer.json["id"]]


def test_bad_input_is_a_json_4xx_and_reaches_no_scheduler(api) -> None:
    client, scheduler = api
    for body in (b"{not json", b"[]", b'{"type": "process", "requirements": {"cpu": -1}}'):
        answer = client.simulate_post("/api/workloads", body=body, headers={**HOST, "Content-Type": "application/json"})
        assert answer.status_code == 400 and answer.json["error"] == "invalid_request", answer.text
    assert scheduler.calls == []
    missing = client.simulate_get("/api/workloads/nope", headers=HOST)
    assert missing.status_code == 404 and missing.json["error"] == "not_found"


def test_a_scheduler_refusal_keeps_its_kind(api) -> None:
    client, scheduler = api
    scheduler.refuse = True
    answer = client.simulate_post("/api/workloads", json={"type": "process", "config": {"command": "true"},
                                                          "requirements": {"cpu": 64}}, headers=HOST)
    assert answer.status_code == 409 and answer.json["error"] == "insufficient_resources"


def test_a_name_the_node_is_not_known_by_is_refused_before_any_handler(api) -> None:
    client, scheduler = api
    answer = client.simulate_post("/api/workloads", json={"type": "process", "config": {"command": "true"}},
                                  headers={"Host": "attacker.example"})
    assert answer.status_code == 421 and scheduler.calls == []
