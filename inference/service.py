"""The HTTP face of an inference service: /health, /info, /predict and the v2 protocol (``inference.kserve``)
over any ``Detector``.

/predict takes a JSON body with a base64 image (``data:`` prefix allowed), a multipart upload (part
``image`` or ``file``), or a raw ``image/*`` body; options come from the JSON body, multipart fields or
the query string. Bad input answers 400/413 with a JSON error and the service keeps serving.

``cnet_service_ongoing_requests`` (at /metrics) counts the inference requests (/predict and v2 infer) the
service holds now, waiting for a lane or a batch and executing: its load, whoever sent them.
"""
from __future__ import annotations

import time
from typing import Any

import falcon
from prometheus_client import CollectorRegistry, Gauge

from cnetd.common.web import install_error_rendering, json_of, read_body, send
from cnetd.common.errors import Invalid, PayloadTooLarge, Unprocessable
from cnetd.common.request_metrics import instrumented_app
from inference.imaging import ImageTooLarge, InvalidImage, decode_base64, decode_image, looks_like_image
from inference.detector import OPTION_NAMES, Detector, parse_options
from inference.kserve import INFER_ROUTE, add_v2_routes
from inference.statistics import timed

DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
# What a client sends an image as when it does not say: none, curl --data-binary's form type, text
GENERIC_TYPES = ("", "application/x-www-form-urlencoded", "text/plain")


class _Health:
    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"status": "healthy", "model": self.detector.name})


class _Info(_Health):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, self.detector.info())


class _Predict:
    def __init__(self, detector: Detector, max_image_bytes: int) -> None:
        self.detector = detector
        self.max_image_bytes = max_image_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.detector.serving(), self.detector.statistics.request():
            self._predict(req, resp)

    def _predict(self, req: falcon.Request, resp: falcon.Response) -> None:
        image_bytes, raw_options = self._read(req)
        options = parse_options(raw_options)  # a malformed option is a 400 whatever the image holds
        try:
            with timed("compute_input"):
                image = decode_image(image_bytes)
        except ImageTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except InvalidImage as exc:
            raise Unprocessable(str(exc)) from None
        started = time.perf_counter()
        detections, inference_ms = self.detector.detect(image, options)
        with timed("compute_output"):
            send(resp, {"detections": detections, "count": len(detections),
                        "image_size": [int(image.shape[1]), int(image.shape[0])],
                        "inference_ms": round(inference_ms, 3),
                        "total_ms": round((time.perf_counter() - started) * 1000, 3)})

    def _read(self, req: falcon.Request) -> tuple[bytes, dict[str, Any]]:
        if req.content_length is not None and req.content_length > self.max_image_bytes * 2:
            raise PayloadTooLarge(f"request of {req.content_length} bytes exceeds the image limit")
        content_type = (req.content_type or "").split(";")[0].strip().lower()
        query = {name: req.get_param(name) for name in OPTION_NAMES if req.get_param(name) is not None}
        if content_type.startswith("image/") or content_type == "application/octet-stream":
            return self._limited(req.bounded_stream.read(self.max_image_bytes + 1)), query
        if content_type == "multipart/form-data":
            return self._multipart(req, query)
        raw = read_body(req, self.max_image_bytes * 2)  # base64 is 4/3 the image
        if content_type in GENERIC_TYPES and looks_like_image(raw):  # curl --data-binary, requests' data=
            return self._limited(raw), query
        body = json_of(raw)
        if not isinstance(body, dict) or not isinstance(body.get("image"), str):
            raise Invalid("send {\"image\": base64, …} as JSON, a multipart 'image' file, or a raw image/* body")
        try:
            image_bytes = decode_base64(body["image"])
        except InvalidImage as exc:
            raise Invalid(str(exc)) from None
        return self._limited(image_bytes), {**query, **{name: body.get(name) for name in OPTION_NAMES if name in body}}

    def _multipart(self, req: falcon.Request, options: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        image_bytes = None
        try:
            for part in req.get_media():
                if part.name in ("image", "file"):
                    image_bytes = self._limited(part.stream.read(self.max_image_bytes + 1))
                elif part.name in OPTION_NAMES:
                    options[part.name] = part.text
        except falcon.MediaMalformedError as exc:
            raise Invalid(f"malformed multipart body: {exc.description}") from None
        if image_bytes is None:
            raise Invalid("multipart body has no 'image' (or 'file') part")
        return image_bytes, options

    def _limited(self, image_bytes: bytes) -> bytes:
        if len(image_bytes) > self.max_image_bytes:
            raise PayloadTooLarge(f"image exceeds the limit of {self.max_image_bytes} bytes")
        if not image_bytes:
            raise Unprocessable("the image is empty")
        return image_bytes


class _OngoingRequests:
    """Falcon middleware: the inference requests in the service now (from routing to the answer)."""

    ROUTES = ("/predict", INFER_ROUTE)

    def __init__(self, registry: CollectorRegistry) -> None:
        self._gauge = Gauge("cnet_service_ongoing_requests", "Inference requests (/predict, v2 infer) in the "
                            "service now: waiting for a lane or a batch, or executing", registry=registry)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]) -> None:
        if req.uri_template in self.ROUTES and req.method == "POST":
            self._gauge.inc()
            req.context.ongoing = True

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        if req.context.get("ongoing"):
            self._gauge.dec()


def create_service_app(detector: Detector, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> falcon.App:
    app, registry = instrumented_app("cnet_service")
    app.add_middleware(_OngoingRequests(registry))
    app.add_route("/health", _Health(detector))
    app.add_route("/info", _Info(detector))
    app.add_route("/predict", _Predict(detector, max_image_bytes))
    add_v2_routes(app, detector, max_image_bytes)
    install_error_rendering(app)
    return app
