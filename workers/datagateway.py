"""Executor of ``datagateway`` workloads: the read-only S3 gateway over a directory below the node's data path
(or ``gateway.allowed_roots``), with SigV4 keys required off loopback; its secret reaches it in its
environment, never its command line, and readers of the record see it hidden."""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from cnetd.common.addresses import is_loopback
from cnetd.common.errors import Invalid, Unprocessable
from gateway import RESERVED_BUCKETS, SECRET_KEY_ENV
from ledger.records import WorkloadRecord
from cnetd.common.addresses import HIDDEN
from workers.base import NodeContext, PlainProgram, ProgramSpec, config_schema, reject_unknown_fields
from workers.service_program import SERVICE_FIELDS, SERVICE_SCHEMAS, service_spec, validate_service_fields
from workers.workload_files import readable_by

BUCKET_PATTERN = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"  # S3's rule, from one character


def _below(path: str, root: str) -> bool:
    """Whether ``path`` (links resolved) is ``root`` or lies below it."""
    real_path, real_root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real_path, real_root]) == real_root


class DataGatewayExecutor(PlainProgram):
    type_name = "datagateway"
    config_schema = config_schema({
        "base_path": {"type": "string", "description": "a directory below the data path or gateway.allowed_roots"},
        "bucket": {"type": "string", "pattern": BUCKET_PATTERN, "description": "default cnet"},
        "access_key": {"type": "string", "minLength": 1}, "secret_key": {"type": "string", "minLength": 1},
        **SERVICE_SCHEMAS}, required=("base_path",))

    def validate(self, config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
        reject_unknown_fields(config, ("base_path", "bucket", "access_key", "secret_key", *SERVICE_FIELDS))
        base_path = config.get("base_path")
        if not isinstance(base_path, str):
            raise Invalid("config.base_path: required, a directory")
        if not os.path.isdir(base_path):
            raise Unprocessable(f"config.base_path: {base_path!r} is not a directory on this node")
        if not any(_below(base_path, root) for root in node.gateway_roots):
            raise Unprocessable(f"config.base_path: {base_path!r} is not below this node's data path (storage.sqlite."
                          "data_path) or gateway.allowed_roots")
        bucket = config.get("bucket", "cnet")
        if not isinstance(bucket, str) or not re.fullmatch(BUCKET_PATTERN, bucket):
            raise Invalid(f"config.bucket: {bucket!r} is not a bucket name (S3's rule: up to 63 of a-z, 0-9, '.', '-')")
        if bucket in RESERVED_BUCKETS:
            raise Unprocessable(f"config.bucket: {bucket!r} is one of the gateway's own paths ({', '.join(RESERVED_BUCKETS)})")
        address = validate_service_fields(config, node)
        if address["user"] is not None and not readable_by(Path(base_path), address["user"]):
            raise Unprocessable(f"config.base_path: {base_path!r} is not readable by {address['user']}, who the gateway "
                          "runs as (workloads.user): make it readable to that user")
        keys = _gateway_keys(config, address["service_host"])
        return {"base_path": os.path.realpath(base_path), "bucket": bucket, **keys, **address}

    def program(self, record: WorkloadRecord, node: NodeContext) -> ProgramSpec:
        config = record.config
        signed = ["--access-key", config["access_key"]] if config.get("access_key") else []
        spec = service_spec(record, node, "gateway.server",
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
            raise Unprocessable(f"config.access_key: a gateway on {host} is reachable from other machines and needs "
                          "access_key and secret_key (requests are then checked with AWS SigV4)")
        return {}
    if not (isinstance(access_key, str) and access_key and isinstance(secret_key, str) and secret_key):
        raise Invalid("config.access_key, config.secret_key: give both, as non-empty strings")
    return {"access_key": access_key, "secret_key": secret_key}
