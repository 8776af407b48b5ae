"""How a deployment stands, from what its replicas say: which replica is in rotation, and the deployment's
status (running N/N, degraded, starting, failed, stopped). The API shows it; the controller records it."""
from __future__ import annotations

from typing import Any

from cnetd.core.deployment_spec import DeploymentSpec
from ledger.records import Desired, Status, WorkloadRecord

STARTING_STATUSES = (Status.PENDING, Status.STARTING, Status.DELEGATING, Status.UNKNOWN)
SHOWN_FIELDS = ("id", "node", "endpoint", "status", "restarts", "health_failures", "revision")
# A replica leaves the rotation at its second failed health check in a row (Kubernetes' readiness probes wait
# for three): one check that timed out while the replica's cores were taken (two replicas warming up beside
# it) took the only serving replica of a deployment out for a whole health.interval_s, every request
# answered 503 meanwhile. The monitor checks a failing service again within a second.
FAILURES_OUT_OF_ROTATION = 2


def in_a_deployment(stored: dict[str, Any]) -> bool:
    """Whether a record (its stored JSON) is a deployment or one of its replicas: what the deployment controller
    makes each round, leaving out what runs on its own (with 1,000 such, the rounds made each of them four times
    a second)."""
    return stored.get("deployment") is not None or stored.get("replica_of") is not None


def in_rotation(status: str, health_failures: int, retired: bool) -> bool:
    """A replica that gets requests: running, not failing its health checks (fewer than
    ``FAILURES_OUT_OF_ROTATION`` in a row), and not taken out."""
    return status == Status.RUNNING and health_failures < FAILURES_OUT_OF_ROTATION and not retired


def healthy_count(active: list[dict[str, Any]]) -> int:
    """How many of a deployment's replicas (their views) are in rotation."""
    return sum(in_rotation(view["status"], view.get("health_failures", 0), False) for view in active)


def deployment_status(desired: int, stopped: bool, active: list[dict[str, Any]]) -> str:
    if stopped:
        return Status.STOPPED
    healthy = healthy_count(active)
    if healthy >= desired:
        return Status.RUNNING
    if healthy:
        return Status.DEGRADED
    if any(view["status"] in STARTING_STATUSES for view in active):
        return Status.STARTING
    return Status.FAILED


def deployment_view(record: WorkloadRecord, members: list[WorkloadRecord], views: list[dict[str, Any]]) -> dict[str, Any]:
    """The deployment's status, counts and instances, from its member records and their live views."""
    spec = DeploymentSpec.of(record)
    active = [view for member, view in zip(members, views) if not member.retired]
    stopped = record.desired == Desired.STOP
    healthy = healthy_count(active)
    instances = [{name: view.get(name) for name in SHOWN_FIELDS}
                 | {"revision": member.revision or 1, "retired_because": member.retired_because or None}
                 for member, view in zip(members, views)]
    return {"status": deployment_status(spec.replicas, stopped, active),
            "deployment": {**spec.to_dict(), "healthy": healthy, "instances": instances,
                           "summary": f"running {healthy}/{spec.replicas}" if spec.replicas or healthy
                           else "scaled to zero (a request starts a replica)"}}


def starting_replicas(view: dict[str, Any]) -> bool:
    """A deployment's view in which a replica it keeps is still starting (or being delegated)."""
    return any(instance["status"] in STARTING_STATUSES and not instance["retired_because"]
               for instance in view["deployment"]["instances"])


def members_of(records: list[WorkloadRecord], deployment_id: str) -> list[WorkloadRecord]:
    return sorted((record for record in records if record.replica_of == deployment_id),
                  key=lambda record: int(record.id.rsplit("-r", 1)[1]))
