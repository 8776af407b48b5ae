"""A heartbeat stays small enough for any receiver to take it: a subtree summary's labels whose values differ
per node (a serial number) grow with the subtree, and beyond ``LABELS_MAX_BYTES`` the summary says neither labels
nor features, so that its parent takes the subtree as able (and asks) rather than never hearing it; a node's own
labels (agent.labels) beyond the same bound are refused when its config is read."""
from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from cnetd.core.config import ConfigError, parse_config
from cnetd.scheduler.placement import Candidate, Need, plan
from ledger.records import Resources, Usage
from mesh.messages import LABELS_MAX_BYTES, MAX_MESSAGE_BYTES, Heartbeat
from mesh.summary import subtree_summary
from tests.support.heartbeats import heartbeat

OWN = Usage(capacity=Resources(cpu=4.0), allocated=Resources())
FEATURES = ["mlmodel", "process"]


def leaf(labels: dict[str, str]) -> dict[str, Any]:
    return subtree_summary(OWN, [], {"features": FEATURES, "labels": labels})


def sent_and_heard(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as a receiver decodes it from the heartbeat that carries it."""
    return Heartbeat.decode(dataclasses.replace(heartbeat("parent", {"cpu": 4.0}), subtree=summary).encode()).subtree


def test_labels_that_fit_are_summarized_with_the_features() -> None:
    children = [leaf({"zone": "east", "serial": f"{index:040d}"}) for index in range(10)]
    heard = sent_and_heard(subtree_summary(OWN, children, {"features": FEATURES, "labels": {"zone": "west"}}))
    assert heard["features"] == FEATURES and heard["labels"]["zone"] == ["east", "west"]
    assert len(heard["labels"]["serial"]) == 10 and heard["nodes"] == 11


def test_a_subtree_of_2000_serial_numbers_says_no_labels_and_is_still_heard_and_taken_as_able() -> None:
    children = [leaf({"serial": f"{index:040d}"}) for index in range(2000)]  # before the bound: 87 KB, dropped
    heard = sent_and_heard(subtree_summary(OWN, children, {"features": FEATURES, "labels": {}}))
    assert "labels" not in heard and "features" not in heard, sorted(heard)
    assert heard["nodes"] == 2001 and heard["capacity"]["cpu"] == 4.0 * 2001  # the totals are all there
    # Its parent summarizes it as unknown too, and places a constraint on it (the child then decides).
    above = subtree_summary(OWN, [heard], {"features": FEATURES, "labels": {}})
    assert "labels" not in above
    candidate = Candidate("child", Resources.from_dict(heard["available_max"]), Resources.from_dict(heard["capacity"]),
                          labels=None)
    assert [placement.node_id for placement in plan(Need(Resources(cpu=1.0), labels={"serial": "7"}), [candidate],
                                                    "spread").ranked] == ["child"]


SERIALS_AT_THE_BOUND = [f"{index:040d}" for index in range((LABELS_MAX_BYTES - 20) // 43)]  # just under it, as JSON


def subtree_at_the_bound() -> dict[str, Any]:
    """A subtree whose labels take just under ``LABELS_MAX_BYTES``: one serial number per node."""
    return subtree_summary(OWN, [leaf({"serial": value}) for value in SERIALS_AT_THE_BOUND],
                           {"features": FEATURES, "labels": {}})


def test_the_bound_is_what_a_message_can_carry_with_room_to_spare() -> None:
    heard = sent_and_heard(subtree_at_the_bound())
    assert len(heard["labels"]["serial"]) == len(SERIALS_AT_THE_BOUND)


def full_length_labels(count: int) -> dict[str, str]:
    """``count`` labels whose names and values are as long as a label may be (63 characters)."""
    return {f"n{index:05d}".ljust(63, "x"): "v" * 63 for index in range(count)}


def test_a_nodes_own_labels_are_refused_beyond_the_bound_and_the_largest_accepted_leave_its_heartbeat_heard() -> None:
    def config_labels(labels: dict[str, str]) -> dict[str, str]:
        return parse_config({"agent": {"node_id": "nanjing", "address": "127.0.0.1", "labels": labels}}).labels

    count = next(count for count in range(1, 1000) if len(orjson.dumps(full_length_labels(count))) > LABELS_MAX_BYTES)
    own = config_labels(full_length_labels(count - 1))  # the largest set of full-length labels accepted
    with pytest.raises(ConfigError, match=f"agent.labels: expected labels of at most {LABELS_MAX_BYTES} bytes"):
        config_labels(full_length_labels(count))
    # With a subtree whose labels are at their bound too, its heartbeat is still one a receiver takes.
    subtree = subtree_at_the_bound()
    assert len(subtree["labels"]["serial"]) == len(SERIALS_AT_THE_BOUND)
    beat = dataclasses.replace(heartbeat("parent", {"cpu": 4.0}), labels=own, subtree=subtree)
    assert len(beat.encode()[1]) <= MAX_MESSAGE_BYTES and Heartbeat.decode(beat.encode()).labels == own
    # The control: the 500 full-length labels the config took before make every heartbeat too large to hear.
    assert len(dataclasses.replace(beat, labels=full_length_labels(500)).encode()[1]) > MAX_MESSAGE_BYTES
