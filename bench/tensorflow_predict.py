"""TFLite (LiteRT) and SavedModel (TensorFlow) services against onnxruntime's for the same model, in one run.

    .venv/bin/python bench/tensorflow_predict.py [--cpu 2] [--seconds 5]

The test YOLOv8n converted by onnx2tf (``tests.support.tf_models``, cached). Baselines in this process:
each backend's in-process pipeline (decode, letterbox, run, NMS) with ``--cpu`` threads. Then each as
``cnet-inference-yolo --model-type T --threads CPU``, /predict at 1 and 4 clients with a 640×480 JPEG.
Prints JSON: medians and p99 in ms, requests/s, service CPU s per request, and ratios against onnxruntime.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.goals import measured  # noqa: E402
from bench.predict_latency import pipeline_ms, predict_load, service, service_arguments, the_jpeg  # noqa: E402
from inference.yolo_model import YoloModel  # noqa: E402
from tests.support.assets import YOLO_MODEL  # noqa: E402
from tests.support.tf_models import converted  # noqa: E402


def main() -> None:
    args = service_arguments()
    jpeg = the_jpeg()
    tf_models = converted(YOLO_MODEL)
    models = {"yolo": YOLO_MODEL, "tflite": str(tf_models.tflite), "tensorflow": str(tf_models.saved_model_zip)}
    results: dict[str, Any] = {"image": "640x480 JPEG", "cpu": args.cpu}
    with tempfile.TemporaryDirectory() as log_dir:
        for model_type, path in models.items():
            model = YoloModel(path, threads=args.cpu, model_type=model_type)
            entry: dict[str, Any] = {"in_process_pipeline_ms": pipeline_ms(model, jpeg, 100)}
            del model
            process, url = service(args.cpu, ["--model-type", model_type], log_dir, model=path)
            try:
                entry["predict"] = {clients: predict_load(url, jpeg, process.pid, clients, args.seconds)
                                    for clients in (1, 4)}
            finally:
                process.terminate()
                process.wait(timeout=30)
            results[model_type] = entry
    onnx = results["yolo"]
    for model_type in ("tflite", "tensorflow"):
        mine = results[model_type]
        results[f"{model_type}_over_onnxruntime"] = {
            "in_process_ms": round(mine["in_process_pipeline_ms"] / onnx["in_process_pipeline_ms"], 2),
            "predict_p50_ms_at_1": round(mine["predict"][1]["p50_ms"] / onnx["predict"][1]["p50_ms"], 2),
            "predict_rps_at_4": round(mine["predict"][4]["rps"] / onnx["predict"][4]["rps"], 2),
            "cpu_s_per_request_at_4": round(mine["predict"][4]["cpu_s_per_request"]
                                            / onnx["predict"][4]["cpu_s_per_request"], 2)}
    results["goals"] = {f"{model_type}_over_onnxruntime.predict_p50_ms_at_1":
                        measured(results[f"{model_type}_over_onnxruntime"]["predict_p50_ms_at_1"],
                                 "another runtime for the same model, compared") for model_type in ("tflite", "tensorflow")}
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


if __name__ == "__main__":
    main()
