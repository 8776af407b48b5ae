"""The replica controller, a thread of the scheduler: keeps each deployment at its count of healthy replicas.

It places a deployment's replicas when it is submitted (all of them, or none for ``all-or-nothing``), then
every round: replaces a replica that ended ``failed`` (after its restarts) and one whose node has been
offline for ``replicas.lost_after_s`` (each a reschedule), adds or takes out replicas when the count is
changed, and stops and deletes what it took out once its in-flight requests have drained (a replica on an
offline node is deleted when that node comes back, so it is never counted twice).

Record, then act: a replica is taken out of the rotation in the ledger before it is stopped, and its
number is reserved in the deployment's record before it is placed. The controller is a client of its own
node: a replica is submitted to the scheduler (with ``replica_of``, which a user's submission never has),
and read, stopped and deleted through the node's API, exactly as a user's workload, so delegation, model
transfer, readiness and pointers have one code path.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import Any, Callable

from cnetd.common.errors import CnetError, DelegationUnknown, NotFound
from cnetd.common.httpclient import TimedOut, Unreachable, call
from cnetd.common.logs import workload_fields
from cnetd.core.metrics import REPLICA_EVENTS
from cnetd.core.deployment_spec import ALL_OR_NOTHING, DeploymentSpec, replica_record
from cnetd.core.deployment_state import deployment_status, members_of
from ledger.records import Desired, Status, WorkloadRecord
from ledger.store import Ledger

log = logging.getLogger("replicas")
ROUND_S = 0.5
DRAIN_S = 1.0  # a replica taken out of rotation is stopped this long after (gunicorn then drains what it holds)
PLACE_RETRY_S = 5.0  # after a replica could not be placed, the next try
API_TIMEOUT_S = 10.0
ENDED = (Status.FAILED, Status.COMPLETED, Status.STOPPED)
Submit = Callable[[WorkloadRecord], WorkloadRecord]  # the scheduler's submit of one replica (through its socket)


class ReplicaController(threading.Thread):
    def __init__(self, ledger: Ledger, submit: Submit, api_url: str, headers: dict[str, str],
                 lost_after_s: float) -> None:
        super().__init__(name="replicas", daemon=True)
        self._ledger = ledger
        self._submit = submit
        self._api_url = api_url
        self._headers = headers
        self._lost_after_s = lost_after_s
        self._lost_since: dict[str, float] = {}  # replica id → when it was first seen lost (monotonic)
        self._next_placement: dict[str, float] = {}  # deployment id → earliest retry after a refusal

    def run(self) -> None:
        while True:
            try:
                self.round()
            except Exception:
                log.exception("replica round failed")
            time.sleep(ROUND_S)

    # -- submission -----------------------------------------------------------------------------

    def deploy(self, deployment: WorkloadRecord) -> WorkloadRecord:
        """Place a new deployment's replicas (in a scheduler pool thread). ``all-or-nothing``: the first
        refusal takes back what was placed, the deployment's record too, and is the answer; ``best-effort``
        runs what fits, and says so (the rest is tried again every round)."""
        spec, placed = DeploymentSpec.of(deployment), []
        for number in range(spec.replicas):
            try:
                placed.append(self._place(deployment.id))
            except DelegationUnknown:
                continue  # its pointer settles; the rounds count it meanwhile
            except CnetError as exc:
                if spec.placement == ALL_OR_NOTHING or not placed:
                    for replica in placed:
                        self._api("DELETE", f"/api/workloads/{replica.id}")
                    self._ledger.remove(deployment.id)
                    exc.message = f"replica {number + 1} of {spec.replicas}: {exc.message}"
                    raise
                return self._ledger.update(deployment.id, _placed(
                    f"best-effort: {len(placed)} of {spec.replicas} replicas placed; {exc.message}"))
        return self._ledger.update(deployment.id, _placed(""))

    def _place(self, deployment_id: str) -> WorkloadRecord:
        """Reserve the next replica's number in the deployment's record, then submit that replica."""
        reserved: list[int] = []

        def take_number(record: WorkloadRecord) -> WorkloadRecord:
            spec = DeploymentSpec.of(record)
            reserved[:] = [spec.next_index]
            return dataclasses.replace(record, deployment={**spec.to_dict(), "next_index": spec.next_index + 1})
        deployment = self._ledger.update(deployment_id, take_number)
        return self._submit(replica_record(deployment, reserved[0]))

    # -- rounds ---------------------------------------------------------------------------------

    def round(self) -> None:
        records = self._ledger.workloads()
        deployments = {record.id: record for record in records if record.deployment is not None}
        for record in records:  # a replica placed while its deployment was deleted is not kept
            if record.replica_of is not None and record.replica_of not in deployments and not record.retired:
                self._retire(record, "its deployment was deleted")
        for deployment in deployments.values():
            if deployment.status != Status.PENDING:  # its first placement is still under way
                with contextlib.suppress(NotFound):  # deleted meanwhile: its replicas are orphans next round
                    self._keep(deployment, members_of(records, deployment.id))
        for record in self._ledger.workloads():
            if record.retired and time.time() - record.retired_at >= DRAIN_S:
                self._delete(record)

    def _keep(self, deployment: WorkloadRecord, members: list[WorkloadRecord]) -> None:
        views = self._views(members)
        if views is None:
            return  # the API did not answer: nothing is decided on what is not known
        spec, stopped = DeploymentSpec.of(deployment), deployment.desired == Desired.STOP
        active = [member for member in members if not member.retired]
        for member in active:
            self._follow(member, views[member.id])
        if stopped:
            for member in active:
                if views[member.id]["status"] not in ENDED:
                    self._api("POST", f"/api/workloads/{member.id}/stop")
        else:
            active = self._replace_lost_and_failed(deployment, active, views)
            active = self._resize(deployment, spec, active, views)
        self._record_status(deployment.id, deployment_status(
            spec.replicas, stopped, [views[member.id] for member in active if member.id in views]))

    def _replace_lost_and_failed(self, deployment: WorkloadRecord, active: list[WorkloadRecord],
                                 views: dict[str, dict[str, Any]]) -> list[WorkloadRecord]:
        kept = []
        for member in active:
            view = views[member.id]
            if view["status"] in ENDED:
                self._retire(member, f"replaced: it ended {view['status']} ({view.get('message', '')})", reschedule=True)
            elif view["status"] == Status.LOST and self._lost_for(member.id) >= self._lost_after_s:
                self._retire(member, f"replaced: its node {member.node} was offline for {self._lost_after_s:g} s "
                                     "(replicas.lost_after_s)", reschedule=True)
            else:
                kept.append(member)
        return kept

    def _lost_for(self, replica_id: str) -> float:
        return time.monotonic() - self._lost_since.setdefault(replica_id, time.monotonic())

    def _resize(self, deployment: WorkloadRecord, spec: DeploymentSpec, active: list[WorkloadRecord],
                views: dict[str, dict[str, Any]]) -> list[WorkloadRecord]:
        if len(active) > spec.replicas:  # the unhealthy go first, then the newest
            ranked = sorted(active, key=lambda member: (views[member.id]["status"] == Status.RUNNING,
                                                         -int(member.id.rsplit("-r", 1)[1])), reverse=True)
            for member in ranked[spec.replicas:]:
                self._retire(member, f"scaled down to {spec.replicas}")
            return ranked[:spec.replicas]
        missing = spec.replicas - len(active)
        if missing and time.monotonic() >= self._next_placement.get(deployment.id, 0.0):
            for _ in range(missing):
                try:
                    self._place(deployment.id)
                    REPLICA_EVENTS.labels("placed").inc()
                except DelegationUnknown:
                    pass  # placed as far as anyone knows: its pointer settles
                except CnetError as exc:
                    log.warning("a replica could not be placed: %s", exc.message, extra=workload_fields(deployment.id))
                    self._next_placement[deployment.id] = time.monotonic() + PLACE_RETRY_S
                    self._ledger.update(deployment.id, _with_message(f"a replica could not be placed: {exc.message}"))
                    break
        return active

    def _retire(self, member: WorkloadRecord, reason: str, reschedule: bool = False) -> None:
        """Take ``member`` out of the rotation (recorded first; stopped and deleted after the drain)."""
        log.info("replica %s: %s", member.id, reason, extra=workload_fields(member.replica_of or member.id))
        self._ledger.update(member.id, lambda record: dataclasses.replace(
            record, retired_at=time.time(), retired_because=reason))
        self._lost_since.pop(member.id, None)
        REPLICA_EVENTS.labels("rescheduled" if reschedule else "retired").inc()
        if reschedule and member.replica_of:
            self._ledger.update(member.replica_of, _rescheduled)

    def _delete(self, member: WorkloadRecord) -> None:
        """Stop and delete a retired replica wherever it runs; one on an offline node waits for it (the API
        answers 503, and the next round asks again)."""
        answer = self._api("DELETE", f"/api/workloads/{member.id}")
        if answer is not None and answer[0] == 200:
            log.info("replica %s deleted", member.id, extra=workload_fields(member.replica_of or member.id))

    def _follow(self, member: WorkloadRecord, view: dict[str, Any]) -> None:
        """Keep a delegated replica's pointer as its node sees it (the balancer reads it from the ledger)."""
        if view["status"] != Status.LOST:
            self._lost_since.pop(member.id, None)
        if not member.remote or member.settling or view["status"] == Status.LOST:
            return
        seen = {"status": view["status"], "health_failures": view.get("health_failures", 0),
                "endpoint": view.get("endpoint"), "node": view.get("node") or member.node,
                "restarts": view.get("restarts", 0)}
        if any(getattr(member, name) != value for name, value in seen.items()):
            self._ledger.update(member.id, lambda record: dataclasses.replace(record, **seen))

    def _record_status(self, deployment_id: str, status: str) -> None:
        self._ledger.update(deployment_id, lambda record: None if record.status == status
                            else dataclasses.replace(record, status=status))

    def _views(self, members: list[WorkloadRecord]) -> dict[str, dict[str, Any]] | None:
        if not members:
            return {}
        answer = self._api("GET", f"/api/workloads?ids={','.join(member.id for member in members)}")
        if answer is None or answer[0] != 200:
            return None
        views = {view["id"]: view for view in answer[1]["workloads"]}
        return {member.id: views.get(member.id, {"id": member.id, "status": Status.LOST}) for member in members}

    def _api(self, method: str, path: str) -> tuple[int, Any] | None:
        try:
            return call(method, f"{self._api_url}{path}", timeout_s=API_TIMEOUT_S, headers=self._headers)
        except (Unreachable, TimedOut) as exc:
            log.warning("%s %s: %s", method, path, exc)
            return None


def _placed(message: str) -> Callable[[WorkloadRecord], WorkloadRecord]:
    return lambda record: dataclasses.replace(record, status=Status.STARTING, message=message)


def _with_message(message: str) -> Callable[[WorkloadRecord], WorkloadRecord | None]:
    return lambda record: None if record.message == message else dataclasses.replace(record, message=message)


def _rescheduled(record: WorkloadRecord) -> WorkloadRecord:
    spec = DeploymentSpec.of(record)
    return dataclasses.replace(record, deployment={**spec.to_dict(), "reschedules": spec.reschedules + 1})
