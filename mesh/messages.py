"""Every message that crosses a ZeroMQ socket, defined once with its encoder and validating decoder."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
LEDGER_CHANGED = b"ledger.changed"
HEARTBEAT_TOPIC = b"hb"


class MalformedMessage(ValueError):
    """A frame set that is not a valid message of the expected kind; the receiver drops and counts it."""


def _load_object(frame: bytes) -> dict[str, Any]:
    if len(frame) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message of {len(frame)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        body = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedMessage("not a JSON object")
    if body.get("v") != PROTOCOL_VERSION:
        raise MalformedMessage(f"unsupported protocol version {body.get('v')!r}")
    return body


@dataclass(frozen=True)
class LedgerChanged:
    """Bus event: a process committed a ledger write, reaching ``version``."""

    version: int
    sender: str

    def encode(self) -> list[bytes]:
        return [LEDGER_CHANGED, orjson.dumps({"v": PROTOCOL_VERSION, "version": self.version, "sender": self.sender})]

    @classmethod
    def decode(cls, frames: list[bytes]) -> LedgerChanged:
        if len(frames) != 2 or frames[0] != LEDGER_CHANGED:
            raise MalformedMessage("not a ledger.changed event")
        body = _load_object(frames[1])
        version, sender = body.get("version"), body.get("sender")
        if not isinstance(version, int) or not isinstance(sender, str):
            raise MalformedMessage("ledger.changed needs an integer version and a sender")
        return cls(version, sender)


@dataclass(frozen=True)
class Heartbeat:
    """A node's periodic or triggered announcement of its resources, published on its mesh endpoint."""

    node_id: str
    seq: int
    api_url: str
    capacity: dict[str, float]
    allocated: dict[str, float]
    available: dict[str, float]
    workloads: dict[str, int]
    ledger_version: int
    sent_at: float = field(default_factory=time.time)

    _NUMERIC_MAPS = ("capacity", "allocated", "available", "workloads")

    def encode(self) -> list[bytes]:
        body = {"v": PROTOCOL_VERSION, **{name: getattr(self, name) for name in self.__dataclass_fields__}}
        return [HEARTBEAT_TOPIC, orjson.dumps(body)]

    @classmethod
    def decode(cls, frames: list[bytes]) -> Heartbeat:
        if len(frames) != 2 or frames[0] != HEARTBEAT_TOPIC:
            raise MalformedMessage("not a heartbeat")
        body = _load_object(frames[1])
        try:
            beat = cls(**{name: body[name] for name in cls.__dataclass_fields__})
        except KeyError as exc:
            raise MalformedMessage(f"heartbeat lacks {exc.args[0]}") from None
        if not isinstance(beat.node_id, str) or not isinstance(beat.seq, int) or not isinstance(beat.api_url, str):
            raise MalformedMessage("heartbeat node_id/seq/api_url have the wrong types")
        for name in cls._NUMERIC_MAPS:
            value = getattr(beat, name)
            if not isinstance(value, dict) or not all(isinstance(v, (int, float)) for v in value.values()):
                raise MalformedMessage(f"heartbeat {name} must map names to numbers")
        return beat
