"""Test helper: the real YOLO ONNX model converted to TensorFlow formats with onnx2tf, cached between runs.

``onnxslim`` fixes the input shape (onnx2tf needs a static one), ``onnx2tf`` writes a SavedModel and a
float32 TFLite file (NHWC), and the ONNX model's class names and input size are added as Ultralytics adds
them: appended to the .tflite as a zip holding ``metadata.json``, and as ``metadata.yaml`` in the
SavedModel, which is then zipped (a model the node's store can carry is one file). The conversion runs in
subprocesses (TensorFlow stays out of the test process) and lands in ``~/.cache/cnet-tests`` under a key of
the model's and onnx2tf's versions, so later runs of the suite reuse it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata as distributions
from pathlib import Path

import numpy as np
import onnx
import yaml

from inference.model_metadata import input_size, parse_names

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnet-tests" / "tensorflow"
BIN = Path(sys.executable).parent
CALIBRATION = "calibration_image_sample_data_20x128x128x3_float32.npy"  # onnx2tf downloads it when missing
CONVERT_TIMEOUT_S = 600


@dataclass(frozen=True)
class TensorFlowModels:
    tflite: Path  # float32, with its metadata appended
    saved_model_zip: Path  # the SavedModel directory, metadata.yaml in it, as one zip


def converted(onnx_path: str) -> TensorFlowModels:
    """The TensorFlow forms of ``onnx_path``: from the cache, else converted now (about 10 s)."""
    digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()[:16]
    folder = CACHE / f"{digest}-onnx2tf-{distributions.version('onnx2tf')}"
    models = TensorFlowModels(folder / "model_float32.tflite", folder / "saved_model.zip")
    if not (models.tflite.is_file() and models.saved_model_zip.is_file()):
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
            _convert(onnx_path, Path(scratch))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(Path(scratch) / "done", folder)  # whole or not at all
    return models


def _convert(onnx_path: str, scratch: Path) -> None:
    model = onnx.load(onnx_path)
    found = {entry.key: entry.value for entry in model.metadata_props}
    dims = model.graph.input[0].type.tensor_type.shape.dim
    height, width = input_size(dims[2].dim_value or None, dims[3].dim_value or None, found.get("imgsz"))
    np.save(scratch / CALIBRATION, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    _run([BIN / "onnxslim", onnx_path, "static.onnx", "--input-shapes",
          f"{model.graph.input[0].name}:1,3,{height},{width}"], scratch)
    _run([BIN / "onnx2tf", "-i", "static.onnx", "-o", "saved_model", "-n"], scratch)
    metadata = {"names": parse_names(found.get("names")), "imgsz": [height, width]}
    done = scratch / "done"
    done.mkdir()
    tflite = done / "model_float32.tflite"
    shutil.copy(scratch / "saved_model" / "static_float32.tflite", tflite)
    with zipfile.ZipFile(tflite, "a", zipfile.ZIP_DEFLATED) as appended:
        appended.writestr("metadata.json", json.dumps(metadata))
    saved = scratch / "saved_model"
    for extra in saved.glob("*.tflite"):
        extra.unlink()
    (saved / "metadata.yaml").write_text(yaml.safe_dump(metadata))
    shutil.make_archive(str(done / "saved_model"), "zip", saved)


def _run(argv: list[object], cwd: Path) -> None:
    finished = subprocess.run([str(part) for part in argv], cwd=cwd, capture_output=True, text=True,
                              timeout=CONVERT_TIMEOUT_S)
    if finished.returncode != 0:
        raise RuntimeError(f"{Path(str(argv[0])).name} failed ({finished.returncode}): {finished.stderr[-2000:]}")
