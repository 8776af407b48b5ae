"""Deployments of replicas without processes: what a submission may ask for, how a deployment's status
follows its replicas, and which replica the balancer offers next."""
from __future__ import annotations

import pytest

from cnetd.common.errors import Invalid
from cnetd.api.balancer import Balancer
from cnetd.core.deployment_spec import DeploymentSpec, replica_record
from cnetd.core.deployment_state import deployment_status
from cnetd.core.submission import parse_submission
from ledger.records import Resources, WorkloadRecord

pytestmark = pytest.mark.unit
FACES = {"type": "opencv", "config": {"cascade_type": "face"}, "requirements": {"cpu": 1}}


def test_a_submission_with_replicas_is_a_deployment_with_its_defaults() -> None:
    record = parse_submission({**FACES, "id": "faces", "replicas": 3})
    spec = DeploymentSpec.of(record)
    assert (spec.replicas, spec.spread, spec.placement, spec.revision, spec.rollout) == (3, "node", "all-or-nothing", 1, None)
    assert [(item["revision"], item["state"], item["config"]) for item in spec.revisions] == [(1, "active", FACES["config"])]
    assert spec.update_policy.max_parallel == 1 and spec.update_policy.auto_revert
    assert spec.reschedule_policy.delay_after(0) == 5.0 and spec.reschedule_policy.delay_after(10) == 60.0
    assert parse_submission(FACES).deployment is None
    assert DeploymentSpec.of(parse_submission({**FACES, "replicas": 2.0})).replicas == 2  # JSON Schema's integer
    spread = parse_submission({**FACES, "replicas": 2, "spread": "any", "placement": "best-effort"})
    assert (DeploymentSpec.of(spread).spread, DeploymentSpec.of(spread).placement) == ("any", "best-effort")


@pytest.mark.parametrize("fields, says", [
    ({"replicas": 0}, "replicas: expected a whole number from 1 to 64"),
    ({"replicas": 65}, "from 1 to 64"),
    ({"replicas": "3"}, "whole number"),
    ({"replicas": True}, "whole number"),
    ({"replicas": 2.5}, "whole number"),
    ({"spread": "node"}, "spread: only with replicas"),
    ({"replicas": 2, "spread": "rack"}, "spread: expected one of node, any"),
    ({"replicas": 2, "placement": "some"}, "placement: expected one of all-or-nothing, best-effort"),
    ({"replicas": 2, "id": "d" * 57}, "at most 56 characters"),
    ({"update": {"canary": 1}}, "update: only with replicas"),
    ({"replicas": 2, "update": {"max_parallel": 0}}, "update.max_parallel: expected a whole number from 1"),
    ({"replicas": 2, "update": {"speed": 3}}, "update: unknown field"),
    ({"replicas": 2, "update": {"auto_revert": "yes"}}, "update.auto_revert: expected true or false"),
    ({"replicas": 2, "reschedule": {"delay_s": 10, "max_delay_s": 5}}, "reschedule.max_delay_s"),
])
def test_a_deployment_asks_only_for_what_can_be(fields: dict, says: str) -> None:
    with pytest.raises(Invalid, match=says):
        parse_submission({**FACES, **fields})


def test_only_services_of_a_model_have_replicas() -> None:
    with pytest.raises(Invalid, match="a process workload has no replicas"):
        parse_submission({"type": "process", "config": {"command": "sleep"}, "replicas": 2})


def test_the_fingerprint_tells_a_deployment_from_the_same_single_workload() -> None:
    assert parse_submission({**FACES, "replicas": 2}).fingerprint != parse_submission(FACES).fingerprint


def test_a_replica_is_its_deployment_under_its_own_id() -> None:
    deployment = parse_submission({**FACES, "id": "faces", "replicas": 2})
    replica = replica_record(deployment, 7)
    assert (replica.id, replica.replica_of, replica.deployment, replica.revision) == ("faces-r7", "faces", None, 1)
    assert (replica.config, replica.requirements, replica.type) == (deployment.config, Resources(cpu=1), "opencv")


def _view(status: str, health_failures: int = 0) -> dict:
    return {"status": status, "health_failures": health_failures}


@pytest.mark.parametrize("views, status", [
    ([_view("running")] * 3, "running"),
    ([_view("running"), _view("running"), _view("running", health_failures=1)], "running"),  # one failure: kept
    ([_view("running"), _view("running"), _view("running", health_failures=2)], "degraded"),  # two in a row: out
    ([_view("running"), _view("lost"), _view("starting")], "degraded"),
    ([_view("starting"), _view("delegating")], "starting"),
    ([_view("failed"), _view("lost")], "failed"),
    ([], "failed"),
])
def test_a_deployment_is_as_healthy_as_its_replicas(views: list[dict], status: str) -> None:
    assert deployment_status(3 if views else 1, False, views) == status
    assert deployment_status(3, True, views) == "stopped"


def _replicas(count: int) -> list[WorkloadRecord]:
    return [WorkloadRecord(id=f"d-r{index}", type="opencv", name="d", config={}, requirements=Resources())
            for index in range(count)]


def test_the_balancer_sends_to_the_least_outstanding_then_the_one_picked_longest_ago() -> None:
    balancer, replicas = Balancer(), _replicas(3)
    sent = []
    for _ in range(6):
        first = balancer.order(replicas)[0]
        with balancer.sending(first.id):
            sent.append(first.id)
    assert sent == ["d-r0", "d-r1", "d-r2"] * 2
    with balancer.sending("d-r0"), balancer.sending("d-r1"):
        assert [replica.id for replica in balancer.order(replicas)] == ["d-r2", "d-r0"]
    for _ in range(4):  # d-r2 away: the others share; back, it takes its turn, not every request
        with balancer.sending(balancer.order(replicas[:2])[0].id):
            pass
    assert balancer.order(replicas)[0].id == "d-r2"
    with balancer.sending("d-r2"):
        pass
    assert balancer.order(replicas)[0].id != "d-r2"


def test_an_ejected_replica_is_offered_last_and_a_request_at_most_twice() -> None:
    balancer, replicas = Balancer(), _replicas(3)
    balancer.eject("d-r0")
    balancer.eject("d-r1")
    assert [replica.id for replica in balancer.order(replicas)] == ["d-r2", "d-r0"]
    assert [replica.id for replica in balancer.order(replicas[:1])] == ["d-r0"]
