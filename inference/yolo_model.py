"""A YOLO model on its backend (onnxruntime, TorchScript; TensorFlow's in ``tf_backends``): metadata and ``predict``."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from inference import yolo_steps as steps
from inference.batching import Batcher, BatchPolicy
from inference.lanes import Lanes
from inference.detector import InputsRejected
from inference.model_metadata import NotAYoloModel, input_size, parse_names
from inference.statistics import ModelStatistics, timed
from inference.tensors import ONNX_DATATYPES, TensorSpec, batch_size
from inference.tf_backends import LiteRTBackend, SavedModelBackend


def default_providers() -> list[str]:
    """CUDA when this process was given a GPU (CUDA_VISIBLE_DEVICES set and not empty) and the installed
    onnxruntime offers it; the CPU otherwise, and always as the fallback."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class Detection:
    class_name: str
    class_id: int
    confidence: float
    bbox: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.class_name, "class_id": self.class_id, "confidence": self.confidence, "bbox": self.bbox}


def _session(path: str, threads: int) -> ort.InferenceSession:
    """A session of ``threads`` intra-op threads, sequential operators, no inter-op pool. A session of more
    than one thread has a pool whose threads spin between the operators of a run (what makes one request
    fast) and stop at its end (so that requests that follow have the cores to themselves)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.force_spinning_stop", "1")  # after its run: cores for others
    try:
        return ort.InferenceSession(path, sess_options=options, providers=default_providers())
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        raise NotAYoloModel(f"{os.path.basename(path)} is not a loadable ONNX model: {exc}") from None


class _OnnxBackend:
    """onnxruntime: the cores the service has shared out in ``Lanes`` (a session of all of them for a
    request alone, one session of one thread per core for requests together); on a GPU, one session."""

    # What onnxruntime raises when a run fails on its inputs (a size its operators cannot take).
    run_errors: tuple[type[Exception], ...] = (ort_state.Fail, ort_state.InvalidArgument, ort_state.RuntimeException,
                                               ort_state.NotImplemented)

    def __init__(self, path: str, threads: int) -> None:
        cores = max(1, threads)
        self.session = _session(path, cores)
        on_cpu = self.session.get_providers()[0] == "CPUExecutionProvider"
        narrow = [_session(path, 1) for _ in range(cores)] if on_cpu and cores > 1 else [self.session]
        self._lanes = Lanes(self.session, narrow)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise NotAYoloModel("a YOLO detector takes one NCHW image input")
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.input_name = inputs[0].name
        self.input_size = input_size(inputs[0].shape[2], inputs[0].shape[3], metadata.get("imgsz"))
        self.names = parse_names(metadata.get("names"))
        self.model_type, self.platform = "yolo", "onnxruntime_onnx"
        self.device = self.session.get_providers()[0]
        self.tensor_inputs = [_spec(tensor) for tensor in inputs]
        self.tensor_outputs = [_spec(tensor) for tensor in self.session.get_outputs()]

    def run(self, tensor: np.ndarray, whole: bool = False) -> np.ndarray:
        return self.run_outputs({self.input_name: tensor}, None, whole)[0]

    def serving(self) -> contextlib.AbstractContextManager[None]:
        return self._lanes.serving()

    def run_outputs(self, inputs: dict[str, np.ndarray], names: list[str] | None = None,
                    whole: bool = False) -> list[np.ndarray]:
        """The model's outputs (``names``, or all) for ``inputs``, on the session the cores allow now (all of
        them, ``whole``, for a batch)."""
        return self._lanes.run(lambda session: session.run(names, inputs), whole)


def _spec(tensor: Any) -> TensorSpec:
    """An ONNX input or output as v2 metadata shows it: a named (symbolic) dimension is -1."""
    return TensorSpec(tensor.name, ONNX_DATATYPES.get(tensor.type, tensor.type),
                      tuple(dim if isinstance(dim, int) else -1 for dim in tensor.shape))


class _TorchScriptBackend:
    """A TorchScript export whose output is a YOLO layout; names and imgsz from its ``config.txt`` extra
    file (as Ultralytics writes it). On the GPU this process was given, else on the CPU."""

    run_errors: tuple[type[Exception], ...] = (RuntimeError, ValueError)  # torch's, for inputs a module cannot take

    def __init__(self, path: str, threads: int) -> None:
        import torch  # optional: only pytorch model services need it
        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        use_cuda = bool(os.environ.get("CUDA_VISIBLE_DEVICES")) and torch.cuda.is_available()
        self._device = torch.device("cuda:0" if use_cuda else "cpu")
        files = {"config.txt": ""}
        try:
            self.module = torch.jit.load(path, map_location=self._device, _extra_files=files).eval()
        except Exception as exc:  # torch raises RuntimeError and friends for files it cannot read
            raise NotAYoloModel(f"{os.path.basename(path)} is not a loadable TorchScript model: {exc}") from None
        try:
            config = json.loads(files["config.txt"] or "{}")
        except ValueError:
            config = {}
        self.names = parse_names(config.get("names"))
        self.input_size = input_size(None, None, config.get("imgsz"))
        self.model_type, self.platform = "pytorch", "pytorch_libtorch"
        self.tensor_inputs = [TensorSpec("images", "FP32", (-1, 3, *self.input_size))]
        self.tensor_outputs = [TensorSpec("output0", "FP32", (-1, -1, -1))]
        self.device = f"{self._device}" + (f" ({torch.cuda.get_device_name(0)})" if use_cuda else "")

    def serving(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # torch shares its threads out itself

    def run(self, tensor: np.ndarray, whole: bool = False) -> np.ndarray:
        with self._torch.inference_mode():
            output = self.module(self._torch.from_numpy(np.ascontiguousarray(tensor)).to(self._device))
        return (output[0] if isinstance(output, (list, tuple)) else output).float().cpu().numpy()

    def run_outputs(self, inputs: dict[str, np.ndarray], names: list[str] | None = None,
                    whole: bool = False) -> list[np.ndarray]:
        return [self.run(inputs["images"])]


BACKENDS = {"yolo": _OnnxBackend, "pytorch": _TorchScriptBackend, "tflite": LiteRTBackend,
            "tensorflow": SavedModelBackend}  # by the workload's model_type


class YoloModel:
    """One model (``yolo``: ONNX on onnxruntime; ``pytorch``: TorchScript; ``tflite``: LiteRT; ``tensorflow``:
    a SavedModel) on its backend; ``predict`` is safe to call from many threads at once."""

    def __init__(self, path: str, threads: int = 0, model_type: str = "yolo", batch: BatchPolicy | None = None) -> None:
        if not os.path.isfile(path) and not (model_type == "tensorflow" and os.path.isdir(path)):
            raise NotAYoloModel(f"model file {path!r} does not exist")
        self.backend = BACKENDS[model_type](path, threads)
        self.statistics = ModelStatistics()
        self._batcher = Batcher(self._run_batch, batch.max_size, batch.max_delay_ms / 1000) if batch else None
        self.path = path
        self.input_size = self.backend.input_size
        self.names = self.backend.names
        probe = self.backend.run(np.zeros((1, 3, *self.input_size), np.float32))
        try:
            self.layout = steps.detect_layout(probe.shape, len(self.names) or None)
        except ValueError as exc:
            raise NotAYoloModel(str(exc)) from None
        self.provider = self.backend.device

    def serving(self) -> contextlib.AbstractContextManager[None]:
        """Around the whole of one request (see ``inference.lanes``)."""
        return self.backend.serving()

    def _run_batch(self, batch: np.ndarray) -> tuple[np.ndarray, int]:
        with self.statistics.execution(len(batch)) as execution:
            output = self.backend.run(batch, whole=True)
        return output, execution.computed_ns

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        with self.statistics.execution(1):
            return self.backend.run(tensor)

    def run_tensors(self, inputs: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        """The model's raw outputs ``names`` for its own input tensors, one execution of their batch;
        ``InputsRejected`` when the runtime cannot run the model on them (a size the model declares as any,
        but that its operators cannot take)."""
        with self.statistics.execution(batch_size(next(iter(inputs.values())))):
            try:
                return self.backend.run_outputs(inputs, names)
            except self.backend.run_errors as exc:
                raise InputsRejected(str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__) \
                    from None

    def class_name(self, class_id: int) -> str:
        return self.names.get(class_id, f"class_{class_id}")

    def info(self) -> dict[str, Any]:
        return {"model_type": self.backend.model_type, "loaded": True, "model": os.path.basename(self.path),
                "input_size": list(self.input_size), "layout": self.layout, "classes": len(self.names),
                "names": {str(class_id): name for class_id, name in self.names.items()}, "provider": self.provider,
                "device": self.provider}

    def predict(self, image: np.ndarray, confidence: float = 0.25, iou: float = 0.45,
                max_detections: int = 300, classes: list[int] | None = None) -> tuple[list[Detection], float]:
        """Detections in original-image pixels, and the milliseconds of the model's run (with a batch: the
        wait for it too)."""
        with timed("compute_input"):
            boxed = steps.letterbox(image, self.input_size)
            tensor = steps.to_tensor(boxed.image)
        started = time.perf_counter()
        output = self._batcher.run(tensor) if self._batcher else self._run(tensor)
        inference_ms = (time.perf_counter() - started) * 1000
        with timed("compute_output"):
            boxes, scores, class_ids = steps.decode_output(output, self.layout)
            kept = steps.select(boxes, scores, class_ids, self.layout, confidence, iou, max_detections, classes)
            scaled = steps.scale_boxes(boxes[kept], boxed, image.shape[:2])
            return [Detection(self.class_name(int(class_ids[index])), int(class_ids[index]),
                              round(float(scores[index]), 5), [round(float(v), 2) for v in box])
                    for index, box in zip(kept, scaled)], inference_ms


def main(argv: list[str] | None = None) -> int:
    """``python -m inference.yolo_model PATH MODEL_TYPE``: exit 0 if PATH loads as a YOLO model, else print
    why (one line) and exit 2. The node checks models this way, so its own processes never load onnxruntime
    or torch."""
    path, model_type = argv if argv is not None else sys.argv[1:]
    try:
        YoloModel(path, threads=1, model_type=model_type)
    except NotAYoloModel as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)  # one line, the last: what the node reports
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
