"""Mesh messages: round trips, and malformed or oversized frames rejected with MalformedMessage."""
from __future__ import annotations

import dataclasses
import io
import random
from typing import Iterator

import orjson
import pytest

from cnetd import __version__
from cnetd.common.protocol import PROTOCOL_MINOR, PROTOCOL_VERSION, compatible
from mesh.messages import (LEDGER_CHANGED, MAX_MESSAGE_BYTES, BusEvent, Heartbeat, IncompatibleMessage, MalformedMessage,
                           Registration)
from cnetd.monitor.eventlistener import events

SUBTREE = {"nodes": 2, "online": 2, "capacity": {"cpu": 16.0}, "allocated": {"cpu": 1.0}, "available_max": {"cpu": 8.0}}
BEAT = Heartbeat(node_id="n", seq=3, boot_id="b1", api_url="http://127.0.0.1:1", mesh_endpoint="tcp://127.0.0.1:2",
                 capacity={"cpu": 8.0}, allocated={"cpu": 1.0}, available={"cpu": 7.0}, workloads={"running": 1},
                 subtree=SUBTREE, ledger_version=9)


def test_round_trips() -> None:
    assert Heartbeat.decode(BEAT.encode()) == dataclasses.replace(BEAT, protocol=PROTOCOL_VERSION, agent=__version__)
    event = BusEvent(LEDGER_CHANGED, 5, "api")
    assert BusEvent.decode(event.encode()) == event


def test_other_minors_are_understood_in_both_directions() -> None:
    """A newer node's heartbeat (a later minor, fields this node does not know) and an older one's (protocol
    1.0: no minor, no agent, no features) are both read; what this node does not know is left out."""
    body = orjson.loads(BEAT.encode()[1])
    newer = Heartbeat.decode([b"hb", orjson.dumps({**body, "minor": PROTOCOL_MINOR + 1, "agent": "9.9.0",
                                                   "rollouts": {"anything": [1, 2]}})])
    assert newer.node_id == "n" and newer.protocol == f"1.{PROTOCOL_MINOR + 1}" and newer.agent == "9.9.0"
    older = Heartbeat.decode([b"hb", orjson.dumps({name: value for name, value in body.items()
                                                   if name not in ("minor", "agent", "features", "labels", "gpus")})])
    assert older.protocol == "1.0" and older.agent is None and older.features is None and older.gpus == []


def test_another_major_is_told_apart_from_a_malformed_message() -> None:
    other = [b"hb", orjson.dumps({**orjson.loads(BEAT.encode()[1]), "v": 2, "minor": 0, "agent": "3.0.0"})]
    with pytest.raises(IncompatibleMessage) as refused:
        Heartbeat.decode(other)
    assert "protocol 2.0 (agent 3.0.0)" in str(refused.value) and f"speaks protocol {PROTOCOL_VERSION}" in str(refused.value)
    assert compatible("1.7") and compatible(None) and not compatible("2.0") and not compatible("one")


@pytest.mark.parametrize("frames", [
    [b"hb"],
    [b"other", BEAT.encode()[1]],
    [b"hb", b"not json"],
    [b"hb", b"[1, 2]"],
    [b"hb", orjson.dumps({**orjson.loads(BEAT.encode()[1]), "v": 99})],
    [b"hb", orjson.dumps({**orjson.loads(BEAT.encode()[1]), "v": "1"})],
    [b"hb", orjson.dumps({**orjson.loads(BEAT.encode()[1]), "features": "process"})],
    [b"hb", orjson.dumps({**orjson.loads(BEAT.encode()[1]), "seq": "3"})],
    [b"hb", orjson.dumps({**orjson.loads(BEAT.encode()[1]), "available": {"cpu": "lots"}})],
    [b"hb", orjson.dumps({k: v for k, v in orjson.loads(BEAT.encode()[1]).items() if k != "node_id"})],
    [b"hb", orjson.dumps({**orjson.loads(BEAT.encode()[1]), "subtree": {**SUBTREE, "nodes": "2"}})],
    [b"hb", orjson.dumps({**orjson.loads(BEAT.encode()[1]), "capacity": {"cpu": True}})],
    [b"hb", b"{" + b" " * MAX_MESSAGE_BYTES + b"}"],
])
def test_malformed_heartbeats_are_rejected(frames: list[bytes]) -> None:
    with pytest.raises(MalformedMessage):
        Heartbeat.decode(frames)


@pytest.mark.parametrize("body", [None, [], {"node_id": "c"}, {"node_id": "c", "api_url": "http://x:1", "mesh_endpoint": "ipc://x"},
                                  {"node_id": 1, "api_url": "http://x:1", "mesh_endpoint": "tcp://x:2"}])
def test_malformed_registrations_are_rejected(body) -> None:
    with pytest.raises(MalformedMessage):
        Registration.decode(body)


def test_event_listener_protocol() -> None:
    payload = "processname:wl-abc groupname:workloads from_state:RUNNING expected:0 pid:42"
    header = f"ver:3.0 server:supervisor serial:1 pool:monitor poolserial:1 eventname:PROCESS_STATE_EXITED len:{len(payload)}\n"
    stdin, stdout = io.StringIO(header + payload), io.StringIO()
    received = list(events(stdin, stdout))
    assert [(event.name, event.payload["processname"], event.payload["pid"]) for event in received] == \
        [("PROCESS_STATE_EXITED", "wl-abc", "42")]
    assert stdout.getvalue() == "READY\nRESULT 2\nOKREADY\n"


def _mutations(rng: random.Random, count: int) -> Iterator[list[bytes]]:
    body = orjson.loads(BEAT.encode()[1])
    junk = [None, True, -1, 2**63 - 1, 1e308, 1.5, "", "x" * 1000, [], {}, [1], {"a": "b"}, {"cpu": None}]
    for _ in range(count):
        kind = rng.randrange(4)
        if kind == 0:  # random bytes
            yield [b"hb", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))]
        elif kind == 1:  # a field replaced by junk
            mutated = dict(body)
            mutated[rng.choice(list(mutated))] = rng.choice(junk)
            yield [b"hb", orjson.dumps(mutated)]
        elif kind == 2:  # a field dropped
            mutated = dict(body)
            mutated.pop(rng.choice(list(mutated)))
            yield [b"hb", orjson.dumps(mutated)]
        else:  # the encoded bytes cut or flipped somewhere
            raw = bytearray(BEAT.encode()[1])
            position = rng.randrange(len(raw))
            raw[position] ^= 1 << rng.randrange(8)
            yield [b"hb", bytes(raw[:rng.randrange(position, len(raw) + 1)])]


def test_fuzzed_heartbeats_only_ever_raise_malformed() -> None:
    rng = random.Random(20261128)
    decoded = 0
    for frames in _mutations(rng, 5000):
        try:
            beat = Heartbeat.decode(frames)
        except MalformedMessage:
            continue
        decoded += 1
        assert isinstance(beat.node_id, str) and isinstance(beat.seq, int)
    assert decoded < 5000
