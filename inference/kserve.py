"""The KServe v2 (Triton) HTTP protocol of a model service, so that Triton's clients work unchanged.

``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}`` (its inputs and outputs with
datatype and shape), ``/v2/models/{name}/ready``, ``/v2/models/{name}/stats`` and ``/v2/models/stats``
(Triton's statistics extension, ``inference.statistics``), and ``POST /v2/models/{name}/infer``, which
takes either:

- the model's own tensor inputs (JSON ``data`` or the binary tensor extension) and answers its raw
  output tensors, as Triton does for an ONNX model; or
- one encoded image, input ``image`` (BYTES, shape [1]: the file's bytes, or base64 in JSON), and
  answers its detections as ``boxes`` (FP32 [N, 4], x1 y1 x2 y2 in the image's pixels), ``scores`` (FP32
  [N]), ``class_ids`` (INT64 [N]) and ``classes`` (BYTES [N]); the request's ``parameters`` take
  /predict's options (confidence, iou, max_detections, classes).

The model's name is the service's ``--name`` (a workload's name).
"""
from __future__ import annotations

from typing import Any

import falcon
import numpy as np

from cnetd import __version__
from cnetd.common.errors import Invalid, NotFound, PayloadTooLarge, Unprocessable
from cnetd.common.web import read_body, send
from inference.imaging import ImageTooLarge, InvalidImage, decode_base64, decode_image, looks_like_image
from inference.detector import Detector, InputsRejected, parse_options
from inference.statistics import timed
from inference.tensors import InferRequest, TensorSpec, batch_size, encode_response, read_request

IMAGE_INPUT = TensorSpec("image", "BYTES", (1,))
DETECTION_OUTPUTS = (TensorSpec("boxes", "FP32", (-1, 4)), TensorSpec("scores", "FP32", (-1,)),
                     TensorSpec("class_ids", "INT64", (-1,)), TensorSpec("classes", "BYTES", (-1,)))
HEADER_LENGTH = "Inference-Header-Content-Length"
INFER_ROUTE = "/v2/models/{model}/infer"


class _Server:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"name": "cnet-inference", "version": __version__,
                    "extensions": ["binary_tensor_data", "statistics"]})


class _Live:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"live": True})


class _Ready:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"ready": True})  # the app is served only once its model has loaded


class _Model:
    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def named(self, model: str) -> None:
        if model != self.detector.model_name:
            raise NotFound(f"no model {model!r} here (this service serves {self.detector.model_name!r})")


class _ModelMetadata(_Model):
    def on_get(self, req: falcon.Request, resp: falcon.Response, model: str) -> None:
        self.named(model)
        inputs, outputs = self.detector.tensor_inputs or [IMAGE_INPUT], self.detector.tensor_outputs or DETECTION_OUTPUTS
        send(resp, {"name": model, "versions": ["1"], "platform": self.detector.platform,
                    "inputs": [spec.to_dict() for spec in inputs], "outputs": [spec.to_dict() for spec in outputs],
                    "image_input": IMAGE_INPUT.to_dict(),
                    "detection_outputs": [spec.to_dict() for spec in DETECTION_OUTPUTS]})


class _ModelReady(_Model):
    def on_get(self, req: falcon.Request, resp: falcon.Response, model: str) -> None:
        self.named(model)
        send(resp, {"name": model, "ready": True})


class _Infer(_Model):
    def __init__(self, detector: Detector, max_image_bytes: int) -> None:
        super().__init__(detector)
        self.max_body_bytes = max_image_bytes * 2  # base64 in JSON is 4/3 of the image

    def on_post(self, req: falcon.Request, resp: falcon.Response, model: str) -> None:
        self.named(model)
        with self.detector.statistics.request() as record:
            with self.detector.serving():
                with timed("compute_input"):
                    request = read_request(read_body(req, self.max_body_bytes), req.get_header(HEADER_LENGTH))
                record.inferences = _batch_size(request)
                outputs = self._detections(request) if IMAGE_INPUT.name in request.inputs else self._tensors(request)
            with timed("compute_output"):
                body, header_length = encode_response(model, request, outputs)
        resp.status = falcon.HTTP_200
        resp.content_type = falcon.MEDIA_JSON if header_length is None else "application/octet-stream"
        if header_length is not None:
            resp.set_header(HEADER_LENGTH, str(header_length))
        resp.data = body

    def _tensors(self, request: InferRequest) -> dict[str, np.ndarray]:
        specs = {spec.name: spec for spec in self.detector.tensor_inputs}
        if not specs:
            raise Unprocessable(f"this model takes images: send input {IMAGE_INPUT.name!r} (BYTES)")
        if set(request.inputs) != set(specs):
            raise Unprocessable(f"inputs {sorted(request.inputs)}: the model takes {sorted(specs)} "
                          f"(or {IMAGE_INPUT.name!r}, an encoded image)")
        for name, (datatype, array) in request.inputs.items():
            specs[name].check(array, datatype)
        wanted = _asked_for(request, [spec.name for spec in self.detector.tensor_outputs])
        try:
            arrays = self.detector.infer_tensors({name: array for name, (_, array) in request.inputs.items()}, wanted)
        except InputsRejected as exc:  # within what the model declares, but not what it can run: Triton's 400
            sent = "; ".join(f"input {name}: shape {list(array.shape)}, the model declares {list(specs[name].shape)}"
                             for name, (_, array) in request.inputs.items())
            raise Invalid(f"the model could not run on these inputs ({sent}): {exc}") from None
        return dict(zip(wanted, arrays))

    def _detections(self, request: InferRequest) -> dict[str, np.ndarray]:
        if len(request.inputs) != 1:
            raise Unprocessable(f"input {IMAGE_INPUT.name!r} comes alone (one encoded image)")
        datatype, array = request.inputs[IMAGE_INPUT.name]
        if datatype != "BYTES" or array.size != 1:
            raise Unprocessable(f"input {IMAGE_INPUT.name!r}: one BYTES element, the encoded image")
        detections, _ = self.detector.detect(_image(array.reshape(-1)[0]), parse_options(request.parameters))
        outputs = {"boxes": np.array([item["bbox"] for item in detections], np.float32).reshape(-1, 4),
                   "scores": np.array([item["confidence"] for item in detections], np.float32),
                   "class_ids": np.array([item["class_id"] for item in detections], np.int64),
                   "classes": np.array([item["class"].encode() for item in detections], np.object_)}
        return {name: outputs[name] for name in _asked_for(request, list(outputs))}


def _batch_size(request: InferRequest) -> int:
    """How many inferences a request holds: its first input's batch size (an image is one)."""
    if IMAGE_INPUT.name in request.inputs or not request.inputs:
        return 1
    _, array = next(iter(request.inputs.values()))
    return batch_size(array)


class _ModelStatistics(_Model):
    """Triton's statistics extension: the model named, or every model (the one here)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, model: str | None = None) -> None:
        if model is not None:
            self.named(model)
        send(resp, {"model_stats": [self.detector.statistics.to_dict(self.detector.model_name)]})


def _asked_for(request: InferRequest, known: list[str]) -> list[str]:
    """The outputs a request asks for (all of them when it names none); 422 for one the model lacks."""
    wanted = list(request.outputs) if request.outputs else known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise Unprocessable(f"outputs {unknown}: the model has {known}")
    return wanted


def _image(raw: Any) -> np.ndarray:
    data = raw if looks_like_image(raw) else _base64(raw)
    try:
        return decode_image(data)
    except ImageTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    except InvalidImage as exc:
        raise Unprocessable(str(exc)) from None


def _base64(raw: bytes) -> bytes:
    try:
        return decode_base64(raw.decode("ascii"))
    except (UnicodeDecodeError, InvalidImage):
        raise Unprocessable(f"input {IMAGE_INPUT.name!r} is neither an image file's bytes nor base64 of one") from None


def add_v2_routes(app: falcon.App, detector: Detector, max_image_bytes: int) -> None:
    app.add_route("/v2", _Server())
    app.add_route("/v2/health/live", _Live())
    app.add_route("/v2/health/ready", _Ready())
    app.add_route("/v2/models/{model}", _ModelMetadata(detector))
    app.add_route("/v2/models/{model}/ready", _ModelReady(detector))
    app.add_route(INFER_ROUTE, _Infer(detector, max_image_bytes))
    app.add_route("/v2/models/{model}/stats", _ModelStatistics(detector))
    app.add_route("/v2/models/stats", _ModelStatistics(detector))
