"""The node API's OpenAPI 3 document, served at /api/openapi.json.

Written once here, next to the routes it describes; tests keep it true (every route and method is in it and
nothing else is, and schemathesis fuzzes the live API against it, checking every answer's status and shape).
"""
from __future__ import annotations

from typing import Any

from cnetd import __version__
from cnetd.api.events import FOLLOW_MAX_S, MAX_FOLLOWERS
from cnetd.api.limits import (CHILDREN_PAGE_DEFAULT, LOG_CHUNK_MAX_BYTES, LOG_OFFSET_MAX, LOG_STREAMS, LOG_TAIL_MAX,
                              PAGE_AFTER_MAX_CHARS, PAGE_MAX, PREDICT_MAX_BYTES)
from cnetd.api.paging import POSITION_PATTERN
from cnetd.core.config import MAX_REPLICAS
from cnetd.core.deployment_spec import MAX_DEPLOYMENT_ID, PLACEMENTS, REVISION_STATES, SPREADS
from cnetd.core.submission import MAX_CONSTRAINT_LABELS, MAX_NAME, MAX_REQUIREMENT, NAME_PATTERN, WORKLOAD_ID_PATTERN
from inference.request_limits import BASE64_IMAGE_PATTERN, MAX_DETECTIONS, V2_DATATYPES
from ledger.records import RESOURCE_KINDS
from mesh.messages import API_URL_PATTERN, LABEL_PATTERN, MESH_ENDPOINT_PATTERN, NODE_ID_PATTERN
from workers.registry import EXECUTORS
from workers.stream import MAX_KEEP_EVENTS

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref(schema))}


_ERROR_MEANINGS = {
    "400": "invalid request: the message says which field and why",
    "401": "a change, or a read outside auth.open_reads, without the node's bearer token (auth.token)",
    "403": "a change from a web page that is not this node's console (foreign Origin)",
    "415": "a change with a text/plain, form or untyped body (what a web page may send unasked)",
    "421": "a Host name this node is not known by (api.allowed_hosts lists more)",
    "404": "no such workload, data, neighbour or route",
    "405": "method not allowed on this path",
    "409": "no node had room, delegation refused or still being settled, not running, not a service, or data "
           "(delete it)",
    "408": "the request did not arrive by its deadline (api.client_timeout_s, api.client_min_rate_bytes_s)",
    "411": "an upload without Content-Length",
    "413": "request body over the node's limit",
    "416": "a range that starts past the end",
    "422": "well-formed but not something to act on: bytes that are not an image, a class the model lacks, "
           "one upload naming a file twice",
    "503": "the scheduler is down (scheduler_unavailable), the node is stopping (node_stopping), a forward's "
           "outcome is not known yet (delegation_unknown), or a container engine, a neighbour or a service does "
           "not answer (unavailable: a submission's then lists each node's refusal in `refused`)",
    "507": "a disk filled up (insufficient_storage): the data disk during an upload (nothing of it is kept), or the "
           "ledger's, which could not record the change (nothing was done)",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _answer(_ERROR_MEANINGS[code], "Error") for code in codes}


# Refused by the HTTP server before the API sees the request (in the same JSON shape).
_SERVER_LIMITS = {code: _answer(description, "Error") for code, description in (
    ("414", "request line over 4094 bytes"), ("431", "request headers too large"))}


def _operation(summary: str, ok: tuple[str, str, dict[str, Any]], *errors: str,
               responses_extra: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """One operation; every one may answer 421 (RequestGuard), and a secured one (a change, or a read that
    needs the token) 401, 403 and 415."""
    status, description, content = ok
    guarded = ("401", "403", "415") if "security" in extra else ()
    codes = sorted({*errors, *guarded, "421"})
    return {"summary": summary, "responses": {status: {"description": description, "content": content},
                                               **(responses_extra or {}), **_errors(*codes), **_SERVER_LIMITS},
            **extra}


def _without(schema: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {**schema, "properties": {name: value for name, value in schema["properties"].items() if name not in fields}}


def _submission(workload_type: str, config: dict[str, Any], replicable: bool) -> dict[str, Any]:
    """A submission of one workload type, its config as that type's executor checks it (with the fields of a
    deployment of replicas, for a type that has them)."""
    schema = {"type": "object", "required": ["type", *(["config"] if config["required"] else [])],
            "additionalProperties": False, "properties": {
                "id": {"type": "string", "pattern": WORKLOAD_ID_PATTERN,
                       "description": "optional; the same id submitted twice runs once"},
                "name": {"type": "string", "maxLength": MAX_NAME, "pattern": NAME_PATTERN},
                "type": {"const": workload_type}, "config": config,
                "requirements": _RESOURCES,
                "constraints": {"type": ["object", "null"], "additionalProperties": False, "description":
                                "what the node that runs it must carry: labels (agent.labels) with these values",
                                "properties": {"labels": {
                                    "type": "object", "maxProperties": MAX_CONSTRAINT_LABELS,
                                    "propertyNames": {"pattern": LABEL_PATTERN},
                                    "additionalProperties": {"type": "string", "pattern": LABEL_PATTERN}}}},
                "delegation": {"type": "object", "required": ["visited"], "description":
                               "set by a delegating node: the nodes already visited, the forward's attempt id, the "
                               "seconds left for onward delegation; settle asks what became of that attempt",
                               "properties": {"visited": {"type": "array", "items": {"type": "string"}},
                                              "attempt": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
                                              "budget_s": {"type": ["number", "null"], "minimum": 0},
                                              "settle": {"type": "boolean"}},
                               "if": {"required": ["settle"], "properties": {"settle": {"const": True}}},
                               "then": {"required": ["attempt"], "properties": {"attempt": {"type": "string"}}}}}}
    if replicable:
        schema["properties"].update(_DEPLOYMENT_FIELDS)
        a_deployment = {"anyOf": [{"required": ["replicas"]}, {"required": ["autoscale"]}]}
        schema["dependentSchemas"] = {name: a_deployment for name in ("spread", "placement", "update", "reschedule")}
        schema["not"] = {"required": ["replicas", "autoscale"]}  # autoscale sets the count
        schema["if"] = a_deployment  # its replicas' ids add "-rN" to its own
        schema["then"] = {"properties": {"id": {"maxLength": MAX_DEPLOYMENT_ID}}}
    return schema


_REPLICAS = {"type": "integer", "minimum": 1, "maximum": MAX_REPLICAS}
_SECONDS = {"type": "number", "minimum": 0}
_NEXT = {"type": ["string", "null"], "description": "with limit, where this page ended (pass it as after); null on the "
                                                     "last page"}
_UPDATE = {"type": ["object", "null"], "additionalProperties": False, "description":
           "how a new revision rolls out (defaults: one replica at a time, each healthy 2 s before an old one "
           "drains; rolled back when a new one fails)", "properties": {
               "max_parallel": {"type": "integer", "minimum": 1, "maximum": MAX_REPLICAS},
               "min_healthy_s": {**_SECONDS, "maximum": 3600},
               "healthy_deadline_s": {"type": "number", "minimum": 1, "maximum": 86400},
               "progress_deadline_s": {"type": "number", "minimum": 1, "maximum": 7 * 86400},
               "canary": {"type": "integer", "minimum": 0, "maximum": MAX_REPLICAS},
               "auto_promote": {"type": "boolean"}, "auto_revert": {"type": "boolean"}}}
_RESCHEDULE = {"type": ["object", "null"], "additionalProperties": False, "description":
               "how a replica that failed after its restarts is replaced on another node: at most attempts within "
               "interval_s, after delay_s doubling up to max_delay_s", "properties": {
                   "attempts": {"type": "integer", "minimum": 0, "maximum": 1000},
                   "interval_s": {"type": "number", "minimum": 1, "maximum": 30 * 86400},
                   "delay_s": {**_SECONDS, "maximum": 86400}, "max_delay_s": {
                   **_SECONDS, "maximum": 86400, "description": "at least delay_s (a 400 otherwise); default: 60, or "
                   "delay_s when that is more"}}}
_AUTOSCALE = {"type": "object", "additionalProperties": False, "description":
              "a deployment whose count follows the load: the requests in flight through its endpoint, averaged "
              "over metrics_window_s, against target_ongoing_requests per replica; up after upscale_delay_s of "
              "more, down after downscale_delay_s of less (min_replicas 0: none when idle, the next request held "
              "while one starts)", "properties": {
                  "min_replicas": {"type": "integer", "minimum": 0, "maximum": MAX_REPLICAS, "default": 1},
                  "max_replicas": {"type": "integer", "minimum": 1, "maximum": MAX_REPLICAS, "default": 4,
                                   "description": "at least min_replicas (a 400 otherwise)"},
                  "target_ongoing_requests": {"type": "number", "minimum": 0.01, "maximum": 10_000, "default": 2},
                  "upscale_delay_s": {**_SECONDS, "maximum": 3600, "default": 5},
                  "downscale_delay_s": {**_SECONDS, "maximum": 86400, "default": 60},
                  "metrics_window_s": {"type": "number", "minimum": 0.5, "maximum": 3600, "default": 5}}}
_DECISION = {"type": "object", "required": ["at", "from", "to", "reason"], "properties": {
    "at": {"type": "number"}, "from": {"type": "integer"}, "to": {"type": "integer"}, "reason": {"type": "string"}}}
_AUTOSCALE_STATE = {"type": ["object", "null"], "description": "an autoscaled deployment's policy, signal and "
                    "decisions", "required": ["policy", "signal", "decision", "history", "limited"], "properties": {
                        "policy": _AUTOSCALE,
                        "signal": {"type": "number", "description": "ongoing requests, averaged over the window"},
                        "decision": {"oneOf": [_DECISION, {"type": "null"}]},
                        "history": {"type": "array", "items": _DECISION, "description": "the last 20 decisions"},
                        "limited": {"type": ["object", "null"], "description": "no node had room for more: the "
                                    "count it stays at (replicas), since (at) and why (reason)"},
                        "cold_start_s": {"type": "number", "description": "the last start from zero: from the "
                                         "decision to a replica serving"}}}
_DEPLOYMENT_FIELDS = {
    "replicas": {**_REPLICAS, "description": "a deployment of this many instances behind one endpoint"},
    "autoscale": _AUTOSCALE,
    "spread": {"enum": list(SPREADS), "description": "node (default): replicas on distinct nodes when possible"},
    "placement": {"enum": list(PLACEMENTS), "description": "all-or-nothing (default): refuse when not all fit; "
                  "best-effort: run what fits"},
    "update": _UPDATE, "reschedule": _RESCHEDULE}


_PATH_ID = {"name": "workload_id", "in": "path", "required": True, "schema": {"type": "string"}}
_PATH_KEY = {"name": "data_key", "in": "path", "required": True, "schema": {"type": "string"}}
_BYTES = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_PATH_SHA = {"name": "sha256", "in": "path", "required": True, "schema": {"type": "string"}}
_PATH_NODE = {"name": "node_id", "in": "path", "required": True, "schema": {"type": "string"}}
_SECURED = {"security": [{"bearer": []}, {}]}  # needed only when the node has a token

_RESOURCES = {"type": "object", "additionalProperties": False,
              "properties": {kind: {"type": "number" if kind == "cpu" else "integer", "minimum": 0,
                                    "maximum": MAX_REQUIREMENT} for kind in RESOURCE_KINDS}}
_NULLABLE_STRING = {"type": ["string", "null"]}
_UNIT = {"type": "number", "minimum": 0, "maximum": 1}
_INFER_PARAMETERS = {"type": "object", "description": "binary_data_output, and /predict's options for an image",
                     "properties": {"binary_data_output": {"type": "boolean"}, "confidence": _UNIT, "iou": _UNIT,
                                    "max_detections": {"type": "integer", "minimum": 1, "maximum": MAX_DETECTIONS},
                                    "classes": {"type": "array", "items": {"type": ["integer", "string"]}}}}
_PATH_MODEL = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "the model's name: the workload's name"}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "message"],
              "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
    "Resources": {**_RESOURCES, "required": list(RESOURCE_KINDS)},
    "Usage": {"type": "object", "required": ["capacity", "allocated", "available"],
              "properties": {name: _ref("Resources") for name in ("capacity", "allocated", "available")}},
    "Gpu": {"type": "object", "required": ["index"], "properties": {
        "index": {"type": "integer"}, "name": {"type": "string"}, "memory_total": {"type": "integer"},
        "workload": _NULLABLE_STRING}},
    "NodeResources": {"allOf": [_ref("Usage"), {"type": "object", "required": ["node", "gpus"], "properties": {
        "node": {"type": "string"}, "gpus": {"type": "array", "items": _ref("Gpu")}}}]},
    "Health": {"type": "object", "required": ["status", "node", "version", "uptime_s", "boot_id", "mesh_endpoint",
                                              "api_url", "revision"],
               "properties": {"status": {"const": "ok"}, "node": {"type": "string"}, "version": {"type": "string"},
                              "protocol": {"type": "string", "description": "MAJOR.MINOR of what nodes say to each "
                                           "other (docs/skew-policy.md)"},
                              "uptime_s": {"type": "number"}, "boot_id": {"type": "string"},
                              "mesh_endpoint": {"type": "string"}, "api_url": {"type": "string"},
                              "revision": {"type": "string",
                                           "description": "changes when the console's view may have"}}},
    "Neighbour": {"type": "object", "required": ["id", "role", "status"], "properties": {
        "id": {"type": "string"}, "role": {"enum": ["self", "parent", "child", "peer"]},
        "status": {"enum": ["online", "offline", "incompatible"]}, "api_url": {"type": "string"},
        "incompatible": {"type": ["string", "null"], "description": "why it cannot be worked with (another "
                         "protocol major)"},
        "agent": {"type": ["string", "null"]}, "protocol": {"type": ["string", "null"]},
        "mesh_endpoint": {"type": "string"}, "last_seen_s": {"type": ["number", "null"]},
        "resources": {"oneOf": [_ref("Usage"), {"type": "null"}]}}},
    "Nodes": {"type": "object", "required": ["self", "parent", "children", "peers", "next", "summary"], "properties": {
        "self": _ref("Neighbour"), "parent": {"oneOf": [_ref("Neighbour"), {"type": "null"}]},
        "children": {"type": "array", "items": _ref("Neighbour"), "description": "one page, by node id"},
        "peers": {"type": "array", "items": _ref("Neighbour")},
        "next": {"type": ["string", "null"], "description": "the page after: ?after= this (null: the last page)"},
        "summary": {"type": "object", "required": ["children", "children_online", "peers"], "properties": {
            "children": {"type": "integer"}, "peers": {"type": "integer"},
            "children_online": {"type": ["integer", "null"],
                                "description": "as the register last counted (null: not yet)"}}}}},
    "Registration": {"type": "object", "required": ["node_id", "api_url", "mesh_endpoint"], "properties": {
        "node_id": {"type": "string", "pattern": NODE_ID_PATTERN},
        "api_url": {"type": "string", "pattern": API_URL_PATTERN, "description": "scheme://host:port, nothing else"},
        "mesh_endpoint": {"type": "string", "pattern": MESH_ENDPOINT_PATTERN, "description": "tcp://host:port"},
        "fan_in": {"type": "boolean", "description": "the child sends its heartbeats up, signed (protocol 1.2)"}}},
    "Settling": {"type": "object", "required": ["id", "status"], "properties": {
        "id": {"type": "string"}, "status": {"const": "unknown"}}},
    "Registered": {"type": "object", "required": ["registered", "parent", "boot_id"], "properties": {
        "registered": {"type": "string"}, "parent": {"type": "string"}, "boot_id": {"type": "string"},
        "heartbeat_key": {"type": "string", "description": "to a child that asked for fan_in: the key (hex) it "
                          "signs its heartbeats sent up with"}}},
    "Submission": {"oneOf": [_ref(f"Submission-{name}") for name in sorted(EXECUTORS)]},
    "InlineDetector": {"description": "a stream's own detector: a submission of a model service, without an id (its "
                       "id is the stream's with -detector); deleted with the stream",
                       "oneOf": [_ref(f"Detector-{name}") for name in sorted(EXECUTORS) if EXECUTORS[name].replicable]},
    **{f"Detector-{name}": _without(_submission(name, executor.config_schema, executor.replicable), "id", "delegation")
       for name, executor in EXECUTORS.items() if executor.replicable},
    **{f"Submission-{name}": _submission(name, executor.config_schema, executor.replicable)
       for name, executor in EXECUTORS.items()},
    "DeploymentChange": {"oneOf": [
        {"type": "object", "required": ["replicas"], "additionalProperties": False, "properties": {"replicas": _REPLICAS},
         "description": "scale"},
        {"type": "object", "required": ["autoscale"], "additionalProperties": False,
         "properties": {"autoscale": _AUTOSCALE}, "description": "an autoscaled deployment's bounds and policy "
         "(the keys given; the others kept)"},
        {"type": "object", "minProperties": 1, "additionalProperties": False, "description":
         "the next revision: a new config and/or requirements (checked first), rolled out by the update policy",
         "properties": {"config": {"type": "object"}, "requirements": _RESOURCES, "update": _UPDATE}}]},
    "Deployment": {"type": "object", "required": ["replicas", "healthy", "instances", "summary"], "properties": {
        **_DEPLOYMENT_FIELDS, "reschedules": {"type": "integer", "description": "replicas replaced after they "
                                              "failed or their node was lost"},
        "replicas": {"type": "integer", "minimum": 0, "description": "the count it wants now (autoscaled or not)"},
        "autoscale": _AUTOSCALE_STATE,
        "healthy": {"type": "integer"}, "summary": {"type": "string", "description": "running H/N"},
        "instances": {"type": "array", "items": {"type": "object", "required": ["id", "status"], "properties": {
            "id": {"type": "string"}, "node": {"type": "string"}, "endpoint": _NULLABLE_STRING,
            "status": {"type": "string"}, "restarts": {"type": "integer"}, "health_failures": {"type": "integer"},
            "revision": {"type": "integer", "description": "the deployment's revision it runs"},
            "retired_because": {**_NULLABLE_STRING, "description": "taken out of rotation: why (it is stopped "
                                "and deleted once drained)"}}}},
        "revision": {"type": "integer", "description": "the active revision"},
        "revisions": {"type": "array", "items": {"type": "object", "required": ["revision", "state"], "properties": {
            "revision": {"type": "integer"}, "state": {"enum": list(REVISION_STATES)},
            "created_at": {"type": "number"}, "config": {"type": "object"}, "requirements": _RESOURCES,
            "reason": {"type": "string"}}}},
        "rollout": {"type": ["object", "null"], "description": "under way: the revision it rolls out"}}},
    "Upload": {"type": "object", "required": ["file"], "additionalProperties": False, "properties": {
        "type": {"const": "data"}, "name": {"type": "string"},
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1,
                 "description": "one part per file; a file name with '/' keeps the directory layout"}}},
    "Workload": {"type": "object", "required": ["id", "type", "name", "status", "requirements"], "properties": {
        "id": {"type": "string"}, "type": {"type": "string"}, "name": {"type": "string"},
        "status": {"enum": ["pending", "starting", "running", "degraded", "completed", "failed", "stopped",
                            "uploading", "stored", "lost", "delegating", "unknown"]},
        "desired": {"enum": ["run", "stop"]}, "node": {"type": "string"}, "config": {"type": "object"},
        "requirements": _RESOURCES, "restarts": {"type": "integer"}, "endpoint": _NULLABLE_STRING,
        "process_pid": {"type": ["integer", "null"]}, "exit_code": {"type": ["integer", "null"]},
        "delegated_to": _NULLABLE_STRING, "message": {"type": "string"}, "created_at": {"type": "number"},
        "data_key": {"type": "string", "description": "uploads only"},
        "last_known": {"type": "object", "description": "lost only: what its node last said of it"},
        "last_known_age_s": {"type": "number", "description": "lost only: how old last_known is"},
        "deployment": {"oneOf": [_ref("Deployment"), {"type": "null"}],
                       "description": "a deployment of replicas: its count, state and instances"},
        "replica_of": {**_NULLABLE_STRING, "description": "a replica: its deployment's id"},
        "health_failures": {"type": "integer", "description": "failed health checks in a row"},
        "deleting": {"type": "boolean", "description": "its delete is recorded and under way (a scheduler that "
                     "ends meanwhile finishes it when it starts)"}}},
    "Forgotten": {"type": "object", "required": ["id", "forgotten"], "properties": {
        "id": {"type": "string"}, "forgotten": {"const": True}}},
    "WorkloadList": {"type": "object", "required": ["workloads", "count"], "properties": {
        "workloads": {"type": "array", "items": _ref("Workload")}, "count": {"type": "integer"},
        "next": _NEXT}},
    "Deleted": {"type": "object", "required": ["id", "deleted"], "properties": {
        "id": {"type": "string"}, "deleted": {"const": True}}},
    "Logs": {"type": "object", "required": ["id", "tail", "stdout", "stderr"], "properties": {
        "id": {"type": "string"}, "tail": {"type": "integer"}, "stdout": {"type": "string"},
        "stderr": {"type": "string"}}},
    "LogChunk": {"type": "object", "required": ["id", "stream", "offset", "next_offset", "data"], "properties": {
        "id": {"type": "string"}, "stream": {"type": "string", "enum": list(LOG_STREAMS)},
        "offset": {"type": "integer"}, "next_offset": {"type": "integer"}, "data": {"type": "string"}}},
    "Prediction": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "pattern": BASE64_IMAGE_PATTERN, "description": "base64 (a data: prefix is allowed)"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "iou": {"type": "number", "minimum": 0, "maximum": 1},
        "max_detections": {"type": "integer", "minimum": 1, "maximum": MAX_DETECTIONS},
        "classes": {"type": "array", "items": {"type": ["integer", "string"]},
                    "description": "class ids or names of the model's classes"}}},
    "Detections": {"type": "object", "required": ["detections", "count"], "properties": {
        "detections": {"type": "array", "items": {"type": "object", "required": ["class", "confidence", "bbox"],
                                                  "properties": {"class": {"type": "string"},
                                                                 "confidence": {"type": "number"},
                                                                 "bbox": {"type": "array", "items": {"type": "number"},
                                                                          "minItems": 4, "maxItems": 4}}}},
        "count": {"type": "integer"}, "image_size": {"type": "array"}, "inference_ms": {"type": "number"}}},
    "StoredData": {"type": "object", "required": ["data_key", "name", "kind", "size_bytes", "file_count"],
                   "properties": {"data_key": {"type": "string"}, "name": {"type": "string"},
                                  "kind": {"enum": ["file", "directory"]}, "path": {"type": "string"},
                                  "size_bytes": {"type": "integer"}, "file_count": {"type": "integer"},
                                  "created_at": {"type": "number"}, "files": {"type": "array"}}},
    "DataList": {"type": "object", "required": ["data", "count"], "properties": {
        "data": {"type": "array", "items": _ref("StoredData")}, "count": {"type": "integer"}, "next": _NEXT}},
    "CachedModel": {"type": "object", "required": ["sha256", "size_bytes", "source", "kind", "users", "status"],
                    "properties": {
        "sha256": {"type": ["string", "null"], "description": "null while a fetch without model_sha256 runs"},
        "size_bytes": {"type": "integer"}, "received_bytes": {"type": "integer"},
        "source": {"type": "string", "description": "the model_path it came from"},
        "kind": {"enum": ["cached", "local"], "description": "cached: fetched into the cache and counted "
                 "against storage; local: a file or data of this node, used where it lies"},
        "status": {"enum": ["fetching", "ready", "missing"], "description": "missing: its file is gone"},
        "last_used": {"type": ["number", "null"]},
        "users": {"type": "array", "items": {"type": "string"}, "description": "workloads that use it"}}},
    "ModelList": {"type": "object", "required": ["models", "count", "cache_bytes", "cached_bytes"], "properties": {
        "models": {"type": "array", "items": _ref("CachedModel")}, "count": {"type": "integer"},
        "cache_bytes": {"type": "integer"}, "cached_bytes": {"type": "integer"}}},
    "InferRequest": {"type": "object", "required": ["inputs"], "description": "KServe v2: the model's own "
                     "tensors, or one encoded image as input `image` (BYTES, shape [1]); binary tensors follow the "
                     "JSON (Inference-Header-Content-Length)", "properties": {
        "id": {"type": "string"}, "parameters": _INFER_PARAMETERS,
        "inputs": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "datatype", "shape"], "properties": {
                "name": {"type": "string"}, "datatype": {"enum": list(V2_DATATYPES)},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "parameters": {"type": "object", "properties": {
                    "binary_data_size": {"type": "integer", "minimum": 0}}},
                "data": {"type": "array"}}}},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "parameters": {"type": "object", "properties": {
                "binary_data": {"type": "boolean"}}}}}}}},
    "InferResponse": {"type": "object", "required": ["model_name", "outputs"], "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name", "datatype", "shape"]}}}},
    "Evicted": {"type": "object", "required": ["sha256", "evicted"], "properties": {
        "sha256": {"type": "string"}, "evicted": {"const": True}}},
}

def _ok(schema: str, status: str = "200", description: str = "OK") -> tuple[str, str, dict[str, Any]]:
    return status, description, _json(_ref(schema))


def _v2_paths() -> dict[str, Any]:
    """The KServe v2 protocol of a model service (a deployment: of one of its replicas), through the node."""
    base = "/api/workloads/{workload_id}/v2"
    relayed = ("401", "404", "409", "503")

    def read(summary: str) -> dict[str, Any]:
        return {"get": _operation(summary, ("200", "as the service answers", _json({"type": "object"})), *relayed,
                                  **_SECURED)}
    infer = _operation("v2 inference: raw output tensors for the model's tensors, detections for an `image`",
                       ("200", "JSON, or JSON then binary tensors (Inference-Header-Content-Length)",
                        {**_json(_ref("InferResponse")), **_BYTES}),
                       "400", "408", "413", "422", *relayed,
                       requestBody={"required": True, "content": {**_json(_ref("InferRequest")), **_BYTES}},
                       **_SECURED)
    return {base: {"parameters": [_PATH_ID], **read("v2 server metadata")},
            f"{base}/health/live": {"parameters": [_PATH_ID], **read("v2 liveness")},
            f"{base}/health/ready": {"parameters": [_PATH_ID], **read("v2 readiness")},
            f"{base}/models/{{model}}": {"parameters": [_PATH_ID, _PATH_MODEL], **read(
                "v2 model metadata: inputs and outputs with datatype and shape")},
            f"{base}/models/{{model}}/ready": {"parameters": [_PATH_ID, _PATH_MODEL], **read("v2 model readiness")},
            f"{base}/models/{{model}}/infer": {"parameters": [_PATH_ID, _PATH_MODEL], "post": infer}}


def document() -> dict[str, Any]:
    def page_query(limit: str, after: str, default: int | None = None,
                   after_pattern: str | None = None) -> list[dict[str, Any]]:
        size = {"type": "integer", "minimum": 1, "maximum": PAGE_MAX} | ({"default": default} if default else {})
        start = {"type": "string", "maxLength": PAGE_AFTER_MAX_CHARS} | (
            {"pattern": after_pattern} if after_pattern else {})
        return [{"name": "limit", "in": "query", "required": False, "schema": size, "description": limit},
                {"name": "after", "in": "query", "required": False, "schema": start, "description": after}]

    reverse = {"name": "reverse", "in": "query", "required": False, "schema": {"type": "boolean"},
               "description": "true: newest first (the default is oldest first)"}
    data_query = [*page_query("one page of this many (without: all)", "the page before's next (TIME/DATA_KEY)",
                              after_pattern=POSITION_PATTERN), reverse]
    workloads_query = [{"name": name, "in": "query", "required": False, "schema": {"type": "string"},
                        "description": description} for name, description in
                       (("status", "only this status"), ("type", "only these types, comma-separated"),
                        ("ids", "comma-separated ids"))]
    workloads_query += page_query("one page of this many (without: all)", "the page before's next (TIME/ID)",
                                  after_pattern=POSITION_PATTERN)
    workloads_query.append(reverse)
    paths = {
        "/api/health": {"get": _operation("Liveness and identity of this node", _ok("Health"))},
        "/api/resources": {"get": _operation("Capacity, allocated and available here", _ok("NodeResources"), **_SECURED)},
        "/api/nodes": {"get": _operation(
            "This node, its parent and peers, a page of its children, and how many", _ok("Nodes"), "400",
            parameters=page_query("children in one page", "the last child id of the page before (its next)",
                                  CHILDREN_PAGE_DEFAULT),
            **_SECURED)},
        "/api/nodes/register": {"post": _operation(
            "A child registers with this node (its parent)", _ok("Registered"), "400", "401", "408", "409", "413",
            requestBody={"required": True, "content": _json(_ref("Registration"))}, **_SECURED)},
        "/api/nodes/{node_id}": {"parameters": [_PATH_NODE], "delete": _operation(
            "Forget a neighbour", _ok("Forgotten"), "401", "404", **_SECURED)},
        "/api/workloads": {
            "get": _operation("All workloads, filtered", _ok("WorkloadList"), "400", parameters=workloads_query,
                              **_SECURED),
            "post": _operation(
                "Submit a workload (JSON) or upload data (multipart); run here or delegated",
                _ok("Workload", "201", "Admitted: running here, or delegated (delegated_to)"),
                "400", "401", "404", "408", "409", "411", "413", "422", "503", "507",
                responses_extra={"202": _answer("delegation.settle: this node is settling its own onward "
                                                "forward of that attempt; ask again", "Settling")},
                requestBody={"required": True, "content": {
                    "application/json": {"schema": _ref("Submission")},
                    "multipart/form-data": {"schema": _ref("Upload")}}}, **_SECURED)},
        "/api/workloads/{workload_id}": {
            "parameters": [_PATH_ID],
            "get": _operation("One workload", _ok("Workload"), "404", "503", **_SECURED),
            "patch": _operation("A deployment's desired state: scale it to `replicas` (extra ones drain, then "
                                "stop), or make its next revision (`config`, `requirements`, `update`), which rolls "
                                "out; 409 while another rollout is under way", _ok("Workload"),
                                "400", "401", "404", "408", "409", "411", "413", "422", "503", "507",
                                requestBody={"required": True, "content": _json(_ref("DeploymentChange"))},
                                **_SECURED),
            "delete": _operation("Stop (if needed) and remove a workload (a deployment: all its replicas)",
                                 _ok("Deleted"), "401", "404", "409", "503", "507", **_SECURED)},
        "/api/workloads/{workload_id}/promote": {"parameters": [_PATH_ID], "post": _operation(
            "A rollout waiting on its canaries goes on", _ok("Workload"), "401", "404", "409", "422", "503",
            **_SECURED)},
        "/api/workloads/{workload_id}/rollback": {"parameters": [_PATH_ID], "post": _operation(
            "A rollout under way goes back; without one, the previous revision rolls out again", _ok("Workload"),
            "401", "404", "409", "422", "503", **_SECURED)},
        "/api/workloads/{workload_id}/stop": {"parameters": [_PATH_ID], "post": _operation(
            "Stop a workload; its resources are released", _ok("Workload"), "401", "404", "409", "503", "507",
            **_SECURED)},
        "/api/workloads/{workload_id}/logs": {"parameters": [_PATH_ID], "get": _operation(
            "The last lines of its stdout and stderr", _ok("Logs"), "400", "404", "503", parameters=[
                {"name": "tail", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 0, "maximum": LOG_TAIL_MAX}}], **_SECURED)},
        "/api/workloads/{workload_id}/logs/{stream}": {"parameters": [_PATH_ID, {
            "name": "stream", "in": "path", "required": True, "schema": {"type": "string", "enum": list(LOG_STREAMS)}}],
            "get": _operation(f"One stream from byte `offset` on (at most {LOG_CHUNK_MAX_BYTES} bytes): follow a log",
                              _ok("LogChunk"), "400", "404", "503", parameters=[
                                  {"name": "offset", "in": "query", "required": False,
                                   "schema": {"type": "integer", "minimum": 0, "maximum": LOG_OFFSET_MAX}}],
                              **_SECURED)},
        "/api/workloads/{workload_id}/predict": {"parameters": [_PATH_ID], "post": _operation(
            "Relay a prediction to a running mlmodel / opencv service (a deployment: to one of its replicas, "
            "named by X-Cnet-Replica)", _ok("Detections"),
            "400", "401", "404", "408", "409", "413", "422", "503",
            requestBody={"required": True, "description": f"at most {PREDICT_MAX_BYTES} bytes", "content": {
                "application/json": {"schema": _ref("Prediction")},
                "image/*": {"schema": {"type": "string", "format": "binary"}}}}, **_SECURED)},
        "/api/workloads/{workload_id}/events": {"parameters": [_PATH_ID], "get": _operation(
            "A stream's events as Server-Sent Events: the last `last` kept (or those after Last-Event-ID), then each "
            f"as it comes (a connection lasts at most {int(FOLLOW_MAX_S)} s; {MAX_FOLLOWERS} followers per API "
            "process, 503 beyond)",
            ("200", "text/event-stream: `id:` the event's seq, `data:` the event (time, frame, latency_ms, "
             "detections, snapshot)", {"text/event-stream": {"schema": {"type": "string"}}}),
            "400", "404", "409", "503", parameters=[
                {"name": "last", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 0, "maximum": MAX_KEEP_EVENTS}},
                {"name": "follow", "in": "query", "required": False, "schema": {"type": "boolean"}},
                {"name": "Last-Event-ID", "in": "header", "required": False,
                 "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"}}], **_SECURED)},
        "/api/workloads/{workload_id}/snapshots/{name}": {"parameters": [_PATH_ID, {
            "name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern":
                                                                      "^(latest|[0-9]{1,12}[.]jpg)$"}}],
            "get": _operation("A stream's kept snapshot (an event's frame, its boxes drawn); `latest`: the newest",
                              ("200", "the JPEG", {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}),
                              "400", "404", "409", "503", **_SECURED)},
        **_v2_paths(),
        "/api/data": {"get": _operation("Data stored on this node, oldest first", _ok("DataList"), "400",
                                        parameters=data_query, **_SECURED)},
        "/api/data/{data_key}": {
            "parameters": [_PATH_KEY],
            "get": _operation("One stored upload with its files", _ok("StoredData"), "404", **_SECURED),
            "delete": _operation("Delete stored data no workload uses; its storage is released", _ok("Deleted"),
                                 "401", "404", "409", "503", **_SECURED)},
        "/api/models": {"get": _operation("The model cache: every artifact this node holds", _ok("ModelList"),
                                          **_SECURED)},
        "/api/models/{sha256}": {"parameters": [_PATH_SHA], "delete": _operation(
            "Evict a model no workload uses (its cached file is deleted)", _ok("Evicted"), "401", "404", "409",
            **_SECURED)},
        "/api/artifacts/{sha256}": {"parameters": [_PATH_SHA], "get": _operation(
            "An artifact's bytes (Range-able), with the token or a link this node signed",
            ("200", "the bytes", _BYTES), "401", "404", "416",
            responses_extra={"206": {"description": "the range asked for (Content-Range)", "content": _BYTES}},
            parameters=[
                {"name": "expires", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "signature", "in": "query", "required": False, "schema": {"type": "string"}}],
            **_SECURED)},
        "/api/openapi.json": {"get": _operation("This document", ("200", "OpenAPI 3.1", _json({"type": "object"})))},
        "/metrics": {"get": _operation("Prometheus metrics", ("200", "text exposition format",
                                                              {"text/plain": {"schema": {"type": "string"}}}))},
        "/": {"get": _operation("The web console",
                                ("200", "HTML page", {"text/html": {"schema": {"type": "string"}}}))},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "CNET node API", "version": __version__,
                     "description": "Every error is {\"error\": code, \"message\": text} with a 4xx/5xx status."},
            "paths": paths,
            "components": {"schemas": SCHEMAS,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
