"""Placement is a pure function: strategies and refusals need no running process."""
from __future__ import annotations

import pytest

from cnetd.common.errors import InsufficientResources
from cnetd.scheduler.placement import Candidate, rank
from ledger.records import Resources

CAPACITY = Resources(cpu=8.0, memory=16, gpu=0, storage=0)
LOCAL = Candidate("here", Resources(cpu=4.0, memory=8), CAPACITY, local=True)
ROOMY = Candidate("roomy", Resources(cpu=8.0, memory=16), CAPACITY)
TIGHT = Candidate("tight", Resources(cpu=2.0, memory=4), CAPACITY)
NEED = Resources(cpu=2.0, memory=4)


def test_local_first_prefers_this_node() -> None:
    ranked = rank(NEED, [ROOMY, LOCAL, TIGHT], "local-first")
    assert [placement.node_id for placement in ranked] == ["here", "roomy", "tight"] and ranked[0].local


def test_local_first_falls_back_to_a_neighbour() -> None:
    full = Candidate("here", Resources(cpu=1.0, memory=8), CAPACITY, local=True)
    ranked = rank(NEED, [full, TIGHT, ROOMY], "local-first")
    assert [placement.node_id for placement in ranked] == ["tight", "roomy"]
    assert not ranked[0].local and "full" in ranked[0].reason


def test_best_fit_takes_the_tightest() -> None:
    assert [placement.node_id for placement in rank(NEED, [LOCAL, ROOMY, TIGHT], "best-fit")] == ["tight", "here", "roomy"]


def test_spread_takes_the_most_free() -> None:
    assert [placement.node_id for placement in rank(NEED, [LOCAL, TIGHT, ROOMY], "spread")] == ["roomy", "here", "tight"]


def test_nothing_fits_names_the_short_resources() -> None:
    with pytest.raises(InsufficientResources) as refused:
        rank(Resources(cpu=16.0, gpu=1), [LOCAL, ROOMY], "local-first")
    assert "cpu" in refused.value.message and "gpu" in refused.value.message
    assert refused.value.details["requested"]["cpu"] == 16.0
    assert refused.value.details["available"] == LOCAL.available.to_dict()
