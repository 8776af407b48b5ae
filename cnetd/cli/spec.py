"""Workload specs as people write them: YAML or JSON, sizes with units (``memory: 2GiB``), turned into the
body ``POST /api/workloads`` takes."""
from __future__ import annotations

from typing import Any

import humanfriendly
import yaml

SIZED = ("memory", "storage")


class BadSpec(Exception):
    """A spec that is not a workload (the message says which field)."""


def _size(field: str, value: Any) -> Any:
    if isinstance(value, str):
        try:
            return humanfriendly.parse_size(value)
        except humanfriendly.InvalidSize:
            raise BadSpec(f"requirements.{field}: {value!r} is not a size (write bytes, or e.g. 512MiB, 2GiB)") from None
    return value


def submission(spec: Any) -> dict[str, Any]:
    """The API body of a parsed spec: ``type`` required, ``requirements`` sizes in bytes."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise BadSpec("a workload spec is a mapping with a 'type' (process, container, mlmodel, opencv, datagateway)")
    requirements = spec.get("requirements") or {}
    if not isinstance(requirements, dict):
        raise BadSpec("requirements: expected a mapping of cpu, memory, gpu, storage")
    return {**spec, "requirements": {key: _size(key, value) if key in SIZED else value
                                     for key, value in requirements.items()}}


def load(text: str) -> dict[str, Any]:
    try:
        return submission(yaml.safe_load(text))  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise BadSpec(f"not YAML or JSON: {exc}") from None


def quick_process(command: list[str], cpu: float, memory: str | None, name: str | None) -> dict[str, Any]:
    """``cnet run process --cpu 1 -- sleep 60``."""
    spec: dict[str, Any] = {"type": "process", "config": {"command": command[0], "args": command[1:]},
                            "requirements": {"cpu": cpu, **({"memory": memory} if memory else {})}}
    if name:
        spec["name"] = name
    return submission(spec)
