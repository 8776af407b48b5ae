"""Parses a POSTed workload into a ``WorkloadRecord``: shape, type, id and requirements, with clear errors."""
from __future__ import annotations

import re
import uuid
from typing import Any

from cnetd.errors import Invalid
from ledger.records import RESOURCE_KINDS, Resources, WorkloadRecord
from workers.registry import executor_for

_FIELDS = ("id", "name", "type", "config", "requirements")
_WORKLOAD_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
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
    executor_for(workload_type)  # unknown types fail here, listing the supported ones
    workload_id = body["id"] if "id" in body else new_workload_id()
    if not isinstance(workload_id, str) or not _WORKLOAD_ID.match(workload_id):
        raise Invalid("id: lowercase letters, digits and '-', at most 63, starting with a letter or digit")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise Invalid("name: expected a string")
    name = name or f"{workload_type}-{workload_id[:8]}"
    config = body.get("config", {})
    if not isinstance(config, dict):
        raise Invalid("config: expected an object")
    return WorkloadRecord(id=workload_id, type=workload_type, name=name, config=config,
                          requirements=parse_requirements(body.get("requirements", {})))


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
