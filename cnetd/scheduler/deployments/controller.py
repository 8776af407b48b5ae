"""The deployment controller, a thread of the scheduler: the one owner of every deployment's replicas.

Each round it reads the deployments' desired state from the ledger (their records: count, revisions, a
rollout under way, policies, stop or delete asked), observes their replicas (local ones from the ledger;
delegated ones through their next hop, whose view it copies into the pointer the balancer reads), asks
``decide`` what to do, and does it: record first (a replica's number reserved, a replica retired, a
revision's state), then act (a placement through the scheduler's own decision path, a stop or delete here
or through the next hop). The API only records desired state (through the scheduler) and reads.

An autoscaled deployment's count is this owner's too: each round it samples the requests in flight through
the deployment's endpoint (the API processes' ``cnet_deployment_ongoing_requests``), asks ``autoscaling``
whether the count should move, and records the decision before the rounds place or drain replicas for it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from cnetd.common.errors import CnetError, DelegationUnknown, NotFound
from cnetd.common.logs import workload_fields
from cnetd.core.deployment_spec import ALL_OR_NOTHING, ROLLED_BACK, SUPERSEDED, DeploymentSpec, replica_record
from cnetd.core.deployment_state import deployment_status, in_a_deployment, in_rotation, members_of
from cnetd.core.lifecycle import desire
from cnetd.core.counters import AUTOSCALE_DECISIONS, REPLICA_EVENTS, ongoing_requests
from cnetd.core.remote import RemoteWorkloads
from cnetd.scheduler.deployments.autoscaling import Sample, ScaleDecision, ScaleState, autoscaled, decide_scale
from cnetd.scheduler.deployments.decide import Member, Place, Promote, Retire, SetRevision, decide
from cnetd.scheduler.launching import Launcher
from ledger.records import Desired, Status, WorkloadRecord
from ledger.store import Ledger

log = logging.getLogger("deployments")
ROUND_S = 0.5
DRAIN_S = 1.0  # a replica taken out of rotation is stopped this long after (gunicorn then drains what it holds)
PLACE_RETRY_S = 5.0  # after a replica could not be placed, the next try
PLACE_THREADS = 8
Submit = Callable[[WorkloadRecord, frozenset[str]], WorkloadRecord]  # the scheduler's submit of a replica
HasRoom = Callable[[WorkloadRecord], bool]  # whether some node would take this replica now


class DeploymentController(threading.Thread):
    def __init__(self, ledger: Ledger, submit: Submit, launcher: Launcher, remote: RemoteWorkloads,
                 lost_after_s: float, has_room: HasRoom, metrics_dir: Path) -> None:
        super().__init__(name="deployments", daemon=True)
        self._ledger = ledger
        self._submit = submit
        self._launcher = launcher
        self._remote = remote
        self._lost_after_s = lost_after_s
        self._has_room = has_room
        self._metrics_dir = metrics_dir
        self._woken = threading.Event()
        self._scale_states: dict[str, ScaleState] = {}  # autoscaled deployment id → its window and delays
        self._pool = ThreadPoolExecutor(PLACE_THREADS, thread_name_prefix="deployments")
        self._lock = threading.Lock()  # the maps below are shared with the pool's threads
        self._placing: dict[str, set[str]] = {}  # deployment id → ids of replicas whose placement is under way
        self._delayed: dict[str, list[tuple[float, Place]]] = {}  # deployment id → (due, placement) waiting
        self._refused_until: dict[str, float] = {}  # deployment id → no placement before (after a refusal)
        self._deleting: set[str] = set()  # replicas whose stop and delete are under way
        self._first_seen: dict[str, float] = {}  # replica id → monotonic
        self._healthy_since: dict[str, float] = {}
        self._lost_since: dict[str, float] = {}
        self._rollout_seen: dict[str, tuple[int, float]] = {}  # deployment id → (revision, monotonic)
        self._retired_since: dict[str, float] = {}  # retired replica id → when this process first saw it retired

    def run(self) -> None:
        while True:
            try:
                self.round()
            except Exception:
                log.exception("deployment round failed")
            self._woken.wait(ROUND_S)
            self._woken.clear()

    def wake(self) -> dict[str, bool]:
        """The next round now (a request is held for a deployment at zero replicas)."""
        self._woken.set()
        return {"woken": True}

    # -- a new deployment ------------------------------------------------------------------------

    def deploy(self, deployment: WorkloadRecord) -> WorkloadRecord:
        """Place a new deployment's replicas (in a scheduler pool thread). ``all-or-nothing``: the first
        refusal takes back what was placed, the deployment's record too, and is the answer; ``best-effort``
        runs what fits, and says so (the rounds place the rest)."""
        spec, placed = DeploymentSpec.of(deployment), []
        for number in range(spec.replicas):
            try:
                placed.append(self._place(deployment.id, spec.target, frozenset()))
            except DelegationUnknown:
                continue  # its pointer settles; the rounds count it meanwhile
            except CnetError as exc:
                if spec.placement == ALL_OR_NOTHING or not placed:
                    for replica in placed:
                        self._delete(replica)
                    self._ledger.remove(deployment.id)
                    exc.message = f"replica {number + 1} of {spec.replicas}: {exc.message}"
                    raise
                return self._ledger.update(deployment.id, _starting(
                    f"best-effort: {len(placed)} of {spec.replicas} replicas placed; {exc.message}"))
        return self._ledger.update(deployment.id, _starting(""))

    def _place(self, deployment_id: str, revision: int, avoid: frozenset[str],
               token: str | None = None) -> WorkloadRecord:
        """Reserve the next replica's number in the deployment's record, then submit that replica. A placement
        the rounds count as under way (``token`` in ``_placing``) is counted by its replica's id from then on,
        so that once its record exists it is counted once, as a member."""
        reserved: list[int] = []

        def take_number(record: WorkloadRecord) -> WorkloadRecord:
            spec = DeploymentSpec.of(record)
            reserved[:] = [spec.next_index]
            return dataclasses.replace(record, deployment={**spec.to_dict(), "next_index": spec.next_index + 1})
        deployment = self._ledger.update(deployment_id, take_number)
        replica = replica_record(deployment, reserved[0], revision)
        if token is None:
            return self._submit(replica, avoid)
        with self._lock:
            placing = self._placing.setdefault(deployment_id, set())
            placing.discard(token)
            placing.add(replica.id)
        try:
            return self._submit(replica, avoid)
        finally:
            with self._lock:  # done: its record, if it has one, counts it from now on
                placing.discard(replica.id)

    # -- rounds -----------------------------------------------------------------------------------

    def round(self) -> None:
        records = self._ledger.workloads(where=in_a_deployment)
        deployments = {record.id: record for record in records if record.deployment is not None}
        for record in records:  # a replica placed while its deployment was deleted is not kept
            if record.replica_of is not None and record.replica_of not in deployments and not record.retired:
                self._retire(record, "its deployment was deleted")
        views = self._observe([record for record in records if record.replica_of in deployments
                               and not record.retired])
        autoscaled = any(record.deployment.get("autoscale") for record in deployments.values())
        ongoing = ongoing_requests(self._metrics_dir) if autoscaled else {}
        for deployment in deployments.values():
            if deployment.status == Status.PENDING:  # its first placement is still under way
                continue
            with contextlib.suppress(NotFound):  # deleted meanwhile: its replicas are orphans next round
                self._keep(deployment, members_of(records, deployment.id), views, ongoing.get(deployment.id, 0.0))
        for gone in set(self._scale_states) - set(deployments):
            del self._scale_states[gone]
        self._release_delayed()
        # Drained by this process's monotonic clock: ``retired_at`` is the wall clock's, which a step back would
        # hold still for as long as the step (the replica keeping its resources meanwhile).
        now = time.monotonic()
        retired = self._ledger.workloads(where=lambda stored: stored.get("retired_at") is not None)
        self._retired_since = {record.id: self._retired_since.get(record.id, now) for record in retired}
        for record in retired:
            if now - self._retired_since[record.id] >= DRAIN_S:
                self._start_delete(record)

    def _observe(self, members: list[WorkloadRecord]) -> dict[str, dict[str, Any]]:
        """Each replica as it is now: a local one as its record says, a delegated one as its next hop says
        (copied into its pointer, which the balancer reads), ``lost`` when that node is offline."""
        remote = [member for member in members if member.remote and not member.settling]
        seen = dict(zip([member.id for member in remote], self._remote.views(remote)))
        views = {}
        now = time.monotonic()
        for member in members:
            view = seen.get(member.id) or {"status": member.status, "health_failures": member.health_failures,
                                           "node": member.node}
            if member.id in seen:
                self._follow(member, view)
            views[member.id] = view
            self._first_seen.setdefault(member.id, now)
            if in_rotation(view["status"], view.get("health_failures", 0), False):
                self._healthy_since.setdefault(member.id, now)
            else:
                self._healthy_since.pop(member.id, None)
            if view["status"] == Status.LOST:
                self._lost_since.setdefault(member.id, now)
            else:
                self._lost_since.pop(member.id, None)
        return views

    def _follow(self, member: WorkloadRecord, view: dict[str, Any]) -> None:
        """Keep a delegated replica's pointer as its node sees it (the balancer reads it from the ledger)."""
        if view["status"] == Status.LOST:
            return
        seen = {"status": view["status"], "health_failures": view.get("health_failures", 0),
                "endpoint": view.get("endpoint"), "node": view.get("node") or member.node,
                "restarts": view.get("restarts", 0)}
        if any(getattr(member, name) != value for name, value in seen.items()):
            self._ledger.update(member.id, lambda record: dataclasses.replace(record, **seen))

    def _keep(self, deployment: WorkloadRecord, members: list[WorkloadRecord], views: dict[str, dict[str, Any]],
              ongoing: float) -> None:
        spec = DeploymentSpec.of(deployment)
        active = [member for member in members if not member.retired]
        if spec.deleting:
            for member in active:
                self._retire(member, "its deployment is deleted")
            if not members:
                self._ledger.remove(deployment.id)
                log.info("deployment deleted", extra=workload_fields(deployment.id))
            return
        if deployment.desired == Desired.STOP:
            for member in active:
                if views[member.id]["status"] not in (Status.STOPPED, Status.FAILED, Status.COMPLETED):
                    self._stop(member)
            self._record_status(deployment.id, Status.STOPPED)
            return
        now = time.monotonic()
        seen_members = [self._member(member, views[member.id], now) for member in active]
        if spec.autoscale:
            spec = self._autoscale(deployment, spec, ongoing, any(member.healthy for member in seen_members))
        placing = self._pending_places(deployment.id, {member.id for member in members})
        actions = decide(spec, seen_members, placing, self._rollout_age(deployment.id, spec, now), self._lost_after_s,
                         _recent(spec))
        for action in actions:
            self._apply(deployment, action)
        retired = {action.member_id for action in actions if isinstance(action, Retire)}
        shown = [views[member.id] for member in active if member.id not in retired]
        self._record_status(deployment.id, deployment_status(spec.replicas, False, shown))

    def _autoscale(self, deployment: WorkloadRecord, spec: DeploymentSpec, ongoing: float,
                   serving: bool) -> DeploymentSpec:
        """This round's sample and, when the policy says so, a new count, recorded (with the signal shown, a
        resource limit lifted once a node has room, and how long a start from zero took)."""
        policy, state = spec.autoscale_policy, self._scale_states.setdefault(deployment.id, ScaleState())
        limited = spec.autoscale["limited"]
        if limited and self._has_room(replica_record(deployment, spec.next_index, spec.target)):
            limited = None
        decision = None if spec.rollout else decide_scale(policy, state, Sample(time.monotonic(), ongoing),
                                                          spec.replicas, limited and limited["replicas"])
        shown = {"signal": round(state.mean, 1), "limited": limited}
        if decision and spec.replicas == 0:
            state.from_zero_at = time.time()
        if serving and state.from_zero_at is not None:
            shown["cold_start_s"] = round(time.time() - state.from_zero_at, 3)
            state.from_zero_at = None
        if decision is None and all(spec.autoscale.get(name) == value for name, value in shown.items()):
            return spec
        if decision is not None:
            log.info("autoscale %d → %d: %s", spec.replicas, decision.to, decision.reason,
                     extra=workload_fields(deployment.id))
            AUTOSCALE_DECISIONS.labels("up" if decision.to > spec.replicas else "down").inc()
        return DeploymentSpec.of(self._ledger.update(deployment.id, autoscaled(shown, decision)))

    def _limited(self, deployment_id: str, reason: str) -> None:
        """No node had room for a replica an autoscaled deployment asked for: its count stays where resources
        allow (its replicas and those still being placed), and the reason is recorded until a node has room."""
        with self._lock:  # this placement is no longer among them
            placing = len(self._placing.get(deployment_id, set()))
        active = sum(not record.retired for record in self._ledger.workloads(
            where=lambda stored: stored.get("replica_of") == deployment_id))
        at = active + placing
        if DeploymentSpec.of(self._ledger.get(deployment_id)).autoscale is None:
            return

        def limit(record: WorkloadRecord) -> WorkloadRecord | None:
            if DeploymentSpec.of(record).replicas <= at:
                return None
            decision = ScaleDecision(at, f"resource-limited at {at}: {reason}")
            return autoscaled({"limited": {"at": time.time(), "replicas": at, "reason": reason}}, decision)(record)
        self._ledger.update(deployment_id, limit)
        AUTOSCALE_DECISIONS.labels("limited").inc()

    def _member(self, record: WorkloadRecord, view: dict[str, Any], now: float) -> Member:
        healthy_since, lost_since = self._healthy_since.get(record.id), self._lost_since.get(record.id)
        return Member(record.id, int(record.id.rsplit("-r", 1)[1]), record.revision or 1, view["status"],
                      in_rotation(view["status"], view.get("health_failures", 0), False),
                      view.get("node") or record.node or "", now - self._first_seen.get(record.id, now),
                      None if healthy_since is None else now - healthy_since,
                      0.0 if lost_since is None else now - lost_since)

    def _rollout_age(self, deployment_id: str, spec: DeploymentSpec, now: float) -> float:
        if not spec.rollout:
            self._rollout_seen.pop(deployment_id, None)
            return 0.0
        revision, since = self._rollout_seen.get(deployment_id, (None, now))
        if revision != spec.rollout["revision"]:
            since = now
        self._rollout_seen[deployment_id] = (spec.rollout["revision"], since)
        return now - since

    def _pending_places(self, deployment_id: str, recorded: set[str]) -> int:
        """Placements under way whose replica has no record yet (one that has is a member already), and
        those waiting out a reschedule's delay."""
        with self._lock:
            under_way = self._placing.get(deployment_id, set()) - recorded
            return len(under_way) + len(self._delayed.get(deployment_id, []))

    # -- actions ----------------------------------------------------------------------------------

    def _apply(self, deployment: WorkloadRecord, action: Any) -> None:
        if isinstance(action, Place):
            self._schedule_place(deployment.id, action)
        elif isinstance(action, Retire):
            record = self._ledger.get(action.member_id)
            self._retire(record, action.reason, action.reschedule)
        elif isinstance(action, SetRevision):
            self._set_revision(deployment.id, action)
        elif isinstance(action, Promote):
            log.info("rollout promoted: %s", action.reason, extra=workload_fields(deployment.id))
            self._ledger.update(deployment.id, _with_rollout(promoted=True))

    def _schedule_place(self, deployment_id: str, place: Place) -> None:
        now = time.monotonic()
        with self._lock:
            if place.after_s > 0:
                self._delayed.setdefault(deployment_id, []).append((now + place.after_s, dataclasses.replace(
                    place, after_s=0.0)))
                return
        if now < self._refused_until.get(deployment_id, 0.0):
            return
        token = f"placing-{uuid.uuid4().hex}"  # counted as under way from now on
        with self._lock:
            self._placing.setdefault(deployment_id, set()).add(token)
        self._pool.submit(self._placed_in_pool, deployment_id, place, token)

    def _placed_in_pool(self, deployment_id: str, place: Place, token: str) -> None:
        try:
            self._place(deployment_id, place.revision, place.avoid, token)
            REPLICA_EVENTS.labels("placed").inc()
        except DelegationUnknown:
            pass  # placed as far as anyone knows: its pointer settles
        except NotFound:
            pass  # the deployment was deleted meanwhile
        except CnetError as exc:
            log.warning("a replica could not be placed: %s", exc.message, extra=workload_fields(deployment_id))
            self._refused_until[deployment_id] = time.monotonic() + PLACE_RETRY_S
            with contextlib.suppress(NotFound):
                self._ledger.update(deployment_id, _with_message(f"a replica could not be placed: {exc.message}"))
                self._limited(deployment_id, exc.message)
        except Exception:
            log.exception("placing a replica failed", extra=workload_fields(deployment_id))
        finally:
            with self._lock:  # refused before its number was reserved
                self._placing.get(deployment_id, set()).discard(token)

    def _release_delayed(self) -> None:
        """Placements whose reschedule delay is over go out."""
        now = time.monotonic()
        with self._lock:
            due = {deployment_id: [place for at, place in waiting if at <= now]
                   for deployment_id, waiting in self._delayed.items()}
            self._delayed = {deployment_id: [(at, place) for at, place in waiting if at > now]
                             for deployment_id, waiting in self._delayed.items()}
        for deployment_id, places in due.items():
            for place in places:
                self._schedule_place(deployment_id, place)

    def _retire(self, member: WorkloadRecord, reason: str, reschedule: bool = False) -> None:
        """Take ``member`` out of the rotation (recorded first; stopped and deleted after the drain)."""
        log.info("replica %s: %s", member.id, reason, extra=workload_fields(member.replica_of or member.id))
        self._ledger.update(member.id, lambda record: None if record.retired else dataclasses.replace(
            record, retired_at=time.time(), retired_because=reason))
        REPLICA_EVENTS.labels("rescheduled" if reschedule else "retired").inc()
        if reschedule and member.replica_of:
            with contextlib.suppress(NotFound):
                self._ledger.update(member.replica_of, _rescheduled)

    def _set_revision(self, deployment_id: str, action: SetRevision) -> None:
        def change(record: WorkloadRecord) -> WorkloadRecord | None:
            spec = DeploymentSpec.of(record)
            state = action.state
            if state == SUPERSEDED and spec.rollout and spec.rollout.get("undo"):
                state = ROLLED_BACK  # an undo's previous revision is rolled back, not superseded
            current = spec.revision_of(action.revision, record)
            if (current.state, current.reason) == (state, action.reason) and not action.finish:
                return None
            spec = spec.with_revision_state(action.revision, state, action.reason)
            changed = dataclasses.replace(record)
            if action.activate:
                spec = dataclasses.replace(spec, revision=action.revision)
                chosen = spec.revision_of(action.revision, record)
                changed = dataclasses.replace(changed, config=chosen.config,
                                              requirements=type(record.requirements).from_dict(chosen.requirements))
            if action.finish:
                spec = dataclasses.replace(spec, rollout=None)
            return dataclasses.replace(changed, deployment=spec.to_dict(), message=action.reason)
        log.info("revision %d: %s%s", action.revision, action.state, f" ({action.reason})" if action.reason else "",
                 extra=workload_fields(deployment_id))
        self._ledger.update(deployment_id, change)

    def _stop(self, member: WorkloadRecord) -> None:
        if member.id in self._deleting:
            return
        if member.remote:
            self._pool.submit(self._quietly, lambda: self._remote.act(member, "POST", "/stop"))
        elif not member.terminal:
            stopping = self._ledger.update(member.id, desire(Desired.STOP))
            self._pool.submit(self._quietly, lambda: self._launcher.stop(stopping))

    def _start_delete(self, member: WorkloadRecord) -> None:
        with self._lock:
            if member.id in self._deleting:
                return
            self._deleting.add(member.id)

        def delete() -> None:
            try:
                self._delete(member)
            finally:
                with self._lock:
                    self._deleting.discard(member.id)
        self._pool.submit(self._quietly, delete)

    def _delete(self, member: WorkloadRecord) -> None:
        """Stop and delete a replica wherever it runs; one on an offline node waits for it (asked again
        every round, so it never runs twice once its node is back)."""
        if member.remote:
            status, _ = self._remote.act(member, "DELETE")
            if status not in (200, 404):
                return
            self._remote.forget(member.id)
            with contextlib.suppress(NotFound):
                self._ledger.remove(member.id)
        else:
            self._launcher.delete(member)
        log.info("replica %s deleted", member.id, extra=workload_fields(member.replica_of or member.id))

    @staticmethod
    def _quietly(work: Callable[[], Any]) -> None:
        try:
            work()
        except CnetError as exc:  # a node offline: asked again next round
            log.info("%s", exc.message)
        except Exception:
            log.exception("a replica's stop or delete failed")

    def _record_status(self, deployment_id: str, status: str) -> None:
        self._ledger.update(deployment_id, lambda record: None if record.status == status
                            else dataclasses.replace(record, status=status))


def _recent(spec: DeploymentSpec) -> int:
    """Reschedules within the policy's interval."""
    since = time.time() - spec.reschedule_policy.interval_s
    return sum(at >= since for at in spec.rescheduled_at)


def _starting(message: str) -> Callable[[WorkloadRecord], WorkloadRecord]:
    return lambda record: dataclasses.replace(record, status=Status.STARTING, message=message)


def _with_message(message: str) -> Callable[[WorkloadRecord], WorkloadRecord | None]:
    return lambda record: None if record.message == message else dataclasses.replace(record, message=message)


def _with_rollout(**fields: Any) -> Callable[[WorkloadRecord], WorkloadRecord | None]:
    def change(record: WorkloadRecord) -> WorkloadRecord | None:
        spec = DeploymentSpec.of(record)
        if not spec.rollout:
            return None
        return dataclasses.replace(record, deployment={**spec.to_dict(), "rollout": {**spec.rollout, **fields}})
    return change


def _rescheduled(record: WorkloadRecord) -> WorkloadRecord:
    spec = DeploymentSpec.of(record)
    interval = spec.reschedule_policy.interval_s
    recent = [at for at in spec.rescheduled_at if at >= time.time() - interval]
    return dataclasses.replace(record, deployment={**spec.to_dict(), "reschedules": spec.reschedules + 1,
                                                   "rescheduled_at": [*recent, time.time()]})

