"""Executors of services: ``mlmodel`` (YOLO on onnxruntime), ``opencv`` (Haar cascades) and ``datagateway``.

Each runs its inference server as a supervised program on ``service_host:service_port`` (a free port is
chosen when none is given), restarted after a crash at most three times, ready once ``/health`` answers.
Like process workloads, a service runs as ``workloads.user`` (or the ``user`` it asks for, within what the
node allows), in its own dir, which holds its log and, when that user cannot read the model, a copy of it.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import socket
import sys
from pathlib import Path
from typing import Any

from cnetd.common.addresses import is_loopback
from cnetd.common.errors import Invalid
from cnetd.private_files import make_workload_dir
from gateway.keys import UnsafeKey, safe_relative
from gateway.server import SECRET_KEY_ENV
from inference.haar import CASCADE_FILES
from inference.yolo_model import NotAYoloModel, YoloModel
from ledger.records import WorkloadRecord
from workers.base import HIDDEN, NodeContext, PlainProgram, ProgramSpec, choose_user, reject_unknown_fields
from workers.workload_files import READ, SEARCH, readable_by, readable_copy

SUPPORTED_MODEL_TYPES = ("yolo", "pytorch")
_SERVICE_FIELDS = ("service_port", "service_host", "user")


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def validate_service_fields(config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
    """``service_host`` (default 127.0.0.1) and ``service_port`` (checked free, or a free one chosen), and
    the ``user`` it runs as."""
    host = config.get("service_host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise Invalid("config.service_host: expected a host name or address")
    port = config.get("service_port")
    if port is None:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    elif not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise Invalid(f"config.service_port: expected a port number 1-65535, got {port!r}")
    elif not _port_is_free(host, port):
        raise Invalid(f"config.service_port: {host}:{port} is already in use on this node")
    user = choose_user(config.get("user"), node)
    if user is not None and not readable_by(Path(sys.executable), user, READ | SEARCH):
        raise Invalid(f"config.user: {user} cannot run this node's Python ({sys.executable}); build the node's "
                      "venv from a Python every user can run (make does, with /usr/bin/python3)")
    return {"service_host": host, "service_port": port, "user": user}


def _below(path: str, root: str) -> bool:
    """Whether ``path`` (links resolved) is ``root`` or lies below it."""
    real_path, real_root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real_path, real_root]) == real_root


def _service_user(record: WorkloadRecord, node: NodeContext) -> str | None:
    return record.config.get("user", node.workload_user)  # records from before services had users: the default


def _service_home(record: WorkloadRecord, node: NodeContext) -> Path:
    """The service's own dir (its cwd and log dir), owned by the user it runs as."""
    folder = node.paths.workload_dir(record.id)
    make_workload_dir(folder, _service_user(record, node))
    return folder


def _service_spec(record: WorkloadRecord, node: NodeContext, module: str, arguments: list[str],
                  min_threads: int = 1) -> ProgramSpec:
    host, port = record.config["service_host"], record.config["service_port"]
    # Compute-bound services get a thread per cpu; I/O-bound ones at least ``min_threads``.
    threads = max(min_threads, math.ceil(record.requirements.cpu))
    home = str(_service_home(record, node))
    argv = [sys.executable, "-m", module, *arguments, "--port", str(port), "--host", host,
            "--threads", str(threads), "--log-dir", home]
    public_host = "127.0.0.1" if host == "0.0.0.0" else host
    endpoint = f"http://{public_host}:{port}"
    return ProgramSpec(argv=argv, env={"CNET_WORKLOAD_ID": record.id, "CNET_NODE_ID": node.node_id},
                       cwd=home, restart_policy="always", endpoint=endpoint, health_url=f"{endpoint}/health",
                       user=_service_user(record, node))


class YoloExecutor(PlainProgram):
    type_name = "mlmodel"

    def validate(self, config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
        reject_unknown_fields(config, ("model_type", "model_path", *_SERVICE_FIELDS))
        model_type = config.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise Invalid(f"config.model_type: {model_type!r} is not supported (supported: "
                          f"{', '.join(SUPPORTED_MODEL_TYPES)})", supported=list(SUPPORTED_MODEL_TYPES))
        if model_type == "pytorch" and importlib.util.find_spec("torch") is None:
            raise Invalid("config.model_type: 'pytorch' needs PyTorch on this node: pip install '.[torch]'")
        path = config.get("model_path")
        if not isinstance(path, str) or not path:
            raise Invalid("config.model_path: required, the path of a YOLO model on this node")
        try:
            YoloModel(path, threads=1, model_type=model_type)
        except NotAYoloModel as exc:
            raise Invalid(f"config.model_path: {exc}") from None
        return {"model_type": model_type, "model_path": path, **validate_service_fields(config, node)}

    def program(self, record: WorkloadRecord, node: NodeContext) -> ProgramSpec:
        path = record.config["model_path"]
        model = readable_copy(path, _service_home(record, node), "model" + Path(path).suffix,
                              _service_user(record, node))
        return _service_spec(record, node, "inference.yolo_service",
                             ["--model", model, "--model-type", record.config["model_type"]])


class OpenCVExecutor(PlainProgram):
    type_name = "opencv"

    def validate(self, config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
        reject_unknown_fields(config, ("cascade_type", *_SERVICE_FIELDS))
        cascade = config.get("cascade_type", "face")
        if cascade not in CASCADE_FILES:
            raise Invalid(f"config.cascade_type: expected one of {', '.join(CASCADE_FILES)}, got {cascade!r}")
        return {"cascade_type": cascade, **validate_service_fields(config, node)}

    def program(self, record: WorkloadRecord, node: NodeContext) -> ProgramSpec:
        return _service_spec(record, node, "inference.opencv_service", ["--cascade", record.config["cascade_type"]])


class DataGatewayExecutor(PlainProgram):
    type_name = "datagateway"

    def validate(self, config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
        reject_unknown_fields(config, ("base_path", "bucket", "access_key", "secret_key", *_SERVICE_FIELDS))
        base_path = config.get("base_path")
        if not isinstance(base_path, str) or not os.path.isdir(base_path):
            raise Invalid(f"config.base_path: {base_path!r} is not a directory on this node")
        if not any(_below(base_path, root) for root in node.gateway_roots):
            raise Invalid(f"config.base_path: {base_path!r} is not below this node's data path (storage.sqlite."
                          "data_path) or gateway.allowed_roots")
        bucket = config.get("bucket", "cnet")
        try:
            if not isinstance(bucket, str) or "/" in safe_relative(bucket).as_posix():
                raise UnsafeKey(bucket)
        except UnsafeKey:
            raise Invalid(f"config.bucket: {bucket!r} is not a bucket name") from None
        address = validate_service_fields(config, node)
        if address["user"] is not None and not readable_by(Path(base_path), address["user"]):
            raise Invalid(f"config.base_path: {base_path!r} is not readable by {address['user']}, who the gateway "
                          "runs as (workloads.user): make it readable to that user")
        keys = _gateway_keys(config, address["service_host"])
        return {"base_path": os.path.realpath(base_path), "bucket": bucket, **keys, **address}

    def program(self, record: WorkloadRecord, node: NodeContext) -> ProgramSpec:
        config = record.config
        signed = ["--access-key", config["access_key"]] if config.get("access_key") else []
        spec = _service_spec(record, node, "gateway.server",
                             ["--base-path", config["base_path"], "--bucket", config["bucket"], *signed], min_threads=8)
        if signed:  # the secret goes in its environment, never its command line
            spec = dataclasses.replace(spec, env={**spec.env, SECRET_KEY_ENV: config["secret_key"]})
        return spec

    def shown_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "secret_key": HIDDEN} if config.get("secret_key") else config


def _gateway_keys(config: dict[str, Any], host: str) -> dict[str, str]:
    """``access_key`` and ``secret_key``, both or neither; required when the gateway binds off loopback."""
    access_key, secret_key = config.get("access_key"), config.get("secret_key")
    if access_key is None and secret_key is None:
        if not is_loopback(host):
            raise Invalid(f"config.access_key: a gateway on {host} is reachable from other machines and needs "
                          "access_key and secret_key (requests are then checked with AWS SigV4)")
        return {}
    if not (isinstance(access_key, str) and access_key and isinstance(secret_key, str) and secret_key):
        raise Invalid("config.access_key, config.secret_key: give both, as non-empty strings")
    return {"access_key": access_key, "secret_key": secret_key}
