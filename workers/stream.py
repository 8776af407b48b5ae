"""Executor of ``stream`` workloads: a camera (RTSP, HTTP MJPEG, a video file or an uploaded one) whose sampled
frames go to a model service or deployment of the cluster, each frame with detections kept and published as an
event. Its program is ``python -m inference.stream``; its state, counters and events are files in its dir.

The detector is named by id on the node the stream is submitted to; that node (the origin) adds where its API
is (``detector_api``) and a signature scoped to this stream and detector (``detector_signature``, an HMAC of
its token), so the stream's frames go through the origin's balancer wherever the stream itself was placed, and
the stream never holds the node's token.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from cnetd.common.addresses import FILE_SOURCES, HIDDEN, shown_origin, shown_source
from cnetd.common.errors import Invalid, Unprocessable
from cnetd.common.private_files import make_workload_dir, write_workload_file
from gateway.keys import UnsafeKey, safe_relative
from inference.stream.status import read_status
from ledger.records import WorkloadRecord
from workers.base import (USER_SCHEMA, NodeContext, PlainProgram, ProgramSpec, choose_user, config_schema,
                          reject_unknown_fields)

STREAM_TYPE = "stream"
DETECTOR_FIELDS = ("detector_api", "detector_signature")  # added by the origin, never submitted
SIGNATURE_ENV = "CNET_STREAM_SIGNATURE"
MAX_FPS, DEFAULT_FPS = 30.0, 5.0
MAX_KEEP_EVENTS, DEFAULT_KEEP_EVENTS = 10_000, 1000
DEFAULT_MOTION_THRESHOLD = 0.01
PROBE_TIMEOUT_S = 8.0
_WORKLOAD_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
_TOPIC = r"^[^#+\x00]{1,256}$"
SOURCE_PATTERN = r"^([Rr][Tt][Ss][Pp][Ss]?://|[Hh][Tt][Tt][Pp][Ss]?://|data://|/)"
WEBHOOK_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://"
_FIELDS = ("source", "detector", "fps", "confidence", "classes", "motion", "snapshot", "webhook", "mqtt",
           "keep_events", "user", *DETECTOR_FIELDS)


class StreamExecutor(PlainProgram):
    type_name = STREAM_TYPE
    config_schema = config_schema({
        "source": {"type": "string", "pattern": SOURCE_PATTERN, "description":
                   "rtsp://…, an HTTP MJPEG URL, a video file on the node, or data://DATA_KEY/FILE"},
        "detector": {"oneOf": [{"type": "string", "pattern": _WORKLOAD_ID, "description":
                                "the id of a model service or deployment on the node the stream is submitted to"},
                               {"$ref": "#/components/schemas/InlineDetector"}]},
        "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_FPS, "description": "frames sampled a second"},
        "confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "classes": {"type": ["array", "null"], "items": {"type": ["string", "integer"]}},
        "motion": {"type": ["object", "null"], "additionalProperties": False, "description":
                   "send a frame only when this fraction of it changed since the last one sent",
                   "properties": {"threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}}},
        "snapshot": {"type": "boolean", "description": "keep each event's frame, its boxes drawn"},
        "webhook": {"type": ["string", "null"], "pattern": WEBHOOK_PATTERN, "description":
                    "POST each event as JSON here"},
        "mqtt": {"type": ["object", "null"], "additionalProperties": False, "required": ["host", "topic"],
                 "properties": {"host": {"type": "string", "minLength": 1}, "topic": {"type": "string", "pattern": _TOPIC},
                                "port": {"type": "integer", "minimum": 1, "maximum": 65535}}},
        "keep_events": {"type": "integer", "minimum": 1, "maximum": MAX_KEEP_EVENTS},
        "user": USER_SCHEMA}, required=("source", "detector"))

    def validate(self, config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
        reject_unknown_fields(config, _FIELDS)
        source = config.get("source")
        if not isinstance(source, str) or not source:
            raise Invalid("config.source: required, an rtsp:// or http(s):// URL, a file, or data://DATA_KEY/FILE")
        source_url(source, node)  # a file that is not on this node is refused here
        detector = config.get("detector")
        if isinstance(detector, dict):  # deployed by the node it was submitted to, which forwards the id
            raise Unprocessable("config.detector: a detector given whole is deployed by the node the stream is "
                                "submitted to; submit it there")
        if not isinstance(detector, str) or not re.fullmatch(_WORKLOAD_ID, detector):
            raise Invalid("config.detector: required, the id of a model service or deployment")
        fps = _number(config.get("fps", DEFAULT_FPS), "fps", 0, MAX_FPS, low_open=True)
        confidence = config.get("confidence")
        if confidence is not None:
            confidence = _number(confidence, "confidence", 0, 1)
        classes = config.get("classes")
        if classes is not None and not (isinstance(classes, list) and all(
                isinstance(item, (str, int)) and not isinstance(item, bool) for item in classes)):
            raise Invalid("config.classes: expected a list of class names or ids")
        snapshot = config.get("snapshot", False)
        if not isinstance(snapshot, bool):
            raise Invalid("config.snapshot: expected true or false")
        keep = _whole(config.get("keep_events", DEFAULT_KEEP_EVENTS), "keep_events", 1, MAX_KEEP_EVENTS)
        validated = {"source": source, "detector": detector, "fps": fps, "confidence": confidence,
                     "classes": classes or None, "motion": _motion(config.get("motion")), "snapshot": snapshot,
                     "webhook": _webhook(config.get("webhook")), "mqtt": _mqtt(config.get("mqtt")),
                     "keep_events": keep, "user": choose_user(config.get("user"), node)}
        for name in DETECTOR_FIELDS:
            if not isinstance(config.get(name), str):
                raise Unprocessable(f"config.{name}: set by the node the stream is submitted to; submit it there")
            validated[name] = config[name]
        return validated

    def probe(self, config: dict[str, Any], node: NodeContext) -> None:
        """Whether the source opens and gives a frame (``python -m inference.stream.probe``): 422 when it
        surely does not; a source that does not answer within the probe's time is taken (it reconnects)."""
        try:
            probe = subprocess.run([sys.executable, "-m", "inference.stream.probe", source_url(config["source"], node)],
                                   capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return
        except ValueError:  # a NUL in the URL
            raise Unprocessable("config.source: not a URL this node can open") from None
        if probe.returncode == 2:
            why = (probe.stderr.strip().splitlines() or ["it gave no frame"])[-1]
            raise Unprocessable(f"config.source: {why}")

    def program(self, record: WorkloadRecord, node: NodeContext) -> ProgramSpec:
        config, user = record.config, record.config.get("user")
        home = node.paths.workload_dir(record.id)
        make_workload_dir(home, user)
        settings = {name: value for name, value in config.items() if name != "detector_signature"}
        settings.update(id=record.id, source_url=source_url(config["source"], node))
        config_file = home / "stream.json"
        write_workload_file(config_file, json.dumps(settings).encode(), user)
        env = {"CNET_WORKLOAD_ID": record.id, "CNET_NODE_ID": node.node_id, SIGNATURE_ENV: config["detector_signature"],
               # the program's threads: at most the cpu it holds
               "OMP_NUM_THREADS": str(max(1, math.floor(record.requirements.cpu)))}
        return ProgramSpec(argv=[sys.executable, "-m", "inference.stream", "--config", str(config_file)], env=env,
                           cwd=str(home), restart_policy="on-failure", user=user)

    def facts(self, record: WorkloadRecord, node: NodeContext) -> dict[str, Any]:
        return {"stream": read_status(node.paths.workload_dir(record.id))}

    def shown_config(self, config: dict[str, Any]) -> dict[str, Any]:
        # A camera may take its password in its query (a Foscam's ?user=admin&pwd=...), a webhook its token
        # in its path.
        shown = {**config, "source": shown_source(config.get("source", ""))}
        if shown.get("webhook"):
            shown["webhook"] = shown_origin(shown["webhook"])
        if "detector_signature" in shown:
            shown["detector_signature"] = HIDDEN
        return shown


def source_url(source: str, node: NodeContext) -> str:
    """What the program opens: a live URL as given; a file as its path on this node (Unprocessable when it is
    not here, or cannot be named here)."""
    if not re.match(SOURCE_PATTERN, source):
        raise Invalid(f"config.source: {source[:100]!r}: expected rtsp(s)://, http(s)://, data://DATA_KEY/FILE or "
                      "the absolute path of a video file")
    if not source.startswith(FILE_SOURCES):
        return source
    try:
        path = Path(node.gateway_roots[0]) / safe_relative(source.removeprefix("data://")) \
            if source.startswith("data://") else Path(source)
        here = path.is_file()
    except (UnsafeKey, ValueError):  # a key that climbs out, a NUL
        here = False
    if not here:
        raise Unprocessable(f"config.source: {source[:200]!r} is not a file on this node")
    return str(path)


def _number(value: Any, name: str, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value > high \
            or value < low or (low_open and value == low):
        raise Invalid(f"config.{name}: expected a number from {low} ({'not ' if low_open else ''}included) to {high}")
    return float(value)


def _whole(value: Any, name: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` (JSON Schema's integers include 8.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or not low <= value <= high:
        raise Invalid(f"config.{name}: expected a whole number from {low} to {high}")
    return int(value)


def _motion(raw: Any) -> dict[str, float] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"threshold"}:
        raise Invalid("config.motion: expected {\"threshold\": the fraction of the picture that must change}")
    return {"threshold": _number(raw.get("threshold", DEFAULT_MOTION_THRESHOLD), "motion.threshold", 0, 1,
                                 low_open=True)}


def _webhook(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not re.match(WEBHOOK_PATTERN, raw):
        raise Invalid("config.webhook: expected an http:// or https:// URL")
    try:
        reachable = bool(urllib.parse.urlsplit(raw).hostname) and "\x00" not in raw
    except ValueError:
        reachable = False
    if not reachable:
        raise Unprocessable(f"config.webhook: {shown_origin(raw)[:200]!r} names no host this node can post to")
    return raw


def _mqtt(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"host", "port", "topic"}:
        raise Invalid("config.mqtt: expected {host, port, topic}")
    host, port, topic = raw.get("host"), raw.get("port", 1883), raw.get("topic")
    if not isinstance(host, str) or not host:
        raise Invalid("config.mqtt.host: expected the broker's host name or address")
    port = _whole(port, "mqtt.port", 1, 65535)
    if not isinstance(topic, str) or not re.fullmatch(_TOPIC, topic):
        raise Invalid("config.mqtt.topic: expected a topic name (no wildcards)")
    return {"host": host, "port": port, "topic": topic}
