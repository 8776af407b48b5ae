"""Placement is a pure function: strategies and refusals need no running process."""
from __future__ import annotations

import pytest

from cnetd.errors import InsufficientResources
from cnetd.placement import Candidate, place
from ledger.records import Resources

CAPACITY = Resources(cpu=8.0, memory=16, gpu=0, storage=0)
LOCAL = Candidate("here", Resources(cpu=4.0, memory=8), CAPACITY, local=True)
ROOMY = Candidate("roomy", Resources(cpu=8.0, memory=16), CAPACITY)
TIGHT = Candidate("tight", Resources(cpu=2.0, memory=4), CAPACITY)
NEED = Resources(cpu=2.0, memory=4)


def test_local_first_prefers_this_node() -> None:
    placement = place(NEED, [ROOMY, LOCAL, TIGHT], "local-first")
    assert placement.node_id == "here" and placement.local


def test_local_first_falls_back_to_a_neighbour() -> None:
    full = Candidate("here", Resources(cpu=1.0, memory=8), CAPACITY, local=True)
    placement = place(NEED, [full, TIGHT, ROOMY], "local-first")
    assert placement.node_id == "tight" and not placement.local and "full" in placement.reason


def test_best_fit_takes_the_tightest() -> None:
    assert place(NEED, [LOCAL, ROOMY, TIGHT], "best-fit").node_id == "tight"


def test_spread_takes_the_most_free() -> None:
    assert place(NEED, [LOCAL, TIGHT, ROOMY], "spread").node_id == "roomy"


def test_nothing_fits_names_the_short_resources() -> None:
    with pytest.raises(InsufficientResources) as refused:
        place(Resources(cpu=16.0, gpu=1), [LOCAL, ROOMY], "local-first")
    assert "cpu" in refused.value.message and "gpu" in refused.value.message
    assert refused.value.details["requested"]["cpu"] == 16.0
    assert refused.value.details["available"] == LOCAL.available.to_dict()
