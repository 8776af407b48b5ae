"""What a deployment needs done now, as a pure function: (its desired state, what its replicas are doing,
the time) → actions. The controller (``controller.py``) gathers the inputs and carries the actions out; this
is where every rule of scaling, rollouts, rollback, offline nodes and rescheduling lives, tested without a
process (tests/unit/test_deployments.py).

Rules, each round:

- Replicas that ended (failed after their restarts, completed, stopped) are retired and replaced, on another
  node, after the reschedule policy's growing delay; one whose node has been offline ``lost_after_s`` is
  retired and replaced too. Replicas of a revision the deployment no longer wants (left by a rollback) go.
- A rollout (``spec.rollout``) places new replicas of its revision, at most ``max_parallel`` starting at once,
  beside the old ones; each new one healthy for ``min_healthy_s`` lets one old one drain. With ``canary: N``
  it first places N beside all the old ones, and waits for a promote (or promotes itself with
  ``auto_promote``). An old replica whose node is offline keeps its place: the revision is ``pending`` until
  the node is back (then it is replaced there, spread permitting) or until it is lost for good.
- A new replica that fails, or is not healthy within ``healthy_deadline_s``, or a rollout past its
  ``progress_deadline_s``, or a rollback asked for (``abort``), rolls the deployment back (``auto_revert``: the new replicas go, the old
  revision is kept or restored, the reason recorded) or stops it where it is (the revision ``failed``).
- Without a rollout, the count of the active revision's replicas is kept at ``replicas``: extra ones (other
  revisions first, then the unhealthy, then the newest) are retired, missing ones placed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cnetd.core.deployment_spec import (ACTIVE, FAILED, PENDING, ROLLED_BACK, ROLLING_OUT, SUPERSEDED, DeploymentSpec)
from ledger.records import Status

ENDED = (Status.FAILED, Status.COMPLETED, Status.STOPPED)


@dataclass(frozen=True)
class Member:
    """A replica as the controller sees it this round."""

    id: str
    index: int
    revision: int
    status: str  # its record's, or its next hop's view (``lost`` when that node is offline)
    healthy: bool  # in rotation: running, passing its health checks
    node: str
    age_s: float  # since the controller first saw it (its placement)
    healthy_for_s: float | None  # since it was first seen healthy, None while it is not
    lost_for_s: float = 0.0  # since its node was first seen offline (0: it is not)

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def lost(self) -> bool:
        return self.status == Status.LOST


@dataclass(frozen=True)
class Place:
    revision: int
    avoid: frozenset[str] = frozenset()  # nodes to rank last (the one a failed replica ran on)
    after_s: float = 0.0  # not before (a reschedule's delay)


@dataclass(frozen=True)
class Retire:
    member_id: str
    reason: str
    reschedule: bool = False  # counted in deployment.reschedules


@dataclass(frozen=True)
class SetRevision:
    """Record a revision's state; ``finish`` ends the rollout, ``activate`` makes its revision the active one."""

    revision: int
    state: str
    reason: str = ""
    finish: bool = False
    activate: bool = False


@dataclass(frozen=True)
class Promote:
    reason: str


Action = Place | Retire | SetRevision | Promote


@dataclass
class Round:
    """What one round decided: actions in order."""

    actions: list[Action] = field(default_factory=list)

    def add(self, action: Action) -> None:
        self.actions.append(action)


def decide(spec: DeploymentSpec, members: list[Member], placing: int, rollout_age_s: float,
           lost_after_s: float, recent_reschedules: int) -> list[Action]:
    """The actions for one round of a deployment that should run. ``members``: its replicas not retired;
    ``placing``: placements under way (or waiting out a reschedule's delay) whose replica has no record
    yet; ``rollout_age_s``: how long its rollout has been under way; ``recent_reschedules``: replacements
    within the reschedule policy's interval (at its ``attempts``, nothing more is placed until they age)."""
    plan = Round()
    kept = _replace_ended_and_lost(spec, members, lost_after_s, recent_reschedules, plan)
    if spec.rollout:
        _roll(spec, kept, placing, rollout_age_s, plan)
    elif recent_reschedules < spec.reschedule_policy.attempts:
        _keep_count(spec, kept, placing, plan)
    return plan.actions


def _replace_ended_and_lost(spec: DeploymentSpec, members: list[Member], lost_after_s: float,
                            recent: int, plan: Round) -> list[Member]:
    """Retire what ended or was lost for good; outside a rollout, place its replacement (on another node,
    after the reschedule policy's delay). A new replica of a rollout that ended is the rollout's to judge."""
    policy, kept = spec.reschedule_policy, []
    target = spec.rollout["revision"] if spec.rollout else None
    for member in members:
        if member.ended and member.revision != target:
            plan.add(Retire(member.id, f"replaced: it ended {member.status}", reschedule=True))
            if target is None and recent < policy.attempts:
                plan.add(Place(spec.revision, frozenset({member.node}) if member.node else frozenset(),
                               policy.delay_after(recent)))
                recent += 1
        elif member.lost and member.lost_for_s >= lost_after_s:
            plan.add(Retire(member.id, f"replaced: its node {member.node} was offline for {lost_after_s:g} s "
                                       "(replicas.lost_after_s)", reschedule=True))
        else:
            kept.append(member)
    return kept


def _keep_count(spec: DeploymentSpec, members: list[Member], placing: int, plan: Round) -> None:
    """No rollout: ``replicas`` replicas (of whatever revision a stopped rollout left; new ones of the active
    one). Extra ones go: other revisions first, then the unhealthy, then the newest."""
    wanted = spec.replicas
    if len(members) > wanted:
        ranked = sorted(members, key=lambda member: (member.revision == spec.revision, member.healthy,
                                                     -member.index), reverse=True)
        for member in ranked[wanted:]:
            plan.add(Retire(member.id, f"scaled down to {wanted}"))
        return
    planned = sum(isinstance(action, Place) for action in plan.actions)
    for _ in range(max(0, wanted - len(members) - placing - planned)):
        plan.add(Place(spec.revision))


def _roll(spec: DeploymentSpec, members: list[Member], placing: int, rollout_age_s: float, plan: Round) -> None:
    policy, target = spec.update_policy, spec.rollout["revision"]
    new = [member for member in members if member.revision == target]
    old = [member for member in members if member.revision != target]
    failure = spec.rollout.get("abort") or _failure(new, policy.healthy_deadline_s, rollout_age_s,
                                                    policy.progress_deadline_s)
    if failure is not None:
        _fail(spec, target, new, failure, plan)
        return
    settled = [member for member in new if member.healthy_for_s is not None
               and member.healthy_for_s >= policy.min_healthy_s]
    starting = len(new) - len(settled) + placing
    lost_old = [member for member in old if member.lost]
    reachable_old = [member for member in old if not member.lost]
    if policy.canary and not spec.rollout.get("promoted"):
        if len(settled) >= policy.canary:
            if policy.auto_promote:
                plan.add(Promote(f"{policy.canary} canary replica(s) healthy for {policy.min_healthy_s:g} s "
                                 "(auto_promote)"))
            else:
                plan.add(SetRevision(target, ROLLING_OUT, f"canary: {len(settled)} healthy; waiting for a promote"))
            return
        for _ in range(min(policy.canary - len(new) - placing, policy.max_parallel - starting)):
            plan.add(Place(target))
        return
    wanted_new = spec.replicas - len(lost_old)  # an old replica on an offline node keeps its place
    for _ in range(max(0, min(wanted_new - len(new) - placing, policy.max_parallel - starting))):
        plan.add(Place(target))
    # Each new replica settled lets one old one go (the oldest reachable first), keeping the count.
    surplus = len(settled) + len(old) - spec.replicas
    for member in sorted(reachable_old, key=lambda member: (member.healthy, member.index))[:max(0, surplus)]:
        plan.add(Retire(member.id, f"replaced by revision {target}"))
    extra_new = len(new) + placing - wanted_new
    for member in sorted(new, key=lambda member: (member.healthy, -member.index))[:max(0, extra_new)]:
        plan.add(Retire(member.id, f"scaled down to {spec.replicas}"))
    if len(settled) >= wanted_new and len(reachable_old) <= max(0, surplus):
        if lost_old:
            plan.add(SetRevision(target, PENDING, f"waiting for {', '.join(sorted({m.node for m in lost_old}))} "
                                                  "(offline) to update its replica"))
        else:
            if spec.revision != target:  # recorded while the rollout (an undo, say) is still there to tell
                plan.add(SetRevision(spec.revision, SUPERSEDED, f"replaced by revision {target}"))
            plan.add(SetRevision(target, ACTIVE, "", finish=True, activate=True))


def _failure(new: list[Member], healthy_deadline_s: float, rollout_age_s: float,
             progress_deadline_s: float) -> str | None:
    for member in new:
        if member.ended:
            return f"replica {member.id} of the new revision ended {member.status}"
        if member.healthy_for_s is None and not member.lost and member.age_s > healthy_deadline_s:
            return f"replica {member.id} was not healthy within {healthy_deadline_s:g} s (update.healthy_deadline_s)"
    if rollout_age_s > progress_deadline_s:
        return f"the rollout did not finish within {progress_deadline_s:g} s (update.progress_deadline_s)"
    return None


def _fail(spec: DeploymentSpec, target: int, new: list[Member], reason: str, plan: Round) -> None:
    if spec.update_policy.auto_revert or spec.rollout.get("undo") or spec.rollout.get("abort"):
        for member in new:
            plan.add(Retire(member.id, f"rolled back: {reason}"))
        plan.add(SetRevision(target, ROLLED_BACK, reason, finish=True))
    else:
        plan.add(SetRevision(target, FAILED, f"{reason}; the rollout stopped where it is (update.auto_revert "
                                             "is false)", finish=True))
