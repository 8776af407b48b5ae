"""The KServe v2 protocol of a model service through the node: ``/api/workloads/{id}/v2/…`` goes to the
service's ``/v2/…`` (or its next hop's), as sent; for a deployment, to one of its replicas, balanced as
predictions are. Triton's clients take ``NODE/api/workloads/ID`` as their URL."""
from __future__ import annotations

import falcon

from cnetd.api.predict import ServiceRelay


class WorkloadV2Server(ServiceRelay):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        self.relay_to_service(req, resp, workload_id, "/v2")


class WorkloadV2Live(ServiceRelay):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        self.relay_to_service(req, resp, workload_id, "/v2/health/live")


class WorkloadV2Ready(ServiceRelay):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        self.relay_to_service(req, resp, workload_id, "/v2/health/ready")


class WorkloadV2Model(ServiceRelay):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str, model: str) -> None:
        self.relay_to_service(req, resp, workload_id, f"/v2/models/{_segment(model)}")


class WorkloadV2ModelReady(ServiceRelay):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str, model: str) -> None:
        self.relay_to_service(req, resp, workload_id, f"/v2/models/{_segment(model)}/ready")


class WorkloadV2Infer(ServiceRelay):
    def on_post(self, req: falcon.Request, resp: falcon.Response, workload_id: str, model: str) -> None:
        self.relay_to_service(req, resp, workload_id, f"/v2/models/{_segment(model)}/infer")


def _segment(model: str) -> str:
    """The model's name as one path segment again (Falcon gave it decoded)."""
    return falcon.uri.encode_value(model)


V2_ROUTES = (("/api/workloads/{workload_id}/v2", WorkloadV2Server),
             ("/api/workloads/{workload_id}/v2/health/live", WorkloadV2Live),
             ("/api/workloads/{workload_id}/v2/health/ready", WorkloadV2Ready),
             ("/api/workloads/{workload_id}/v2/models/{model}", WorkloadV2Model),
             ("/api/workloads/{workload_id}/v2/models/{model}/ready", WorkloadV2ModelReady),
             ("/api/workloads/{workload_id}/v2/models/{model}/infer", WorkloadV2Infer))
