"""Parses a POSTed workload into a ``WorkloadRecord``: shape, type, id and requirements, with clear errors."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from cnetd.common.errors import Invalid, Unprocessable
from cnetd.core.deployment_spec import FIELDS as DEPLOYMENT_FIELDS, parse_spec
from ledger.records import RESOURCE_KINDS, Resources, WorkloadRecord
from mesh.messages import LABEL
from workers.registry import executor_for
from workers.stream import STREAM_TYPE

INLINE_DETECTOR_SUFFIX = "-detector"

_FIELDS = ("id", "name", "type", "config", "requirements", "constraints", *DEPLOYMENT_FIELDS)
MAX_CONSTRAINT_LABELS = 16
WORKLOAD_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*$"  # printable: a name goes into a service's command line and logs
MAX_NAME = 256
MAX_REQUIREMENT = 2**53  # exact in every JSON reader (and a float64); far above any machine's bytes


def new_workload_id() -> str:
    return uuid.uuid4().hex[:16]


def parse_submission(body: Any) -> WorkloadRecord:
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise Invalid(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(_FIELDS)})")
    workload_type = body.get("type")
    if not isinstance(workload_type, str):
        raise Invalid("type: required, a string")
    executor = executor_for(workload_type)  # unknown types fail here, listing the supported ones
    workload_id = body["id"] if "id" in body else new_workload_id()
    if not isinstance(workload_id, str) or not re.fullmatch(WORKLOAD_ID_PATTERN, workload_id):
        raise Invalid("id: lowercase letters, digits and '-', at most 63, starting with a letter or digit")
    name = body.get("name")
    if "name" in body and not (isinstance(name, str) and len(name) <= MAX_NAME and re.fullmatch(NAME_PATTERN, name)):
        raise Invalid(f"name: expected text of at most {MAX_NAME} characters, none of them a control character")
    name = name or f"{workload_type}-{workload_id[:8]}"
    config = body.get("config", {})
    if not isinstance(config, dict):
        raise Invalid("config: expected an object")
    requirements = parse_requirements(body.get("requirements", {}))
    constraints = parse_constraints(body.get("constraints"))
    deployment = parse_spec(body, workload_id, config, requirements)
    if deployment is not None and not executor.replicable:
        field = "autoscale" if "autoscale" in body else "replicas"
        raise Invalid(f"{field}: a {workload_type} workload has no replicas (services of a model have)")
    sent = {"type": workload_type, "name": body.get("name"), "config": config, "requirements": requirements.to_dict(),
            **{field: body[field] for field in ("constraints", *DEPLOYMENT_FIELDS) if field in body}}
    fingerprint = hashlib.sha256(json.dumps(sent, sort_keys=True).encode()).hexdigest()  # json: any int size
    return WorkloadRecord(id=workload_id, type=workload_type, name=name, config=config, requirements=requirements,
                          fingerprint=fingerprint, deployment=deployment.to_dict() if deployment else None,
                          constraints=constraints)


def inline_detector(record: WorkloadRecord) -> WorkloadRecord | None:
    """A stream's detector given whole (``config.detector``: a submission of an ``mlmodel`` or ``opencv`` service,
    replicas or autoscale allowed): that workload, its id the stream's with ``-detector``, owned by the stream
    (deleted with it). None for a stream that names its detector, and for any other workload."""
    spec = record.config.get("detector") if record.type == STREAM_TYPE else None
    if not isinstance(spec, dict):
        return None
    if "id" in spec:
        raise Invalid(f"config.detector.id: an inline detector's id is the stream's with {INLINE_DETECTOR_SUFFIX}")
    detector_id = record.id + INLINE_DETECTOR_SUFFIX
    if len(detector_id) > 63:  # a valid id, too long to name its detector after: this cannot be acted on
        raise Unprocessable(f"id: at most {63 - len(INLINE_DETECTOR_SUFFIX)} characters for a stream with an inline "
                            "detector")
    try:
        detector = parse_submission({**spec, "id": detector_id, "name": spec.get("name", f"detector of {record.name}")})
    except Invalid as exc:
        raise Invalid(f"config.detector: {exc.message}") from None
    if not executor_for(detector.type).replicable:
        raise Invalid(f"config.detector.type: a {detector.type} workload is no model service (mlmodel, opencv)")
    return dataclasses.replace(detector, owned_by=record.id)


def with_detector(stream: WorkloadRecord, detector_id: str) -> WorkloadRecord:
    """``stream`` naming the detector deployed for it."""
    return dataclasses.replace(stream, config={**stream.config, "detector": detector_id})


def parse_constraints(raw: Any) -> dict[str, Any] | None:
    """``constraints``: ``{"labels": {NAME: VALUE}}``, which the node that runs it must carry (agent.labels)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"labels"}:
        raise Invalid('constraints: expected {"labels": {NAME: VALUE, ...}}')
    labels = raw.get("labels", {})
    if not isinstance(labels, dict) or len(labels) > MAX_CONSTRAINT_LABELS:
        raise Invalid(f"constraints.labels: expected an object of at most {MAX_CONSTRAINT_LABELS} NAME: VALUE")
    for name, value in labels.items():
        if not LABEL.fullmatch(name) or not isinstance(value, str) or not LABEL.fullmatch(value):
            raise Invalid(f"constraints.labels.{name[:64]}: names and values are letters, digits, '.', '_' or '-' "
                          "(at most 63)")
    return {"labels": dict(labels)} if labels else None


def constraint_labels(record: WorkloadRecord) -> dict[str, str]:
    """The labels a node must carry to run ``record``."""
    return dict((record.constraints or {}).get("labels", {}))


def parse_requirements(raw: Any) -> Resources:
    if not isinstance(raw, dict):
        raise Invalid("requirements: expected an object with cpu, memory, gpu, storage")
    unknown = sorted(set(raw) - set(RESOURCE_KINDS))
    if unknown:
        raise Invalid(f"requirements: unknown resource(s) {', '.join(unknown)} (known: {', '.join(RESOURCE_KINDS)})")
    values: dict[str, float | int] = {}
    for kind, value in raw.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            raise Invalid(f"requirements.{kind}: expected a number, got {value!r}")
        if value < 0:
            raise Invalid(f"requirements.{kind}: must not be negative, got {value!r}")
        if value > MAX_REQUIREMENT:
            raise Invalid(f"requirements.{kind}: {value!r} is more than any node has (at most {MAX_REQUIREMENT})")
        if kind == "cpu":
            values[kind] = float(value)
        elif int(value) != value:
            raise Invalid(f"requirements.{kind}: expected a whole number, got {value!r}")
        else:
            values[kind] = int(value)
    return Resources(**values)


@dataclass(frozen=True)
class Delegation:
    """The ``delegation`` field a delegating node adds to a forwarded submission (absent from a user's)."""

    visited: list[str]
    attempt: str | None = None  # names this forward, so the sender can settle it
    budget_s: float | None = None  # how long this node may spend delegating it onward
    settle: bool = False  # not a submission: the sender asks what became of its forward ``attempt``

    @property
    def forwarded(self) -> bool:
        return bool(self.visited)


def parse_delegation(raw: Any) -> Delegation:
    if not isinstance(raw, dict):
        raise Invalid("delegation: expected an object")
    visited = raw.get("visited")
    if not isinstance(visited, list) or not all(isinstance(node_id, str) for node_id in visited):
        raise Invalid("delegation.visited: expected a list of node ids")
    attempt, budget_s, settle = raw.get("attempt"), raw.get("budget_s"), raw.get("settle", False)
    if attempt is not None and not (isinstance(attempt, str) and 0 < len(attempt) <= 64):
        raise Invalid("delegation.attempt: expected a string of at most 64 characters")
    if budget_s is not None and (not isinstance(budget_s, (int, float)) or isinstance(budget_s, bool) or budget_s < 0):
        raise Invalid("delegation.budget_s: expected a number of seconds, not negative")
    if not isinstance(settle, bool) or (settle and attempt is None):
        raise Invalid("delegation.settle: expected true or false, and true only with an attempt")
    return Delegation(visited, attempt, float(budget_s) if budget_s is not None else None, settle)
