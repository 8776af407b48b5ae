"""Placement is a pure function: feasibility, fit, rank and refusals need no running process."""
from __future__ import annotations

from cnetd.common.errors import InsufficientResources, Invalid, Unavailable, Unprocessable
from cnetd.scheduler.placement import Candidate, Need, plan
from cnetd.scheduler.refusals import INFEASIBLE, NO_ROOM, UNPROCESSABLE, UNREACHABLE, Refusal, refusal_error
from ledger.records import Resources

CAPACITY = Resources(cpu=8.0, memory=16, gpu=0, storage=0)
LOCAL = Candidate("here", Resources(cpu=4.0, memory=8), CAPACITY, local=True)
ROOMY = Candidate("roomy", Resources(cpu=8.0, memory=16), CAPACITY)
TIGHT = Candidate("tight", Resources(cpu=2.0, memory=4), CAPACITY)
NEED = Need(Resources(cpu=2.0, memory=4))


def order(need: Need, candidates: list[Candidate], strategy: str = "local-first") -> list[str]:
    return [placement.node_id for placement in plan(need, candidates, strategy).ranked]


def test_local_first_prefers_this_node() -> None:
    ranked = plan(NEED, [ROOMY, LOCAL, TIGHT], "local-first").ranked
    assert [placement.node_id for placement in ranked] == ["here", "roomy", "tight"] and ranked[0].local


def test_local_first_falls_back_to_a_neighbour_and_says_why_this_node_was_passed_over() -> None:
    full = Candidate("here", Resources(cpu=1.0, memory=8), CAPACITY, local=True)
    placements = plan(NEED, [full, TIGHT, ROOMY], "local-first")
    assert [placement.node_id for placement in placements.ranked] == ["tight", "roomy"]
    assert not placements.ranked[0].local
    assert placements.passed_over == [Refusal("here", NO_ROOM, "not enough cpu (cpu 2 asked, 1 free)")]


def test_best_fit_takes_the_tightest() -> None:
    assert order(NEED, [LOCAL, ROOMY, TIGHT], "best-fit") == ["tight", "here", "roomy"]


def test_spread_takes_the_most_free() -> None:
    assert order(NEED, [LOCAL, TIGHT, ROOMY], "spread") == ["roomy", "here", "tight"]


def test_the_spread_rule_ranks_nodes_with_a_sibling_replica_last_under_every_strategy() -> None:
    taken = Candidate("roomy", ROOMY.available, CAPACITY, holds_sibling=True)
    for strategy in ("local-first", "best-fit", "spread"):
        assert order(NEED, [LOCAL, taken, TIGHT], strategy)[-1] == "roomy", strategy
    only_taken = plan(NEED, [taken], "spread").ranked  # none other fits: a sibling's node still may
    assert [placement.node_id for placement in only_taken] == ["roomy"] and "another replica" in only_taken[0].reason


def test_feasibility_filters_by_feature_before_fit() -> None:
    no_litert = Candidate("here", Resources(cpu=8.0, memory=16), CAPACITY, local=True,
                          features=frozenset({"process", "mlmodel/yolo"}))
    with_litert = Candidate("child", Resources(cpu=1.0, memory=16), CAPACITY,
                            features=frozenset({"process", "mlmodel/yolo", "mlmodel/tflite"}))
    older = Candidate("older", Resources(cpu=8.0, memory=16), CAPACITY)  # says nothing: taken as able
    need = Need(Resources(cpu=2.0), feature="mlmodel/tflite")
    placements = plan(need, [no_litert, with_litert, older], "local-first")
    assert [placement.node_id for placement in placements.ranked] == ["older"]
    assert placements.passed_over == [Refusal("here", INFEASIBLE, "cannot run mlmodel/tflite"),
                                      Refusal("child", NO_ROOM, "not enough cpu (cpu 2 asked, 1 free)")]


def test_gpus_and_labels_are_feasibility() -> None:
    east = Candidate("east", Resources(cpu=8.0, gpu=1), Resources(cpu=8.0, gpu=1),
                     labels={"zone": frozenset({"east"}), "tier": frozenset({"edge", "core"})})
    no_gpu = Candidate("plain", Resources(cpu=8.0), CAPACITY, labels={"zone": frozenset({"east"})})
    placements = plan(Need(Resources(cpu=1.0, gpu=1), labels={"zone": "east", "tier": "core"}), [no_gpu, east], "spread")
    assert [placement.node_id for placement in placements.ranked] == ["east"]
    assert placements.passed_over[0].message == "has no GPU"
    west = plan(Need(Resources(cpu=1.0), labels={"zone": "west"}), [no_gpu, east], "spread")
    assert not west.ranked and {refusal.message for refusal in west.passed_over} == {"lacks label(s) zone=west"}


def test_nothing_fits_names_every_node_and_what_it_lacked() -> None:
    placements = plan(Need(Resources(cpu=16.0, gpu=1)), [LOCAL, ROOMY], "local-first")
    error = refusal_error(placements.passed_over, Resources(cpu=16.0, gpu=1), LOCAL.available)
    assert isinstance(error, Unprocessable)  # neither has a GPU at all
    assert [refusal["node_id"] for refusal in error.details["refused"]] == ["here", "roomy"]
    placements = plan(Need(Resources(cpu=16.0)), [LOCAL, ROOMY], "local-first")
    error = refusal_error(placements.passed_over, Resources(cpu=16.0), LOCAL.available)
    assert isinstance(error, InsufficientResources) and "cpu 16 asked, 4 free" in error.message
    assert error.details["requested"]["cpu"] == 16.0 and error.details["available"] == LOCAL.available.to_dict()


def test_nodes_that_were_asked_decide_the_answer() -> None:
    passed_over = Refusal("here", NO_ROOM, "not enough cpu")
    refused_config = Refusal("child", UNPROCESSABLE, "model file does not exist", 422)
    assert isinstance(refusal_error([passed_over, refused_config], Resources()), Unprocessable)
    assert isinstance(refusal_error([Refusal("child", "invalid", "bad shape", 400)], Resources()), Invalid)
    unreachable = Refusal("peer", UNREACHABLE, "connection refused")
    assert isinstance(refusal_error([passed_over, refused_config, unreachable], Resources()), Unavailable)
    assert isinstance(refusal_error([], Resources()), InsufficientResources)
