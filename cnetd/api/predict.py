"""The predict relay: POST /api/workloads/{id}/predict goes to the service (or its next hop) as sent, and
its answer comes back as it is; for a deployment, to one of its replicas in rotation (the balancer's
choice), and once more to another when that one cannot be reached. ``X-Cnet-Replica`` names the replica
that answered, ``X-CNET-Revision`` the deployment's revision it runs.

A request to an autoscaled deployment with no replica in rotation (at zero, say) is held, up to
``replicas.cold_start_timeout_s``, while its controller (woken at once) starts one; ``X-CNET-Cold-Start-Ms``
says how long it waited. Every request through a deployment's endpoint, held ones too, is counted in
``cnet_deployment_ongoing_requests``: the autoscaler's signal."""
from __future__ import annotations

import contextlib
import time

import falcon
import orjson

from cnetd.api.base import Resource
from cnetd.api.limits import PREDICT_MAX_BYTES
from cnetd.common.errors import CnetError, NotAService, NotRunning, Unavailable
from cnetd.common.httpclient import TimedOut, Unreachable
from cnetd.common.relay import Relayed, relay
from cnetd.common.web import read_body
from cnetd.core.metrics import BALANCED, COLD_STARTS, DEPLOYMENT_ONGOING
from cnetd.core.deployment_state import in_rotation
from ledger.records import Status, WorkloadRecord

PREDICT_TIMEOUT_S = 60.0
SERVICE_TYPES = ("mlmodel", "opencv")
REPLICA_HEADER, REPLICA_NODE_HEADER, REVISION_HEADER = "X-Cnet-Replica", "X-Cnet-Replica-Node", "X-CNET-Revision"
COLD_START_HEADER = "X-CNET-Cold-Start-Ms"
HOLD_POLL_S = 0.05  # how often a held request looks for a replica in rotation
UNAVAILABLE_STATUSES = (502, 503, 504)  # a hop that could not reach its service: another replica may


class ServiceRelay(Resource):
    """What the predict (and v2) paths share: the workload must be a model service; a deployment's request
    goes to a replica in rotation."""

    def relay_to_service(self, req: falcon.Request, resp: falcon.Response, workload_id: str, path: str) -> None:
        record = self.workload(workload_id)
        if record.type not in SERVICE_TYPES:
            raise NotAService(f"workload {workload_id} is a {record.type}; "
                              f"predictions need one of {', '.join(SERVICE_TYPES)}")
        body = read_body(req, PREDICT_MAX_BYTES) if req.method == "POST" else None
        path = f"{path}?{req.query_string}" if req.query_string else path
        headers = {name: value for name, value in (("Content-Type", req.content_type or falcon.MEDIA_JSON),
                                                  ("Inference-Header-Content-Length",
                                                   req.get_header("Inference-Header-Content-Length"))) if value}
        if record.deployment is None:
            answer = self._relay(record, req.method, path, body, headers)
        else:
            with DEPLOYMENT_ONGOING.labels(record.id).track_inprogress():
                rotation = self._rotation(record)
                if not rotation and record.deployment.get("autoscale"):
                    rotation, held_s = self._held(record)
                    resp.set_header(COLD_START_HEADER, str(round(held_s * 1000)))
                replica, answer = self._balanced(record, rotation, req.method, path, body, headers)
            resp.set_header(REPLICA_HEADER, replica.id)
            resp.set_header(REPLICA_NODE_HEADER, replica.node)
            resp.set_header(REVISION_HEADER, str(replica.revision or 1))
        resp.status = answer.status
        for name, value in answer.headers.items():
            resp.set_header(name, value)
        resp.data = answer.data

    def _rotation(self, deployment: WorkloadRecord) -> list[WorkloadRecord]:
        return [member for member in self.members(deployment)
                if in_rotation(member.status, member.health_failures, member.retired)
                and (not member.remote or self.deps.remote.online(member.delegated_to))]

    def _held(self, deployment: WorkloadRecord) -> tuple[list[WorkloadRecord], float]:
        """Wait for a replica of an autoscaled deployment to serve (its controller, woken now, sees this
        request counted and starts one from zero at once): the rotation and how long it took."""
        started, bound = time.monotonic(), self.deps.config.replicas_cold_start_timeout_s
        with contextlib.suppress(CnetError):  # not woken: its next round comes within half a second anyway
            self.schedule("wake_deployments")
        while time.monotonic() - started < bound:
            time.sleep(HOLD_POLL_S)
            rotation = self._rotation(self.workload(deployment.id))
            if rotation:
                held_s = time.monotonic() - started
                COLD_STARTS.observe(held_s)
                return rotation, held_s
        raise Unavailable(f"no replica of deployment {deployment.id} could serve within {bound:g} s "
                          f"(replicas.cold_start_timeout_s): {self.workload(deployment.id).message or 'still starting'}")

    def _balanced(self, deployment: WorkloadRecord, rotation: list[WorkloadRecord], method: str, path: str,
                  body: bytes | None, headers: dict[str, str]) -> tuple[WorkloadRecord, Relayed]:
        failure: Unavailable | None = None
        for attempt, replica in enumerate(self.deps.balancer.order(rotation)):
            with self.deps.balancer.sending(replica.id):
                try:
                    answered = self._relay(replica, method, path, body, headers)
                except (Unavailable, NotRunning) as exc:
                    failure = Unavailable(f"replica {replica.id} of {deployment.id}: {exc.message}")
                else:
                    if not _unavailable(answered):
                        BALANCED.labels("retried" if attempt else "answered").inc()
                        return replica, answered
                    failure = Unavailable(f"replica {replica.id} of {deployment.id} answered {answered.status}")
            self.deps.balancer.eject(replica.id)
        BALANCED.labels("failed").inc()
        raise failure or Unavailable(f"no replica of deployment {deployment.id} is in rotation now "
                                     f"(GET /api/workloads/{deployment.id} shows them)")

    def _relay(self, record: WorkloadRecord, method: str, path: str, body: bytes | None,
               headers: dict[str, str]) -> Relayed:
        if record.remote:
            return self.deps.remote.relay(record, method, path, body, headers)
        if record.status != Status.RUNNING or not record.endpoint:
            raise NotRunning(f"workload {record.id} is {record.status}, not running")
        try:
            return relay(method, f"{record.endpoint}{path}", body, headers, PREDICT_TIMEOUT_S)
        except (Unreachable, TimedOut) as exc:
            raise Unavailable(f"workload {record.id} did not answer: {exc}") from None


class WorkloadPredict(ServiceRelay):
    """POST /api/workloads/{id}/predict: the console's way to a model service, relayed by the node (the
    service may listen where the browser cannot reach, or on another node). The body and query go as-is."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        self.relay_to_service(req, resp, workload_id, "/predict")


def _unavailable(answer: Relayed) -> bool:
    """A next hop's answer that says its replica could not serve (down, or restarting): not the model's."""
    if answer.status in UNAVAILABLE_STATUSES:
        return True
    if answer.status != NotRunning.status:
        return False
    try:
        error = orjson.loads(answer.data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(error, dict) and error.get("error") == NotRunning.code
