"""The deployment controller's decisions alone (``decide``, no process): desired state against what the
replicas do gives the right actions for scaling, a rolling update, a canary, rollback, offline nodes and
rescheduling."""
from __future__ import annotations

import dataclasses

import pytest

from cnetd.core.deployment_spec import DeploymentSpec, ReschedulePolicy, UpdatePolicy
from cnetd.scheduler.deployments.decide import Member, Place, Retire, SetRevision, decide

pytestmark = pytest.mark.unit
LOST_AFTER_S = 60.0


def spec(replicas: int = 3, rollout: int | None = None, **update: object) -> DeploymentSpec:
    revisions = [{"revision": number, "state": "active" if number == 1 else "rolling out", "created_at": 0.0,
                  "config": {"v": number}, "requirements": {"cpu": 1.0}, "reason": ""} for number in (1, 2)]
    return DeploymentSpec(replicas, revisions=revisions, update=UpdatePolicy(**update).to_dict(),
                          rollout={"revision": rollout, "started_at": 0.0, "promoted": not update.get("canary")}
                          if rollout else None)


def member(index: int, revision: int = 1, status: str = "running", healthy_for_s: float | None = 30.0,
           node: str = "", age_s: float = 60.0, lost_for_s: float = 0.0) -> Member:
    return Member(f"d-r{index}", index, revision, status, status == "running" and healthy_for_s is not None,
                  node or f"n{index}", age_s, healthy_for_s, lost_for_s)


def kinds(actions: list) -> list[str]:
    return [type(action).__name__ for action in actions]


def test_a_steady_deployment_needs_nothing_and_a_missing_replica_is_placed() -> None:
    three = [member(0), member(1), member(2)]
    assert decide(spec(), three, 0, 0.0, LOST_AFTER_S, 0) == []
    assert decide(spec(), three[:2], 0, 0.0, LOST_AFTER_S, 0) == [Place(1)]
    assert decide(spec(), three[:2], 1, 0.0, LOST_AFTER_S, 0) == []  # its placement is under way


def test_scaling_down_retires_the_unhealthy_then_the_newest() -> None:
    members = [member(0), member(1, status="starting", healthy_for_s=None), member(2)]
    actions = decide(spec(replicas=1), members, 0, 0.0, LOST_AFTER_S, 0)
    assert {action.member_id for action in actions} == {"d-r1", "d-r2"} and kinds(actions) == ["Retire", "Retire"]


def test_a_failed_replica_is_replaced_on_another_node_after_a_growing_delay() -> None:
    members = [member(0), member(1), member(2, status="failed", node="bad")]
    actions = decide(spec(), members, 0, 0.0, LOST_AFTER_S, recent_reschedules=2)
    assert actions == [Retire("d-r2", "replaced: it ended failed", reschedule=True),
                       Place(1, frozenset({"bad"}), ReschedulePolicy().delay_after(2))]
    assert ReschedulePolicy().delay_after(2) == 20.0
    exhausted = decide(spec(), members, 0, 0.0, LOST_AFTER_S, recent_reschedules=ReschedulePolicy().attempts)
    assert kinds(exhausted) == ["Retire"]  # no more attempts within the interval: nothing is placed


def test_a_lost_replica_keeps_its_place_until_lost_after_s() -> None:
    members = [member(0), member(1), member(2, status="lost", healthy_for_s=None, lost_for_s=10.0)]
    assert decide(spec(), members, 0, 0.0, LOST_AFTER_S, 0) == []
    members[2] = dataclasses.replace(members[2], lost_for_s=LOST_AFTER_S)
    assert kinds(decide(spec(), members, 0, 0.0, LOST_AFTER_S, 0)) == ["Retire", "Place"]


def test_a_rolling_update_surges_one_at_a_time_and_drains_an_old_one_per_settled_new_one() -> None:
    old = [member(0), member(1), member(2)]
    assert decide(spec(rollout=2), old, 0, 1.0, LOST_AFTER_S, 0) == [Place(2)]
    starting = [*old, member(3, revision=2, status="starting", healthy_for_s=None, age_s=1.0)]
    assert decide(spec(rollout=2), starting, 0, 2.0, LOST_AFTER_S, 0) == []  # max_parallel 1: wait for it
    young = [*old, member(3, revision=2, healthy_for_s=0.5)]
    assert decide(spec(rollout=2), young, 0, 3.0, LOST_AFTER_S, 0) == []  # healthy, not yet for min_healthy_s
    settled = [*old, member(3, revision=2, healthy_for_s=5.0)]
    actions = decide(spec(rollout=2), settled, 0, 8.0, LOST_AFTER_S, 0)
    assert actions == [Place(2), Retire("d-r0", "replaced by revision 2")]
    done = [member(3, revision=2), member(4, revision=2), member(5, revision=2)]
    assert decide(spec(rollout=2), done, 0, 30.0, LOST_AFTER_S, 0) == [
        SetRevision(1, "superseded", "replaced by revision 2"),
        SetRevision(2, "active", "", finish=True, activate=True)]


def test_a_new_replica_that_fails_or_misses_its_deadline_rolls_back() -> None:
    old = [member(0), member(1), member(2)]
    failed = [*old, member(3, revision=2, status="failed", healthy_for_s=None)]
    actions = decide(spec(rollout=2), failed, 0, 5.0, LOST_AFTER_S, 0)
    assert actions[0] == Retire("d-r3", "rolled back: replica d-r3 of the new revision ended failed")
    assert actions[1].state == "rolled back" and actions[1].finish and not actions[1].activate
    late = [*old, member(3, revision=2, status="starting", healthy_for_s=None, age_s=200.0)]
    assert "not healthy within 120 s" in decide(spec(rollout=2), late, 0, 200.0, LOST_AFTER_S, 0)[1].reason
    overdue = decide(spec(rollout=2, progress_deadline_s=10.0), old, 0, 11.0, LOST_AFTER_S, 0)
    assert overdue == [SetRevision(2, "rolled back", "the rollout did not finish within 10 s "
                                                     "(update.progress_deadline_s)", finish=True)]


def test_without_auto_revert_a_failed_rollout_stops_where_it_is() -> None:
    members = [member(0), member(1), member(2, revision=2), member(3, revision=2, status="failed", healthy_for_s=None)]
    actions = decide(spec(rollout=2, auto_revert=False), members, 0, 5.0, LOST_AFTER_S, 0)
    assert kinds(actions) == ["SetRevision"] and actions[0].state == "failed" and "stopped where it is" in actions[0].reason
    after = dataclasses.replace(spec(auto_revert=False), rollout=None)  # the replicas of both revisions stay
    assert decide(after, members[:3], 0, 0.0, LOST_AFTER_S, 0) == []


def test_a_canary_waits_for_a_promote_or_promotes_itself() -> None:
    old = [member(0), member(1), member(2)]
    assert decide(spec(rollout=2, canary=1), old, 0, 1.0, LOST_AFTER_S, 0) == [Place(2)]
    canary = [*old, member(3, revision=2, healthy_for_s=10.0)]
    waiting = decide(spec(rollout=2, canary=1), canary, 0, 20.0, LOST_AFTER_S, 0)
    assert kinds(waiting) == ["SetRevision"] and "waiting for a promote" in waiting[0].reason
    assert kinds(decide(spec(rollout=2, canary=1, auto_promote=True), canary, 0, 20.0, LOST_AFTER_S, 0)) == ["Promote"]
    promoted = dataclasses.replace(spec(rollout=2, canary=1), rollout={"revision": 2, "promoted": True})
    assert kinds(decide(promoted, canary, 0, 20.0, LOST_AFTER_S, 0)) == ["Place", "Retire"]


def test_an_old_replica_on_an_offline_node_keeps_its_place_and_the_revision_is_pending() -> None:
    lost = member(2, status="lost", healthy_for_s=None, lost_for_s=5.0, node="cut")
    members = [member(3, revision=2), member(4, revision=2), lost]
    actions = decide(spec(rollout=2), members, 0, 30.0, LOST_AFTER_S, 0)
    assert actions == [SetRevision(2, "pending", "waiting for cut (offline) to update its replica")]
    back = dataclasses.replace(lost, status="running", healthy_for_s=1.0, lost_for_s=0.0)
    assert decide(spec(rollout=2), [*members[:2], back], 0, 40.0, LOST_AFTER_S, 0) == [Place(2)]
    replaced = [*members[:2], back, member(5, revision=2)]  # its replacement settled: the old one goes, done
    assert kinds(decide(spec(rollout=2), replaced, 0, 50.0, LOST_AFTER_S, 0)) == ["Retire", "SetRevision", "SetRevision"]


def test_a_rollback_asked_for_during_a_rollout_retires_the_new_replicas() -> None:
    asked = dataclasses.replace(spec(rollout=2, auto_revert=False), rollout={"revision": 2, "promoted": True,
                                                                             "abort": "rolled back by request"})
    members = [member(0), member(1), member(2), member(3, revision=2)]
    assert decide(asked, members, 0, 5.0, LOST_AFTER_S, 0) == [
        Retire("d-r3", "rolled back: rolled back by request"),
        SetRevision(2, "rolled back", "rolled back by request", finish=True)]
