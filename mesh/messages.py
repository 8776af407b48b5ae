"""Every message that crosses a ZeroMQ socket, defined once with its encoder and validating decoder."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from cnetd.common.protocol import AGENT_VERSION, PROTOCOL_MAJOR, PROTOCOL_MINOR, incompatibility

HEARTBEAT_LIVENESS = 3  # missed periods before a neighbour is offline
MAX_MESSAGE_BYTES = 64 * 1024
LEDGER_CHANGED = b"ledger.changed"
NEIGHBOURS_CHANGED = b"neighbours.changed"
BUS_TOPICS = (LEDGER_CHANGED, NEIGHBOURS_CHANGED)
HEARTBEAT_TOPIC = b"hb"


class MalformedMessage(ValueError):
    """A frame set that is not a valid message of the expected kind; the receiver drops and counts it (under
    ``reason``)."""

    reason = "malformed"


class IncompatibleMessage(MalformedMessage):
    """A message of another protocol major (``cnetd.common.protocol``): dropped and counted apart."""

    reason = "incompatible"

    def __init__(self, version: str, agent: str | None) -> None:
        super().__init__(incompatibility(version, agent))
        self.version = version


def _envelope() -> dict[str, Any]:
    """What every message carries of its protocol: ``v`` (the major: what a node of protocol 1.0 checks),
    ``minor``, and the agent's version."""
    return {"v": PROTOCOL_MAJOR, "minor": PROTOCOL_MINOR, "agent": AGENT_VERSION}


def _load_object(frame: bytes) -> dict[str, Any]:
    """A message's JSON object, of this protocol's major (any minor: fields this node does not know are
    ignored by the decoders, which read only those they know)."""
    if len(frame) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message of {len(frame)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        body = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedMessage("not a JSON object")
    major, minor = body.get("v"), body.get("minor", 0)
    if not isinstance(major, int) or isinstance(major, bool) or not isinstance(minor, int):
        raise MalformedMessage(f"protocol version must be whole numbers, got {major!r}.{minor!r}")
    if major != PROTOCOL_MAJOR:
        agent = body.get("agent")
        raise IncompatibleMessage(f"{major}.{minor}", agent if isinstance(agent, str) else None)
    return body


@dataclass(frozen=True)
class BusEvent:
    """Node-local bus event: ``ledger.changed`` (a commit reached ``version``) or ``neighbours.changed``."""

    topic: bytes
    version: int
    sender: str

    def encode(self) -> list[bytes]:
        return [self.topic, orjson.dumps({**_envelope(), "version": self.version, "sender": self.sender})]

    @classmethod
    def decode(cls, frames: list[bytes]) -> BusEvent:
        if len(frames) != 2 or frames[0] not in BUS_TOPICS:
            raise MalformedMessage("not a bus event")
        body = _load_object(frames[1])
        version, sender = body.get("version"), body.get("sender")
        if not isinstance(version, int) or not isinstance(sender, str):
            raise MalformedMessage("bus event needs an integer version and a sender")
        return cls(frames[0], version, sender)


def _numeric_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(item, (int, float)) and not isinstance(item, bool)
                                           for item in value.values())


# The most a heartbeat's label set may take as JSON, its node's own (agent.labels, refused beyond this when the
# config is read) and its subtree's (omitted beyond this): each a quarter of a message, so that both together
# leave a heartbeat room under MAX_MESSAGE_BYTES, beyond which every receiver drops it.
LABELS_MAX_BYTES = MAX_MESSAGE_BYTES // 4

SUBTREE_MAPS = ("capacity", "allocated", "available_max")
SUBTREE_COUNTS = ("nodes", "online")


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _labels(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())


def _valid_subtree(value: Any) -> bool:
    """Its sums and counts; ``features`` (a list of names) and ``labels`` (name → values) when it says."""
    return (isinstance(value, dict) and all(_numeric_map(value.get(name)) for name in SUBTREE_MAPS)
            and all(isinstance(value.get(name), int) for name in SUBTREE_COUNTS)
            and ("features" not in value or _strings(value["features"]))
            and ("labels" not in value or (isinstance(value["labels"], dict)
                                           and all(_strings(values) for values in value["labels"].values()))))


@dataclass(frozen=True)
class Heartbeat:
    """A node's periodic or triggered announcement of its resources, published on its mesh endpoint.

    ``subtree`` summarises the node and every online descendant in constant size: ``nodes``/``online``
    counts, summed ``capacity``/``allocated``, and ``available_max``, the per-resource maximum free on any
    one node of the subtree (an upper bound a delegating parent checks before forwarding).
    ``boot_id`` changes when the node restarts, so a child knows to register again.
    """

    node_id: str
    seq: int
    boot_id: str
    api_url: str
    mesh_endpoint: str
    capacity: dict[str, float]
    allocated: dict[str, float]
    available: dict[str, float]
    workloads: dict[str, int]
    subtree: dict[str, Any]
    ledger_version: int
    gpus: list[dict[str, Any]] = field(default_factory=list)
    sent_at: float = field(default_factory=time.time)
    features: list[str] | None = None  # what the node can run (None: an older node, which does not say)
    labels: dict[str, str] | None = None  # agent.labels
    protocol: str | None = None  # the sender's, from the envelope (as received; not set to send)
    agent: str | None = None

    _NUMERIC_MAPS = ("capacity", "allocated", "available", "workloads")
    _STRINGS = ("node_id", "boot_id", "api_url", "mesh_endpoint")
    _OPTIONAL = ("gpus", "sent_at", "features", "labels", "protocol", "agent")

    def encode(self) -> list[bytes]:
        return [HEARTBEAT_TOPIC, orjson.dumps({**self.to_dict(), **_envelope()})]

    @classmethod
    def decode(cls, frames: list[bytes]) -> Heartbeat:
        if len(frames) != 2 or frames[0] != HEARTBEAT_TOPIC:
            raise MalformedMessage("not a heartbeat")
        body = _load_object(frames[1])
        body["protocol"] = f"{body['v']}.{body.get('minor', 0)}"
        body["agent"] = body["agent"] if isinstance(body.get("agent"), str) else None
        try:
            beat = cls(**{name: body[name] for name in cls.__dataclass_fields__
                          if name in body or name not in cls._OPTIONAL})
        except KeyError as exc:
            raise MalformedMessage(f"heartbeat lacks {exc.args[0]}") from None
        if not all(isinstance(getattr(beat, name), str) for name in cls._STRINGS):
            raise MalformedMessage(f"heartbeat {', '.join(cls._STRINGS)} must be strings")
        if not isinstance(beat.seq, int) or not isinstance(beat.ledger_version, int):
            raise MalformedMessage("heartbeat seq and ledger_version must be integers")
        if not isinstance(beat.sent_at, (int, float)):
            raise MalformedMessage("heartbeat sent_at must be a number")
        for name in cls._NUMERIC_MAPS:
            if not _numeric_map(getattr(beat, name)):
                raise MalformedMessage(f"heartbeat {name} must map names to numbers")
        if not _valid_subtree(beat.subtree):
            raise MalformedMessage("heartbeat subtree is malformed")
        if not isinstance(beat.gpus, list) or not all(isinstance(gpu, dict) and isinstance(gpu.get("index"), int)
                                                      for gpu in beat.gpus):
            raise MalformedMessage("heartbeat gpus must be a list of devices with an integer index")
        if not (beat.features is None or _strings(beat.features)) or not (beat.labels is None or _labels(beat.labels)):
            raise MalformedMessage("heartbeat features must be a list of names, and labels map names to values")
        return beat

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# Patterns as the OpenAPI document publishes them (anchored, so that JSON Schema's unanchored search and
# Python's fullmatch agree). A host is a DNS name or an IPv4 address.
NODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"  # as agent.node_id
_HOST = r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
API_URL_PATTERN = rf"^https?://{_HOST}:{_PORT}/?$"
MESH_ENDPOINT_PATTERN = rf"^tcp://{_HOST}:{_PORT}$"
NODE_ID = re.compile(NODE_ID_PATTERN)
LABEL_PATTERN = NODE_ID_PATTERN  # a label's name and its value (agent.labels, a submission's constraints)
LABEL = NODE_ID


def _check(value: str, pattern: str, name: str, form: str) -> None:
    """``value`` is wholly of ``pattern`` (no trailing newline either); else MalformedMessage naming the form."""
    if not re.fullmatch(pattern, value):
        raise MalformedMessage(f"{name} must be {form}, got {value[:100]!r}")


@dataclass(frozen=True)
class Registration:
    """A child's request to its parent (POST /api/nodes/register): subscribe to me, I am your child."""

    node_id: str
    api_url: str
    mesh_endpoint: str
    fan_in: bool = False  # the child sends its heartbeats up (mesh.fanin; protocol 1.2): it wants a key

    _STRINGS = ("node_id", "api_url", "mesh_endpoint")

    @classmethod
    def decode(cls, body: Any) -> Registration:
        if not isinstance(body, dict):
            raise MalformedMessage("registration must be a JSON object")
        if not isinstance(body.get("fan_in", False), bool):
            raise MalformedMessage("registration fan_in must be true or false")
        values = {name: body.get(name) for name in cls._STRINGS}
        missing = [name for name, value in values.items() if not isinstance(value, str) or not value]
        if missing:
            raise MalformedMessage(f"registration needs string field(s) {', '.join(missing)}")
        _check(values["node_id"], NODE_ID_PATTERN, "node_id", "letters, digits, '.', '_' or '-' (at most 63)")
        _check(values["api_url"], API_URL_PATTERN, "api_url", "http://HOST:PORT or https://HOST:PORT")
        _check(values["mesh_endpoint"], MESH_ENDPOINT_PATTERN, "mesh_endpoint", "tcp://HOST:PORT")
        return cls(values["node_id"], values["api_url"].rstrip("/"), values["mesh_endpoint"], body.get("fan_in", False))
