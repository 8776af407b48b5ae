"""The executor interface: turn a workload's config into a supervised program, one class per workload type."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any, Protocol

from cnetd.common.errors import Invalid, Unprocessable
from cnetd.common.paths import RuntimePaths
from ledger.records import WorkloadRecord

RESTART_POLICIES = ("never", "on-failure", "always")
NICE = shutil.which("nice") or "/usr/bin/nice"
HOST_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"  # a DNS name or an IPv4 address
USER_SCHEMA = {"type": ["string", "null"], "description": "who it runs as (default workloads.user)"}


def port_number(value: Any) -> int | None:
    """``value`` as a port (1-65535), or None if it is not one. JSON Schema's integers include 8080.0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        return None
    return int(value) if 1 <= value <= 65535 else None


def config_schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON Schema of one type's config, as the OpenAPI document publishes it: the shapes its
    ``validate`` refuses with 400. What the schema admits may still be refused with 422 (a command this
    node lacks), or 409 (a port in use)."""
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": list(required)}


def reject_unknown_fields(config: dict[str, Any], known: tuple[str, ...]) -> None:
    """Typos in a workload's config fail loudly, naming the fields that are known."""
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise Invalid(f"config: unknown field(s) {', '.join(unknown)} (known: {', '.join(known)})")


@dataclass(frozen=True)
class ProgramSpec:
    """What supervisord must run for a workload, and how the node treats its exits."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    restart_policy: str = "never"
    stop_timeout_s: int = 5
    endpoint: str | None = None     # what users call (services)
    health_url: str | None = None   # answers 200 when the service is ready and well
    user: str | None = None         # who it runs as (None: the node's own user)


@dataclass(frozen=True)
class NodeContext:
    """What an executor may know of the node it runs on."""

    node_id: str
    paths: RuntimePaths
    container_engine: str
    gateway_roots: tuple[str, ...] = ()  # where a data gateway may serve from: the data path and allowed roots
    workload_user: str | None = None  # who process workloads run as by default (None: the node's user)
    workload_users: frozenset[str] = frozenset()  # every user a workload may ask for
    workload_nice: int = 0  # how far below the node's own processes workloads run for CPU (``nice``)


def at_workload_priority(argv: list[str], node: NodeContext) -> list[str]:
    """``argv`` run ``node.workload_nice`` below the node's own processes (``workloads.nice``): a workload, or
    a model's check, that takes every core leaves the API, the scheduler and the heartbeats theirs."""
    return [NICE, "-n", str(node.workload_nice), *argv] if node.workload_nice else argv


class Executor(Protocol):
    """One workload type: validates its config and says which program runs it."""

    type_name: str
    config_schema: dict[str, Any]
    serves_a_model: bool  # its config names a model (model_path) that the node brings before it starts
    replicable: bool  # a stateless service: a deployment may run replicas of it behind one endpoint

    def feature(self, config: dict[str, Any]) -> str:
        """What a node must offer to run ``config``: its type, or a runtime of it (placement's feasibility)."""

    def features(self, node: NodeContext) -> dict[str, str | None]:
        """Each feature of this type: None when this node offers it, else why not. It may probe (an engine,
        say): called off any request path."""

    def validate(self, config: dict[str, Any], node: NodeContext) -> dict[str, Any]:
        """Return the normalized config, or raise ``Invalid`` (the shape is wrong) or ``Unprocessable`` (this
        node cannot act on it), naming the field."""

    def check(self, config: dict[str, Any], node: NodeContext) -> None:
        """A deeper look at a validated config than ``validate``'s, where its type has one (its model loads):
        ``Unprocessable`` when it would not run. A deployment's new revision is checked so before it rolls out."""

    def probe(self, config: dict[str, Any], node: NodeContext) -> None:
        """A quick look at what the workload reads from outside (a stream's camera), on its first start here
        only: ``Unprocessable`` when it surely cannot be reached. A relaunch does not probe, so a source down
        for a while does not fail it."""

    def program(self, record: WorkloadRecord, node: NodeContext) -> ProgramSpec:
        """The program that runs ``record`` (its config already validated) on this node."""

    def cleanup(self, record: WorkloadRecord, node: NodeContext) -> None:
        """Release what outlives the program when the workload is deleted (a container, say)."""

    def facts(self, record: WorkloadRecord, node: NodeContext) -> dict[str, Any]:
        """What only the running program knows (a container id, say), shown with the record; a fact not
        known yet is None, and a submission's answer waits for it."""

    def shown_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config as readers of the record see it: secrets (a gateway's secret key) hidden."""




class PlainProgram:
    """For executors whose program leaves nothing behind and adds nothing to the record, and that every node
    can run."""

    type_name: str
    serves_a_model = False
    replicable = False

    def feature(self, config: dict[str, Any]) -> str:
        return self.type_name

    def features(self, node: NodeContext) -> dict[str, str | None]:
        return {self.type_name: None}

    def check(self, config: dict[str, Any], node: NodeContext) -> None:
        return None

    def probe(self, config: dict[str, Any], node: NodeContext) -> None:
        return None

    def cleanup(self, record: WorkloadRecord, node: NodeContext) -> None:
        return None

    def facts(self, record: WorkloadRecord, node: NodeContext) -> dict[str, Any]:
        return {}

    def shown_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return config


def choose_user(asked: Any, node: NodeContext) -> str | None:
    """Who a workload runs as: the node's workloads.user, or one the node allows (root only with allow_root)."""
    if asked is None or asked == node.workload_user:
        return node.workload_user
    if not isinstance(asked, str):
        raise Invalid("config.user: expected a user name")
    if node.workload_user is None:
        raise Unprocessable("config.user: this node does not run as root, so its workloads run as its own user")
    if asked not in node.workload_users:
        allowed = ", ".join(sorted(node.workload_users))
        raise Unprocessable(f"config.user: {asked!r} is not allowed here (allowed: {allowed}; root needs "
                      "workloads.allow_root, others workloads.allowed_users)")
    return asked
