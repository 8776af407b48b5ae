"""The chaos run's violations found as the answers came: a 500 is one (8), a status a fault can cause is not, and
each is reported once, also when the cluster's state needed a recheck to settle."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tools import chaos_invariants
from tools.chaos_history import History, Told


def test_an_answer_of_500_is_a_violation_and_the_statuses_faults_cause_are_not() -> None:
    told = Told()
    for status in (200, 201, 400, 404, 409, 502, 503, 504, 507):  # control: what faults and bad input may answer
        told.answered("parent", "submit", "/api/workloads", status, {"error": "x"})
    assert told.answered_wrong() == []
    told.answered("parent", "predict", "/api/workloads/faces/predict", 500,
                  {"error": "internal_error", "message": "internal error (KeyError); see the log"})
    assert told.answered_wrong() == ["8: /api/workloads/faces/predict on parent: predict answered 500: "
                                     "{'error': 'internal_error', 'message': 'internal error (KeyError); see the log'}"]
    assert told.answered_wrong() == []  # reported once


def test_a_violation_found_as_the_answers_came_is_kept_when_the_state_settles_on_a_recheck(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    history = History(tmp_path / "history.jsonl")
    history.add("answer", node="child1", path="s3://chaos/k/blob.bin", what="gateway read", error="InternalError")
    cluster = SimpleNamespace(told=Told())
    cluster.told.answered("child1", "gateway read", "s3://chaos/k/blob.bin", 500, "We encountered an internal error")
    rounds = iter([["2: child1: a view that lags"], []])  # the first check finds a lag, the recheck none
    monkeypatch.setattr(chaos_invariants, "_check_once", lambda checked: next(rounds))
    monkeypatch.setattr(chaos_invariants, "RECHECK_S", 0)
    violations = chaos_invariants.check(cluster, history)
    assert len(violations) == 1 and violations[0].startswith("8: s3://chaos/k/blob.bin on child1: gateway read"), \
        violations
    assert '"error": "InternalError"' in violations[0]  # with the history lines behind it
