"""The predict relay: POST /api/workloads/{id}/predict goes to the service (or its next hop) as sent; for a
deployment, to one of its replicas in rotation (the balancer's choice), and once more to another when
that one cannot be reached. ``X-Cnet-Replica`` names the replica that answered."""
from __future__ import annotations

from typing import Any

import falcon

from cnetd.api.base import Resource
from cnetd.api.limits import PREDICT_MAX_BYTES
from cnetd.common.errors import NotAService, NotRunning, Unavailable
from cnetd.common.httpclient import TimedOut, Unreachable, call
from cnetd.common.web import read_body, send
from cnetd.metrics import BALANCED
from cnetd.replicas.state import in_rotation
from ledger.records import Status, WorkloadRecord

PREDICT_TIMEOUT_S = 60.0
SERVICE_TYPES = ("mlmodel", "opencv")
REPLICA_HEADER, REPLICA_NODE_HEADER = "X-Cnet-Replica", "X-Cnet-Replica-Node"
UNAVAILABLE_STATUSES = (502, 503, 504)  # a hop that could not reach its service: another replica may


class WorkloadPredict(Resource):
    """POST /api/workloads/{id}/predict: the console's way to a model service, relayed by the node (the
    service may listen where the browser cannot reach, or on another node). The body and query go as-is."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = self.workload(workload_id)
        if record.type not in SERVICE_TYPES:
            raise NotAService(f"workload {workload_id} is a {record.type}; "
                          f"predictions need one of {', '.join(SERVICE_TYPES)}")
        body = read_body(req, PREDICT_MAX_BYTES)
        path = f"/predict?{req.query_string}" if req.query_string else "/predict"
        content_type = req.content_type or falcon.MEDIA_JSON
        if record.deployment is None:
            status, answer = self._relay(record, path, body, content_type)
        else:
            replica, (status, answer) = self._balanced(record, path, body, content_type)
            resp.set_header(REPLICA_HEADER, replica.id)
            resp.set_header(REPLICA_NODE_HEADER, replica.node)
        send(resp, answer, status)

    def _balanced(self, deployment: WorkloadRecord, path: str, body: bytes,
                  content_type: str) -> tuple[WorkloadRecord, tuple[int, Any]]:
        rotation = [member for member in self.members(deployment)
                    if in_rotation(member.status, member.health_failures, member.retired)
                    and (not member.remote or self.deps.remote.online(member.delegated_to))]
        failure: Unavailable | None = None
        for attempt, replica in enumerate(self.deps.balancer.order(rotation)):
            with self.deps.balancer.sending(replica.id):
                try:
                    answered = self._relay(replica, path, body, content_type)
                except (Unavailable, NotRunning) as exc:
                    failure = Unavailable(f"replica {replica.id} of {deployment.id}: {exc.message}")
                else:
                    if not _unavailable(*answered):
                        BALANCED.labels("retried" if attempt else "answered").inc()
                        return replica, answered
                    failure = Unavailable(f"replica {replica.id} of {deployment.id} answered {answered[0]}")
            self.deps.balancer.eject(replica.id)
        BALANCED.labels("failed").inc()
        raise failure or Unavailable(f"no replica of deployment {deployment.id} is in rotation now "
                                     f"(GET /api/workloads/{deployment.id} shows them)")

    def _relay(self, record: WorkloadRecord, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
        if record.remote:
            return self.deps.remote.act(record, "POST", path, raw=body, content_type=content_type)
        if record.status != Status.RUNNING or not record.endpoint:
            raise NotRunning(f"workload {record.id} is {record.status}, not running")
        try:
            return call("POST", f"{record.endpoint}{path}", raw=body, headers={"Content-Type": content_type},
                        timeout_s=PREDICT_TIMEOUT_S)
        except (Unreachable, TimedOut) as exc:
            raise Unavailable(f"workload {record.id} did not answer: {exc}") from None


def _unavailable(status: int, answer: Any) -> bool:
    """A next hop's answer that says its replica could not serve (down, or restarting): not the model's."""
    code = answer.get("error") if isinstance(answer, dict) else None
    return status in UNAVAILABLE_STATUSES or (status == NotRunning.status and code == NotRunning.code)
