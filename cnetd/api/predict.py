"""The predict relay: POST /api/workloads/{id}/predict goes to the service (or its next hop) as sent."""
from __future__ import annotations

import falcon

from cnetd.api.base import Resource
from cnetd.api.limits import PREDICT_MAX_BYTES
from cnetd.common.errors import NotAService, NotRunning, Unavailable
from cnetd.common.httpclient import TimedOut, Unreachable, call
from cnetd.common.web import read_body, send
from ledger.records import Status

PREDICT_TIMEOUT_S = 60.0
SERVICE_TYPES = ("mlmodel", "opencv")


class WorkloadPredict(Resource):
    """POST /api/workloads/{id}/predict: the console's way to a model service, relayed by the node (the
    service may listen where the browser cannot reach, or on another node). The body and query go as-is."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = self.workload(workload_id)
        if record.type not in SERVICE_TYPES:
            raise NotAService(f"workload {workload_id} is a {record.type}; "
                          f"predictions need one of {', '.join(SERVICE_TYPES)}")
        body = read_body(req, PREDICT_MAX_BYTES)
        query = f"?{req.query_string}" if req.query_string else ""
        content_type = req.content_type or falcon.MEDIA_JSON
        if record.remote:
            status, answer = self.deps.remote.act(record, "POST", f"/predict{query}", raw=body, content_type=content_type)
        else:
            if record.status != Status.RUNNING or not record.endpoint:
                raise NotRunning(f"workload {workload_id} is {record.status}, not running")
            try:
                status, answer = call("POST", f"{record.endpoint}/predict{query}", raw=body,
                                      headers={"Content-Type": content_type}, timeout_s=PREDICT_TIMEOUT_S)
            except (Unreachable, TimedOut) as exc:
                raise Unavailable(f"workload {workload_id} did not answer: {exc}") from None
        send(resp, answer, status)
