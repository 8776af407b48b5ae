"""A subtree summary stays small enough for any heartbeat to carry it: labels whose values differ per node
(a serial number) grow with the subtree, and beyond ``LABELS_MAX_BYTES`` the summary says neither labels nor
features, so that its parent takes the subtree as able (and asks) rather than never hearing it."""
from __future__ import annotations

import dataclasses
from typing import Any

from cnetd.scheduler.placement import Candidate, Need, plan
from ledger.records import Resources, Usage
from mesh.messages import Heartbeat
from mesh.summary import LABELS_MAX_BYTES, subtree_summary
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


def test_the_bound_is_what_a_message_can_carry_with_room_to_spare() -> None:
    values = [f"{index:040d}" for index in range((LABELS_MAX_BYTES - 20) // 43)]  # just under the bound, as JSON
    heard = sent_and_heard(subtree_summary(OWN, [leaf({"serial": value}) for value in values],
                                           {"features": FEATURES, "labels": {}}))
    assert len(heard["labels"]["serial"]) == len(values)
