"""``cnet-inference-yolo --model M.onnx --port P``: a YOLO detection service (onnxruntime, TorchScript, LiteRT, TensorFlow)."""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from cnetd.common.errors import Unprocessable
from inference.server import add_common_arguments, serve
from inference.batching import BatchPolicy
from inference.yolo_model import BACKENDS, YoloModel


class YoloDetector:
    def __init__(self, model: YoloModel, model_name: str | None = None) -> None:
        self.model = model
        self.name = model.info()["model"]
        self.model_name = model_name or Path(model.path).stem
        self.platform = model.backend.platform
        self.tensor_inputs, self.tensor_outputs = model.backend.tensor_inputs, model.backend.tensor_outputs
        self._ids_by_name = {name: class_id for class_id, name in model.names.items()}
        self.statistics = model.statistics

    def info(self) -> dict[str, Any]:
        return self.model.info()

    def serving(self) -> contextlib.AbstractContextManager[None]:
        return self.model.serving()

    def infer_tensors(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        return self.model.run_tensors(inputs, outputs)

    def _class_ids(self, classes: list[Any] | None) -> list[int] | None:
        if classes is None:
            return None
        ids = []
        for value in classes:
            if isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit()):
                ids.append(int(value))
            elif isinstance(value, str) and value in self._ids_by_name:
                ids.append(self._ids_by_name[value])
            else:
                raise Unprocessable(f"classes: this model has no class {value!r}")
        return ids

    def detect(self, image: np.ndarray, options: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
        detections, inference_ms = self.model.predict(
            image, confidence=options.get("confidence", 0.25), iou=options.get("iou", 0.45),
            max_detections=options.get("max_detections", 300), classes=self._class_ids(options.get("classes")))
        return [detection.to_dict() for detection in detections], inference_ms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cnet-inference-yolo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="YOLO detector exported to ONNX (or TorchScript, TFLite, "
                        "a SavedModel directory or an archive of one)")
    parser.add_argument("--model-type", choices=list(BACKENDS), default="yolo",
                        help="yolo: ONNX on onnxruntime; pytorch: TorchScript whose output is a YOLO layout; "
                             "tflite: LiteRT; tensorflow: a SavedModel")
    parser.add_argument("--batch-max-size", type=int, default=0, help="dynamic batching: at most this many "
                        "requests in one run (0: off)")
    parser.add_argument("--batch-max-delay-ms", type=float, default=2.0, help="dynamic batching: how long the "
                        "first request of a batch waits for others")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    batch = BatchPolicy(args.batch_max_size, args.batch_max_delay_ms) if args.batch_max_size > 1 else None
    serve("yolo", args, lambda: YoloDetector(YoloModel(args.model, threads=args.threads, model_type=args.model_type,
                                                       batch=batch), args.name),
          min_request_threads=batch.max_size if batch else 0)


if __name__ == "__main__":
    main()
