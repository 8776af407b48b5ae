"""Shared shapes held by the ledger: resources, usage and workload records with their states."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

RESOURCE_KINDS = ("cpu", "memory", "gpu", "storage")
_CPU_DIGITS = 6  # cpu is fractional; round sums so 0.1 + 0.2 never leaves a 1e-17 crumb


@dataclass(frozen=True)
class Resources:
    """An amount of each resource kind: cpu in cores, memory and storage in bytes, gpu in devices."""

    cpu: float = 0.0
    memory: int = 0
    gpu: int = 0
    storage: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(round(self.cpu + other.cpu, _CPU_DIGITS), self.memory + other.memory,
                         self.gpu + other.gpu, self.storage + other.storage)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(round(self.cpu - other.cpu, _CPU_DIGITS), self.memory - other.memory,
                         self.gpu - other.gpu, self.storage - other.storage)

    def covers(self, need: Resources) -> bool:
        return not self.shortfall(need)

    def shortfall(self, need: Resources) -> list[str]:
        """The resource kinds of which ``need`` asks more than this amount holds."""
        return [kind for kind in RESOURCE_KINDS if getattr(need, kind) > getattr(self, kind)]

    def to_dict(self) -> dict[str, float | int]:
        return {kind: getattr(self, kind) for kind in RESOURCE_KINDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Resources:
        return cls(**{kind: data[kind] for kind in RESOURCE_KINDS if kind in data})


@dataclass(frozen=True)
class Usage:
    """A node's resources at one instant: what it has, what is held, what is free."""

    capacity: Resources
    allocated: Resources

    @property
    def available(self) -> Resources:
        return self.capacity - self.allocated

    def to_dict(self) -> dict[str, dict[str, float | int]]:
        return {"capacity": self.capacity.to_dict(), "allocated": self.allocated.to_dict(),
                "available": self.available.to_dict()}


class Status:
    """Observed state of a workload."""

    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"  # a deployment: some of its replicas are healthy, fewer than it asks for
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    UPLOADING = "uploading"  # data: bytes are arriving; the request's size is reserved
    STORED = "stored"        # data: on disk; its storage stays allocated until it is deleted
    LOST = "lost"  # shown, never stored: the node running a delegated workload is offline
    DELEGATING = "delegating"  # a pointer written before its forward leaves: the forward is under way
    UNKNOWN = "unknown"  # a pointer whose forward got no clear answer: being settled with its target


SETTLING_STATUSES = frozenset({Status.DELEGATING, Status.UNKNOWN})


TERMINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.STOPPED})


class Desired:
    """What the user asked for a workload: keep it running, or have it stopped."""

    RUN = "run"
    STOP = "stop"


@dataclass
class WorkloadRecord:
    """One workload as the ledger holds it: the request, where it runs, and what happened to it."""

    id: str
    type: str
    name: str
    config: dict[str, Any]
    requirements: Resources
    status: str = Status.PENDING
    desired: str = Desired.RUN
    node: str = ""
    program: str = ""
    restart_policy: str = "never"
    restarts: int = 0
    placement: dict[str, Any] | None = None
    gpu_devices: list[int] = field(default_factory=list)
    delegated_to: str | None = None
    remote_api: str | None = None
    delegation_attempt: str | None = None  # names one forward, so its target can fence it off when settled
    process_pid: int | None = None
    endpoint: str | None = None
    health_url: str | None = None
    exit_code: int | None = None
    message: str = ""
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    fingerprint: str = ""  # of the submission as sent: a retry with this id must send the same (never shown)
    health_failures: int = 0  # a running service's failed health checks in a row (out of its rotation from 2)
    deployment: dict[str, Any] | None = None  # a deployment of replicas: its DeploymentSpec (it runs no program)
    replica_of: str | None = None  # a replica: the id of its deployment
    retired_at: float | None = None  # a replica taken out of its deployment's rotation, to be stopped and deleted
    retired_because: str = ""
    constraints: dict[str, Any] | None = None  # what the node that runs it must carry: {"labels": {NAME: VALUE}}
    revision: int | None = None  # a replica: the revision of its deployment that it runs
    owned_by: str | None = None  # deployed with another workload (a stream's inline detector), and deleted with it
    deleting: bool = False  # its delete is recorded: program, files and record go (the scheduler's start finishes it)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def settling(self) -> bool:
        """A pointer whose forward is under way or has no known outcome yet."""
        return self.status in SETTLING_STATUSES

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    @property
    def remote(self) -> bool:
        """A pointer to a workload this node delegated: it runs, and is managed, on ``delegated_to``."""
        return self.delegated_to is not None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON values, sharing nothing with it. orjson encodes the dataclass itself (as the ledger
        stores it): 2.6 µs, where ``dataclasses.asdict`` took 30 µs and a third of the scheduler's serial thread
        (py-spy, submissions back to back)."""
        return orjson.loads(orjson.dumps(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkloadRecord:
        """A stored or sent record; fields this version does not know (written by a newer one) are left out."""
        return cls(**{**{name: value for name, value in data.items() if name in _RECORD_FIELDS},
                      "requirements": Resources.from_dict(data["requirements"])})


_RECORD_FIELDS = frozenset(item.name for item in dataclasses.fields(WorkloadRecord))
