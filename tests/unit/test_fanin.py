"""Heartbeat fan-in's sender check (mesh/fanin.py) and the node table's index by role (ledger/nodetable.py)."""
from __future__ import annotations

import dataclasses

import lmdb
import orjson
import pytest

from cnetd.register.heartbeats import Heard, shows_change
from ledger.nodetable import Neighbour, NodeTable, Role
from mesh.fanin import WrongSender, child_key, is_subscription, signed, verified
from mesh.messages import Heartbeat, MalformedMessage
from tests.support.heartbeats import heartbeat

SECRET = b"s" * 32


def beat(node_id: str) -> Heartbeat:
    return heartbeat(node_id, {"cpu": 1.0})


def test_a_heartbeat_signed_with_its_senders_key_is_taken() -> None:
    frames = signed(beat("honest").encode(), child_key(SECRET, "honest"))
    assert verified(frames, SECRET).node_id == "honest"


@pytest.mark.parametrize("frames", [
    signed(beat("honest").encode(), child_key(SECRET, "mallory")),  # in another's name, with its own key
    signed(beat("honest").encode(), child_key(b"t" * 32, "honest")),  # a key of another parent
    [*beat("honest").encode(), b"0" * 64],
])
def test_a_heartbeat_in_another_nodes_name_is_refused(frames: list[bytes]) -> None:
    with pytest.raises(WrongSender):
        verified(frames, SECRET)


def test_a_signed_heartbeat_changed_on_the_way_is_refused() -> None:
    topic, payload, signature = signed(beat("honest").encode(), child_key(SECRET, "honest"))
    changed = orjson.dumps({**orjson.loads(payload), "available": {"cpu": 1e6}})
    with pytest.raises(WrongSender):
        verified([topic, changed, signature], SECRET)


@pytest.mark.parametrize("frames", [beat("honest").encode(), [b"hb"], [b"xx", b"{}", b"sig"]])
def test_what_is_no_signed_heartbeat_is_malformed(frames: list[bytes]) -> None:
    with pytest.raises(MalformedMessage):
        verified(frames, SECRET)


def test_subscriptions_are_told_from_messages_sent_up() -> None:
    assert is_subscription([b"\x01hb"]) and is_subscription([b"\x00hb"])
    assert not is_subscription(beat("x").encode()) and not is_subscription([b"hb"])


def test_children_are_read_a_page_at_a_time_and_counted_from_the_index(tmp_path) -> None:
    table = NodeTable(str(tmp_path / "nodes"))
    for index in range(7):
        table.upsert(Neighbour(f"c{index}", Role.CHILD, "http://x:1", "tcp://x:2"))
    table.upsert(Neighbour("p", Role.PARENT, "http://x:1", "tcp://x:3"))
    assert [n.node_id for n in table.with_role(Role.CHILD, limit=3)] == ["c0", "c1", "c2"]
    assert [n.node_id for n in table.with_role(Role.CHILD, after="c2", limit=3)] == ["c3", "c4", "c5"]
    assert [n.node_id for n in table.with_role(Role.CHILD, after="c5")] == ["c6"]
    assert [n.node_id for n in table.with_role(Role.PARENT)] == ["p"] and table.count(Role.CHILD) == 7
    table.remove("c3")
    table.upsert(Neighbour("c4", Role.PEER, "http://x:1", "tcp://x:4"))  # its role changed: re-indexed
    assert [n.node_id for n in table.with_role(Role.CHILD)] == ["c0", "c1", "c2", "c5", "c6"]
    assert [n.node_id for n in table.with_role(Role.PEER)] == ["c4"] and table.count(Role.CHILD) == 5
    table.close()


def test_a_table_of_an_older_version_is_indexed_when_opened(tmp_path) -> None:
    env = lmdb.open(str(tmp_path / "nodes"), max_dbs=2)  # as a node before the index wrote it
    with env.begin(write=True, db=env.open_db(b"neighbours")) as txn:
        for node_id, role in (("a", Role.CHILD), ("b", Role.PEER), ("c", Role.CHILD)):
            txn.put(node_id.encode(), orjson.dumps(Neighbour(node_id, role, "http://x:1", "tcp://x:2").to_dict()))
    env.close()
    table = NodeTable(str(tmp_path / "nodes"))
    assert [n.node_id for n in table.with_role(Role.CHILD)] == ["a", "c"] and table.count(Role.PEER) == 1
    table.close()


def test_heartbeats_are_recorded_together_and_only_from_whom_they_may_come(tmp_path) -> None:
    table = NodeTable(str(tmp_path / "nodes"))
    table.upsert(Neighbour("up", Role.CHILD, "http://x:1", "tcp://x:2", fan_in=True))
    table.upsert(Neighbour("old", Role.CHILD, "http://x:1", "tcp://x:3"))
    roles = table.record_heartbeats([("up", b'{"seq": 1}'), ("old", b'{"seq": 1}'), ("stranger", b'{"seq": 1}')], 5.0,
                                    accept=lambda known: known["fan_in"])
    assert roles == [Role.CHILD, None, None]
    assert table.get("up").last_seen == 5.0 and table.get("old").last_seen is None
    assert len(table.fan_in_secret()) == 32 and table.fan_in_secret() == table.fan_in_secret()
    table.close()


def test_a_heartbeat_shows_a_change_only_in_what_consoles_show() -> None:
    beat = Heartbeat.decode(heartbeat("kid", free={"cpu": 1}, seq=1).encode())
    last = Heard.of(beat, Role.CHILD, at=100.0)
    assert shows_change(None, beat, 100.0, stale_after_s=3.0)  # first word
    assert not shows_change(last, dataclasses.replace(beat, seq=2), 101.0, stale_after_s=3.0)  # the control
    assert shows_change(last, dataclasses.replace(beat, seq=2, ledger_version=beat.ledger_version + 1), 101.0, 3.0)
    assert shows_change(last, dataclasses.replace(beat, seq=2, subtree={**beat.subtree, "online": 9}), 101.0, 3.0)
    assert shows_change(last, dataclasses.replace(beat, seq=2), 104.0, stale_after_s=3.0)  # back after silence
