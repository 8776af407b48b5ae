"""Executor of ``mlmodel`` workloads: a YOLO model (ONNX on onnxruntime; TorchScript, TFLite or a SavedModel
archive on their optional runtimes) served over HTTP.

``model_path`` names where the model comes from (a path, ``data://``, ``http(s)://``: see
``cnetd.models``); the scheduler brings it to this node and adds ``model_sha256`` and ``model_file`` (where
this node holds it) before the program is made. The model is checked in a short subprocess
(``python -m inference.yolo_model``), so the node's processes never load onnxruntime or torch; a model the
service's user cannot read is copied into its dir (0400).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

from cnetd.common.errors import Invalid, Unprocessable
from ledger.records import WorkloadRecord
from workers.base import NodeContext, PlainProgram, ProgramSpec, at_workload_priority, config_schema, reject_unknown_fields
from cnetd.common.model_sources import MODEL_PATH_PATTERN, SHA256_PATTERN, check_sha256, parse_source
from workers.service_program import (SERVICE_FIELDS, SERVICE_SCHEMAS, WARMUP_FIELDS, WARMUP_SCHEMAS, service_home,
                                     service_spec, service_user, validate_service_fields, validate_warmup,
                                     warmup_arguments)
from workers.workload_files import readable_copy

SUPPORTED_MODEL_TYPES = ("yolo", "pytorch", "tflite", "tensorflow")
RUNTIMES = {"pytorch": ("torch", "PyTorch", "torch"), "tflite": ("ai_edge_litert", "LiteRT", "tflite"),
            "tensorflow": ("tensorflow", "TensorFlow", "tensorflow")}  # optional: module, name, pip extra
DERIVED_FIELDS = ("model_file",)  # added by the node that runs it, never submitted
MAX_BATCH, MAX_BATCH_DELAY_MS, DEFAULT_BATCH_DELAY_MS = 64, 1000, 2.0
CHECK_TIMEOUT_S = 120
_models_passed: set[tuple[str, str]] = set()  # (sha256, model type) of models that loaded, in this process


class YoloExecutor(PlainProgram):
    type_name = "mlmodel"
    serves_a_model = True
    replicable = True
    config_schema = config_schema({
        "model_type": {"enum": list(SUPPORTED_MODEL_TYPES)},
        "model_path": {"type": "string", "pattern": MODEL_PATH_PATTERN, "description":
                       "a YOLO model (.onnx, .torchscript, .tflite, a zip or tar of a SavedModel): a path on this node, data://DATA_KEY/FILE, an http(s):// URL "
                       "or s3://BUCKET/KEY"},
        "model_sha256": {"type": ["string", "null"], "pattern": SHA256_PATTERN,
                         "description": "what the model's bytes must hash to"},
        "batch": {"type": ["object", "null"], "additionalProperties": False, "required": ["max_size"],
                  "description": "dynamic batching (off without it): requests arriving within max_delay_ms of "
                                 "the first, up to max_size, run as one batch",
                  "properties": {"max_size": {"type": "integer", "minimum": 2, "maximum": MAX_BATCH},
                                 "max_delay_ms": {"type": "number", "minimum": 0, "maximum": MAX_BATCH_DELAY_MS}}},
        **SERVICE_SCHEMAS, **WARMUP_SCHEMAS}, required=("model_type", "model_path"))

    def feature(self, config: dict[str, Any]) -> str:
        """``mlmodel/<model_type>``: a node runs a model type when it has its runtime."""
        model_type = config.get("model_type")
        return f"{self.type_name}/{model_type}" if model_type in SUPPORTED_MODEL_TYPES else self.type_name

    def features(self, node: NodeContext) -> dict[str, str | None]:
        """The type itself (a config of no known model type is refused by ``validate``, the same everywhere),
        and each model type, offered when its runtime is here."""
        offered: dict[str, str | None] = {self.type_name: None}
        for model_type in SUPPORTED_MODEL_TYPES:
            module, runtime, extra = RUNTIMES.get(model_type, ("onnxruntime", "onnxruntime", ""))
            offered[f"{self.type_name}/{model_type}"] = None if importlib.util.find_spec(module) else \
                f"needs {runtime}" + (f": pip install '.[{extra}]'" if extra else "")
        return offered

    def validate(self, config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
        reject_unknown_fields(config, ("model_type", "model_path", "model_sha256", "batch", *SERVICE_FIELDS,
                                       *WARMUP_FIELDS))
        model_type = config.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise Invalid(f"config.model_type: {model_type!r} is not supported (supported: "
                          f"{', '.join(SUPPORTED_MODEL_TYPES)})", supported=list(SUPPORTED_MODEL_TYPES))
        if model_type in RUNTIMES and importlib.util.find_spec(RUNTIMES[model_type][0]) is None:
            module, runtime, extra = RUNTIMES[model_type]
            raise Unprocessable(f"config.model_type: {model_type!r} needs {runtime} on this node: "
                                f"pip install '.[{extra}]'", extra=extra)
        path = config.get("model_path")
        if not isinstance(path, str) or not path:
            raise Invalid("config.model_path: required, where the YOLO model is (a path, data://, http(s)://, s3://)")
        parse_source(path)
        batch = _batch(config.get("batch"))
        return {"model_type": model_type, "model_path": path, "model_sha256": check_sha256(config.get("model_sha256")),
                **({"batch": batch} if batch else {}), **validate_warmup(config), **validate_service_fields(config, node)}

    def shown_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """A model's URL as ``Source.shown`` gives it: a delegated deployment's signed link without its signature."""
        return {**config, "model_path": parse_source(config["model_path"]).shown} if "model_path" in config else config

    def check(self, config: dict[str, Any], node: NodeContext) -> None:
        """The model loads (``python -m inference.yolo_model``, a short subprocess), once per model: a model
        that passed is known by its sha256 (the node's cache verified it), so a replica of it, or a start
        from zero, starts without checking it again."""
        passed = (config.get("model_sha256"), config["model_type"])
        if passed in _models_passed:
            return
        _check_model(config["model_file"], config["model_type"], parse_source(config["model_path"]).shown, node)
        if passed[0]:
            _models_passed.add(passed)

    def program(self, record: WorkloadRecord, node: NodeContext) -> ProgramSpec:
        path = record.config["model_file"]
        self.check(record.config, node)
        suffix = Path(path).suffix or Path(parse_source(record.config["model_path"]).name).suffix
        model = readable_copy(path, service_home(record, node), "model" + suffix, service_user(record, node))
        batch = record.config.get("batch")
        batching = ["--batch-max-size", str(batch["max_size"]), "--batch-max-delay-ms", str(batch["max_delay_ms"])] \
            if batch else []
        return service_spec(record, node, "inference.yolo_service",
                             ["--model", model, "--model-type", record.config["model_type"], f"--name={record.name}",
                              *batching, *warmup_arguments(record, node)])


def _batch(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"max_size", "max_delay_ms"}:
        raise Invalid("config.batch: expected {max_size, max_delay_ms}")
    size, delay = raw.get("max_size"), raw.get("max_delay_ms", DEFAULT_BATCH_DELAY_MS)
    whole = isinstance(size, int) or (isinstance(size, float) and size.is_integer())
    if isinstance(size, bool) or not whole or not 2 <= size <= MAX_BATCH:
        raise Invalid(f"config.batch.max_size: expected a whole number from 2 to {MAX_BATCH}")
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_BATCH_DELAY_MS:
        raise Invalid(f"config.batch.max_delay_ms: expected milliseconds from 0 to {MAX_BATCH_DELAY_MS}")
    return {"max_size": int(size), "max_delay_ms": float(delay)}


def _check_model(path: str, model_type: str, source: str, node: NodeContext) -> None:
    """Load the model once in a short subprocess, at the workloads' priority; 422 naming ``source`` and why it
    is not a YOLO model."""
    try:
        command = at_workload_priority([sys.executable, "-m", "inference.yolo_model", path, model_type], node)
        check = subprocess.run(command, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise Unprocessable(f"config.model_path: loading {source} took over {CHECK_TIMEOUT_S} s") from None
    last = (check.stderr.strip().splitlines() or ["no output"])[-1]  # a runtime may log before it
    if check.returncode == 2:
        raise Unprocessable(f"config.model_path: {source}: {last}", artifact=source)
    if check.returncode != 0:
        raise Unprocessable(f"config.model_path: {source} could not be loaded ({last})", artifact=source)
