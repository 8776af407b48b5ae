"""The scheduler's requests: every placement decision is made here, one request at a time, and recorded.

It serves the API's requests on an ipc:// ROUTER socket, in one thread, so decisions are serial; the
ledger's atomic admit is the guard against over-allocation. That thread never waits: what is slow (a
model's fetch, hash and check, an engine's answer, a program's start or stop, a forward to a neighbour)
runs in the server's pool threads after the decision is recorded (``cnetd.scheduler.launching``,
``cnetd.scheduler.delegation``), and the request is answered when it is done.

A submission is planned (``cnetd.scheduler.placement``: feasibility, fit, rank over this node and its
online neighbours), then tried in the plan's order: here (admitted, then prepared and started), or
delegated to a run of neighbours; a node that refuses passes the submission to the next, and when every
one has refused, the answer names each node considered and why.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from cnetd.common.errors import (CnetError, Conflict, DataNotStoppable, DelegationRefused, Invalid, NodeStopping, NotFound,
                                 Unavailable, Unprocessable)
from cnetd.common.httpclient import node_headers
from cnetd.common.logs import workload_fields
from cnetd.common.paths import WORKLOAD_GROUP, program_name
from cnetd.core.channel import DELEGATION_BUDGET_S, submit_timeout_s
from cnetd.core.deployment_spec import SPREAD_NODE, AutoscalePolicy, DeploymentSpec, replica_count, replica_prefix
from cnetd.core.deployment_state import members_of
from cnetd.core.lifecycle import desire, mark_deleting, needs_a_program_here, without_its_program
from cnetd.core.counters import DELEGATIONS
from cnetd.core.node_process import NodeProcess
from cnetd.core.remote import RemoteWorkloads
from cnetd.core.submission import constraint_labels
from cnetd.core.supervisor_rpc import Supervisor
from cnetd.scheduler.delegation import SETTLE_INTERVAL_S, Delegator, Outcome, Target, pending_error
from cnetd.scheduler.history import HistorySweep
from cnetd.scheduler.launching import Launcher
from cnetd.scheduler.models.deploy import ModelDeployments
from cnetd.scheduler.models.store import ModelStore
from cnetd.scheduler.revisions import Revisions
from cnetd.scheduler.placement import Candidate, Need, Placement, Plan, plan
from cnetd.scheduler.streams import bind_detector
from cnetd.scheduler.refusals import Refusal, refusal_error, refusal_of
from cnetd.scheduler.deployments.autoscaling import ScaleDecision, autoscaled
from cnetd.scheduler.deployments.controller import DeploymentController
from cnetd.scheduler.orphans import OrphanWatch
from cnetd.core.upload_files import abandoned, data_users, names_data, remove_upload_files
from ledger.catalog import Catalog
from ledger import boot_clock
from ledger.nodetable import Role
from ledger.records import TERMINAL_STATUSES, Desired, Resources, Status, Usage, WorkloadRecord
from mesh.messages import HEARTBEAT_LIVENESS
from mesh.rpc import Deferred, RpcServer, request
from workers.registry import executor_for

log = logging.getLogger("scheduler")
FENCE_KEPT_S = 3600.0  # a forward this old that still arrives is refused by its fence; older, it is long gone
FENCE_PRUNE_INTERVAL_S = 60.0
ORPHAN_MARGIN_S = 60.0  # beyond health.start_timeout_s: how long the API may take between a detector and its stream


@dataclasses.dataclass
class Attempt:
    """One submission being tried along its plan: what is left to try, and who refused so far."""

    record: WorkloadRecord  # as submitted (its config unchanged by any node's checks)
    ranked: list[Placement]
    visited: list[str]
    attempt: str | None  # the forward that brought it here, if one did
    budget_s: float
    refusals: list[Refusal]
    available_here: Resources


class Scheduler:
    def __init__(self, node: NodeProcess, supervisor: Supervisor) -> None:
        self._node = node
        self._ledger = node.ledger
        self._paths = node.config.paths
        self._context = node.config.workload_context
        self._delegator = Delegator(node.ledger, node.config.node_id, node_headers(node.config.auth_token))
        self._settling: set[str] = set()  # pointers whose settling is under way in a pool thread
        self._settling_lock = threading.Lock()
        self._next_prune = 0.0  # monotonic time of the next sweep of old fences
        self._orphans = OrphanWatch(node.config.health_start_timeout_s + ORPHAN_MARGIN_S)
        self._preparing: set[str] = set()  # admitted here, being prepared in a pool thread (serial thread only)
        self._server = RpcServer(node.config.paths.scheduler_endpoint, self.handlers)
        config = node.config
        self._models = ModelStore(node.ledger, config.data_path, config.db_path, config.models_cache_bytes,
                                  config.workloads_user)
        self._deployments = ModelDeployments(self._models, config.api_url, config.auth_token,
                                             node_headers(config.auth_token), self._neighbour_urls, config.models_s3)
        self._launcher = Launcher(node.ledger, supervisor, self._context, self._deployments, self._models.undo_fetch)
        self._supervisor = supervisor
        remote = self._remote = RemoteWorkloads(node.nodes, config.heartbeat_period_s, config.auth_token)
        self._deployments_controller = DeploymentController(node.ledger, self._submit_replica, self._launcher, remote,
                                                            config.replicas_lost_after_s, self._has_room,
                                                            config.paths.metrics_dir)
        self._revisions = Revisions(node.ledger, self._context, self._deployments)
        self._history = HistorySweep(config.workloads_keep_finished, self._launcher.delete_finished,
                                     self._server.submit_background)

    def serve(self) -> None:
        """Settle what the last run left, then answer requests and settle unknown forwards, forever (and keep
        deployments at their count of replicas, in the controller's thread). A node stopping before that is
        settled ends the process quietly: the records are as they were, for the node's next run."""
        try:
            self.reconcile()
        except NodeStopping as exc:
            log.info("%s; what the last run left is settled at the next", exc.message)
            return
        self._deployments_controller.start()
        self._server.run(self.settle_unknown, SETTLE_INTERVAL_S)

    @property
    def handlers(self) -> dict[str, Any]:
        return {"submit": self.submit, "confirm": self.confirm, "forget": self.forget, "reserve": self.reserve,
                "data_stored": self.data_stored, "stop": self.stop, "delete": self.delete,
                "delete_data": self.delete_data, "evict_model": self.evict_model, "scale": self.scale,
                "autoscale": self.autoscale,
                "wake_deployments": lambda args: self._deployments_controller.wake(),
                "delete_deployment": self.delete_deployment,
                "revise": lambda args: self._revisions.revise(args["id"], args["change"]),
                "promote": lambda args: self._revisions.promote(args["id"]),
                "rollback": lambda args: self._revisions.rollback(args["id"])}

    # -- submissions ----------------------------------------------------------------------------

    def submit(self, args: dict[str, Any]) -> Any:
        """Run a workload here or delegate it: ``{"placed": record}`` (a pointer when delegated, with the
        target's ``answer``), or the error that says why not, naming every node considered.

        ``visited`` lists the nodes the submission came through; ``attempt`` names the forward that
        brought it (settled forwards are fenced off); ``budget_s`` is what the sender leaves for onward
        delegation.
        """
        record = WorkloadRecord.from_dict(args["workload"])
        if self._ledger.fenced(record.id, args.get("attempt")):
            raise DelegationRefused(f"this forward of workload {record.id} was already settled as not arrived",
                                    visited=args.get("visited", []))
        try:
            existing = self._ledger.get(record.id)  # a retried submission runs nothing twice
        except NotFound:
            pass
        else:
            if existing.settling:
                raise pending_error(existing)
            if existing.fingerprint and existing.fingerprint != record.fingerprint:
                raise Conflict(f"workload id {record.id} is taken by a different submission; retry with the "
                               "same one, or choose another id")
            return {"placed": existing.to_dict()}
        visited, node_id = list(args.get("visited", [])), self._node.config.node_id
        if node_id in visited:
            raise DelegationRefused(f"delegation loop: {node_id} was already visited ({' → '.join(visited)})",
                                    visited=visited)
        if len(visited) > self._node.config.max_hops:
            raise DelegationRefused(f"delegation exceeded {self._node.config.max_hops} hops ({' → '.join(visited)})",
                                    visited=visited)
        if not visited:
            record = bind_detector(record, self._ledger, self._node.config)
        if record.deployment is not None:
            if visited:
                raise Unprocessable("a deployment is not forwarded (its replicas are): submit it where it is to be "
                                    "kept")
            spec = DeploymentSpec.of(record)
            self._check_replicas(spec.autoscale_policy.max_replicas if spec.autoscale else spec.replicas)
            return self._deploy(record)
        usage = self._ledger.usage()
        placements = self._plan(record, usage, exclude=set(visited), avoid=set(args.get("avoid", ())))
        budget_s = min(DELEGATION_BUDGET_S, args.get("budget_s") or DELEGATION_BUDGET_S)
        return self._try(Attempt(record, placements.ranked, visited, args.get("attempt"), budget_s,
                                 list(placements.passed_over), usage.available))

    def _plan(self, record: WorkloadRecord, usage: Usage, exclude: set[str], avoid: set[str]) -> Plan:
        need = Need(record.requirements, executor_for(record.type).feature(record.config), constraint_labels(record))
        candidates = self._candidates(record, usage.available, usage.capacity, exclude=exclude, avoid=avoid)
        return plan(need, candidates, self._node.config.strategy)

    def _has_room(self, replica: WorkloadRecord) -> bool:
        """Whether some node would take ``replica`` now, as its heartbeats say (asked by the controller before
        it tries again a count no node had room for)."""
        return bool(self._plan(replica, self._ledger.usage(), set(), set()).ranked)

    def _try(self, attempt: Attempt) -> Any:
        """Try the next node of the plan: here, or the neighbours that come next in it, in one forward."""
        if not attempt.ranked:
            DELEGATIONS.labels("no_node_fits").inc()
            raise self._refusal(attempt)
        if attempt.ranked[0].local:
            return self._try_here(attempt)
        targets = []
        while attempt.ranked and not attempt.ranked[0].local:
            targets.append(attempt.ranked.pop(0))
        return self._delegate(attempt, targets)

    def _refusal(self, attempt: Attempt) -> CnetError:
        return refusal_error(attempt.refusals, attempt.record.requirements, attempt.available_here)

    def _try_here(self, attempt: Attempt) -> Any:
        """Admit it here (its resources held from now on), then prepare and start it in a pool thread; a refusal
        here passes it to the plan's next nodes."""
        placement, record = attempt.ranked.pop(0), attempt.record
        try:
            admitted = self._ledger.admit(dataclasses.replace(
                record, status=Status.STARTING, node=placement.node_id, placement=placement.to_dict(),
                program=f"{WORKLOAD_GROUP}:{program_name(record.id)}"))
        except CnetError as exc:  # its room went to another submission since the plan was made
            attempt.refusals.append(refusal_of(placement.node_id, exc))
            return self._try(attempt)

        self._preparing.add(record.id)

        def started(outcome: WorkloadRecord | Exception) -> Any:
            self._preparing.discard(record.id)
            if isinstance(outcome, WorkloadRecord):
                return {"placed": outcome.to_dict()}
            final = not isinstance(outcome, CnetError) or isinstance(outcome, Invalid)  # a bug, or wrong everywhere
            self._let_go(record.id, attempt, final)
            alone = not attempt.ranked and not attempt.refusals  # this node was the only one considered
            if final or alone and outcome.code != Unavailable.code:
                raise outcome  # a bug (a logged 500), a shape wrong everywhere, or this node's own refusal
            # What this node needs did not answer (503): that goes as a refusal, whose list tells a node that
            # forwarded it that nothing runs here (a plain 503 leaves the outcome unknown there).
            attempt.refusals.append(refusal_of(placement.node_id, outcome))
            log.info("refused here (%s): trying %s", outcome.message,
                     ", ".join(next_one.node_id for next_one in attempt.ranked) or "no other node",
                     extra=workload_fields(record.id))
            return self._try(attempt)
        return Deferred(lambda: _caught(lambda: self._launcher.prepare_and_start(admitted, record.config)), started)

    def _let_go(self, workload_id: str, attempt: Attempt, final: bool = False) -> None:
        """A submission refused here or by the neighbours it went to: its record (or pointer) goes, and its
        allocation with it. Removed on the serial thread, in the turn that decides what comes next and records
        that, since a sender's settling is answered on this thread too: it never finds the submission absent while
        it is passed on. Refused for good (``final``, or nothing left to try), the forward that brought it is
        fenced off in the same commit."""
        if attempt.attempt is not None and (final or not attempt.ranked):
            self._ledger.remove_and_fence(workload_id, attempt.attempt, boot_clock.now())
        else:
            with contextlib.suppress(NotFound):
                self._ledger.remove(workload_id)

    def _delegate(self, attempt: Attempt, placements: list[Placement]) -> Deferred:
        """Forward to ``placements`` in order (a pointer recorded first); what they all refuse goes on along
        the plan."""
        record = attempt.record
        urls = {neighbour.node_id: neighbour.api_url for neighbour in self._node.nodes.all()}
        targets = [Target(placement.node_id, urls[placement.node_id], placement.to_dict()) for placement in placements]
        log.info("%s %s goes to %s", record.type, record.name, ", ".join(target.node_id for target in targets),
                 extra=workload_fields(record.id))
        # Record, then act: the pointer exists before the forward leaves, so a crash leaves it to settle.
        pointer = self._ledger.record_holding_nothing(dataclasses.replace(
            record, status=Status.DELEGATING, node=targets[0].node_id, placement=targets[0].placement,
            delegated_to=targets[0].node_id, remote_api=targets[0].api_url, delegation_attempt=uuid.uuid4().hex))
        started_at = time.monotonic()

        def forward() -> Outcome:
            if not executor_for(record.type).serves_a_model:
                return self._delegator.forward(pointer, targets, attempt.visited, attempt.budget_s)
            # A model here or carried goes by hash and link, kept here until the forward is answered.
            forwarded = self._deployments.forwarded(record.config, record.id)
            try:
                sent = self._ledger.update(pointer.id, lambda stored: dataclasses.replace(stored,
                                                                                         config=forwarded.config))
                outcome = self._delegator.forward(sent, targets, attempt.visited, attempt.budget_s)
            finally:
                self._deployments.let_go(record.id)
            if outcome.answer is not None or outcome.unknown is not None:
                return outcome
            if forwarded.carried is not None:  # no node took it
                self._models.undo_fetch(forwarded.carried, CnetError("every node it was forwarded to refused it"),
                                        record.id)  # its pointer, not yet removed, names the model
            if isinstance(forwarded.not_carried, Unavailable):  # the neighbour that may hold it may answer later
                here = refusal_of(self._node.config.node_id, forwarded.not_carried)
                return dataclasses.replace(outcome, refusals=[*outcome.refusals, here])
            return outcome

        def then(outcome: Outcome) -> Any:
            if outcome.answer is not None:
                return {"placed": outcome.pointer.to_dict(), "answer": outcome.answer}
            if outcome.unknown is not None:
                raise pending_error(self._ledger.get(record.id))
            attempt.refusals.extend(refusal for refusal in outcome.refusals if refusal not in attempt.refusals)
            self._let_go(record.id, attempt)
            attempt.budget_s = max(0.0, attempt.budget_s - (time.monotonic() - started_at))
            if attempt.ranked:
                DELEGATIONS.labels("fell_back_local").inc()  # another strategy ranked neighbours first
            return self._try(attempt)
        return Deferred(forward, then)

    def _candidates(self, record: WorkloadRecord, available: Resources, capacity: Resources,
                    exclude: set[str], avoid: set[str]) -> list[Candidate]:
        """This node, then its online children, then online peers, as their heartbeats describe their subtrees;
        a node that holds another replica of the same deployment is marked (the spread rule), and so is one
        a replacement is to avoid (where the replica it replaces failed)."""
        capabilities = self._ledger.capabilities()
        siblings = self._nodes_with_replicas(record) | avoid
        candidates = [Candidate(self._node.config.node_id, available, capacity, local=True,
                                features=_features(capabilities.get("features")),
                                labels={name: frozenset([value]) for name, value in capabilities.get("labels", {}).items()},
                                holds_sibling=self._node.config.node_id in siblings,
                                lacks=capabilities.get("lacks", {}))]
        period_s = self._node.config.heartbeat_period_s
        online = [neighbour for neighbour in self._node.nodes.all()
                  if neighbour.role in (Role.CHILD, Role.PEER) and neighbour.heartbeat and not neighbour.incompatible
                  and neighbour.node_id not in exclude and neighbour.online(period_s, HEARTBEAT_LIVENESS)]
        online.sort(key=lambda neighbour: neighbour.role != Role.CHILD)
        for neighbour in online:
            subtree = neighbour.heartbeat["subtree"]
            labels = subtree.get("labels")
            candidates.append(Candidate(
                neighbour.node_id, Resources.from_dict(subtree["available_max"]), Resources.from_dict(subtree["capacity"]),
                features=_features(subtree.get("features")),
                labels=None if labels is None else {name: frozenset(values) for name, values in labels.items()},
                holds_sibling=neighbour.node_id in siblings))
        return candidates

    def _nodes_with_replicas(self, record: WorkloadRecord) -> set[str]:
        """Where the other replicas of ``record``'s deployment and revision run (or are delegated to), when it
        spreads by node: a rollout's new replicas spread among themselves, beside the old ones they replace."""
        if record.replica_of is None:
            return set()
        with contextlib.suppress(NotFound):
            if DeploymentSpec.of(self._ledger.get(record.replica_of)).spread == SPREAD_NODE:
                members = members_of(self._ledger.workloads(replica_prefix(record.replica_of)), record.replica_of)
                return {node for member in members
                        if not member.retired and not member.terminal and member.id != record.id
                        and (member.revision or 1) == (record.revision or 1)
                        for node in (member.node, member.delegated_to) if node}
        return set()

    # -- deployments ----------------------------------------------------------------------------

    def _deploy(self, record: WorkloadRecord) -> Deferred:
        """Record the deployment (it holds nothing), then place its replicas in a pool thread: they come
        back through this scheduler's own socket, one submission each."""
        deployment = self._ledger.record_holding_nothing(dataclasses.replace(
            record, status=Status.PENDING, node=self._node.config.node_id))
        return Deferred(lambda: self._deployments_controller.deploy(deployment),
                        lambda placed: {"placed": placed.to_dict()})

    def _submit_replica(self, replica: WorkloadRecord, avoid: frozenset[str]) -> WorkloadRecord:
        """A replica goes through this serial thread's placement as any submission (its controller's thread
        asks over the scheduler's own socket); ``avoid``: nodes ranked last (where its predecessor failed)."""
        placed = request(self._paths.scheduler_endpoint, "submit",
                         {"workload": replica.to_dict(), "avoid": sorted(avoid)},
                         submit_timeout_s(self._node.config.health_start_timeout_s))
        return WorkloadRecord.from_dict(placed["placed"])

    def scale(self, args: dict[str, Any]) -> dict[str, Any]:
        """A deployment's count of replicas changes; the controller adds or drains replicas to match."""
        record, replicas = self._ledger.get(args["id"]), replica_count(args["replicas"])
        if record.deployment is None:
            raise Conflict(f"workload {record.id} is not a deployment of replicas (submit it with \"replicas\" "
                           "to scale it)")
        if record.desired == Desired.STOP:
            raise Conflict(f"deployment {record.id} is stopped")
        policy = DeploymentSpec.of(record).autoscale_policy
        if policy is not None:
            raise Conflict(f"deployment {record.id} is autoscaled ({policy.min_replicas} to {policy.max_replicas} "
                           'replicas): change its bounds with PATCH {"autoscale": {"min_replicas": N, '
                           '"max_replicas": M}}')
        self._check_replicas(replicas)
        return self._ledger.update(record.id, lambda current: dataclasses.replace(
            current, deployment={**DeploymentSpec.of(current).to_dict(), "replicas": replicas})).to_dict()

    def autoscale(self, args: dict[str, Any]) -> dict[str, Any]:
        """An autoscaled deployment's policy changes (the keys given; the others kept); its count is brought
        within the new bounds at once, and a resource limit is forgotten (the next decisions try again)."""
        record = self._ledger.get(args["id"])
        if record.deployment is None or DeploymentSpec.of(record).autoscale is None:
            raise Conflict(f"workload {record.id} is not an autoscaled deployment (submit it with \"autoscale\"; "
                           'a deployment of a fixed count scales with PATCH {"replicas": N})')
        if record.desired == Desired.STOP:
            raise Conflict(f"deployment {record.id} is stopped")
        policy = AutoscalePolicy.parse(args["autoscale"], DeploymentSpec.of(record).autoscale_policy)
        self._check_replicas(policy.max_replicas)

        def change(current: WorkloadRecord) -> WorkloadRecord:
            replicas = DeploymentSpec.of(current).replicas
            within = min(policy.max_replicas, max(policy.min_replicas, replicas))
            clamped = None if within == replicas else ScaleDecision(
                within, f"bounds changed to {policy.min_replicas}–{policy.max_replicas}")
            return autoscaled({"policy": policy.to_dict(), "limited": None}, clamped)(current)
        return self._ledger.update(record.id, change).to_dict()

    def delete_deployment(self, args: dict[str, Any]) -> dict[str, Any]:
        """Record that a deployment goes: its controller stops and deletes its replicas, then its record."""
        record = self._ledger.get(args["id"])
        if record.deployment is None:
            raise Conflict(f"workload {record.id} is not a deployment")
        return self._ledger.update(record.id, lambda current: dataclasses.replace(
            current, desired=Desired.STOP, deployment={**DeploymentSpec.of(current).to_dict(), "deleting": True}
        )).to_dict()

    def _check_replicas(self, replicas: int) -> None:
        if replicas > self._node.config.replicas_max:
            raise Unprocessable(f"replicas: this node keeps deployments of at most {self._node.config.replicas_max} "
                                "replicas (replicas.max)")

    # -- delegation's other half ----------------------------------------------------------------

    def confirm(self, args: dict[str, Any]) -> dict[str, Any]:
        """A delegating node settles its forward ``attempt`` of workload ``id``: the record, ``pending``
        while this node prepares it or settles its own onward forward, or ``absent`` (the attempt is now
        fenced off)."""
        record = self._ledger.confirm_or_fence(args["id"], args["attempt"], boot_clock.now())
        if record is None:
            return {"absent": True}
        # Still being prepared here (its model fetched, say): its outcome is not known yet either.
        return {"pending": True} if record.settling or record.id in self._preparing else {"placed": record.to_dict()}

    def settle_unknown(self) -> None:
        """Each round: settle (in pool threads) every pointer whose forward has no known outcome, and delete what
        was deployed with a workload that is gone (``orphans``), undo uploads whose receiving API died, and
        delete the finished workloads beyond those the node keeps (``history``)."""
        records = self._ledger.workloads(where=acted_on_in_a_round)
        self._history(records)
        for record in self._orphans.orphans(records, self._ledger.ids(), time.monotonic()):
            self._delete_orphan(record)
        for record in abandoned(records):
            log.info("undoing upload %s: the API process receiving it is gone", record.id,
                     extra=workload_fields(record.id))
            self._remove_data(record.id)
        for record in records:
            if record.status != Status.UNKNOWN:
                continue
            with self._settling_lock:
                if record.id in self._settling:
                    continue
                self._settling.add(record.id)
            self._server.submit_background(lambda record=record: self._settle(record))
        if time.monotonic() >= self._next_prune:
            self._ledger.prune_fences(boot_clock.now(), FENCE_KEPT_S)
            self._next_prune = time.monotonic() + FENCE_PRUNE_INTERVAL_S

    @functools.cached_property
    def _catalog(self) -> Catalog:
        """The data catalog, for data being deleted and what an abandoned upload catalogued: opened when needed."""
        return Catalog(self._node.config.db_path)

    def _delete_orphan(self, record: WorkloadRecord) -> None:
        log.info("deleting %s: %s, which it was deployed with, is gone", record.id, record.owned_by,
                 extra=workload_fields(record.id))
        if record.deployment is not None:
            self.delete_deployment({"id": record.id})
            return
        if not record.remote:
            self._server.submit_background(lambda: self._launcher.delete(record))
        else:  # its next hop deletes it, then it is forgotten here (tried each round)
            with self._settling_lock:
                if record.id in self._settling:
                    return
                self._settling.add(record.id)
            self._server.submit_background(lambda: self._forget_when_deleted_there(record))

    def _forget_when_deleted_there(self, record: WorkloadRecord) -> None:
        try:
            if self._remote.act(record, "DELETE")[0] in (200, 404):
                self._ledger.remove(record.id)
        except CnetError:
            pass  # its next hop is offline: next round
        finally:
            with self._settling_lock:
                self._settling.discard(record.id)

    def _settle(self, record: WorkloadRecord) -> None:
        try:
            self._delegator.settle(record)
        finally:
            with self._settling_lock:
                self._settling.discard(record.id)

    def forget(self, args: dict[str, Any]) -> dict[str, Any]:
        self._ledger.remove(args["id"])
        return {"id": args["id"], "deleted": True}

    # -- data -----------------------------------------------------------------------------------

    def reserve(self, args: dict[str, Any]) -> dict[str, Any]:
        """Hold resources for a record that runs no program (an upload in progress): admit it as it is."""
        return self._ledger.admit(WorkloadRecord.from_dict(args["workload"])).to_dict()

    def data_stored(self, args: dict[str, Any]) -> dict[str, Any]:
        """An upload finished: keep its record, holding exactly the storage its bytes use."""
        def stored(record: WorkloadRecord) -> WorkloadRecord:
            return dataclasses.replace(record, status=Status.STORED, name=args["name"], config=args["config"],
                                       started_at=time.time())
        return self._ledger.resize(args["id"], stored, Resources(storage=args["storage"])).to_dict()

    def delete_data(self, args: dict[str, Any]) -> Deferred:
        """Data deleted by its owner: a Conflict while a workload here names a file of it (``data_users``). Else
        its delete is recorded and its catalogue row goes at once (no submission decided after this finds it
        here); its files, the records of unused models that lay in them, and its record with the storage it
        held go in a pool thread (``_remove_data``)."""
        data_key = args["id"]
        naming = self._ledger.workloads(where=lambda stored: names_data(stored["config"], data_key))
        users = data_users(naming, data_key)
        if users:
            raise Conflict(f"data {data_key} is used by {', '.join(users)}: delete those first", users=users)
        with contextlib.suppress(NotFound):  # catalogued with no record: its upload's reservation is gone
            self._ledger.update(data_key, mark_deleting)
        self._catalog.remove(data_key)
        return Deferred(lambda: self._remove_data(data_key), lambda _: {"id": data_key, "deleted": True})

    def _remove_data(self, data_key: str) -> None:
        """What a data delete recorded is carried out (again, by ``reconcile``, when the scheduler ended), or an
        abandoned upload undone."""
        data_root = Path(self._node.config.data_path)
        remove_upload_files(data_root, data_key, self._catalog)
        self._models.forget_unused_in(str(data_root / data_key))
        with contextlib.suppress(NotFound):  # a delete that ran twice
            self._ledger.remove(data_key)

    def evict_model(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._models.evict(args["sha256"])

    def _neighbour_urls(self) -> list[str]:
        return [neighbour.api_url for neighbour in self._node.nodes.all() if neighbour.api_url]

    # -- stop and delete ------------------------------------------------------------------------

    def stop(self, args: dict[str, Any]) -> Any:
        """Record the stop, then stop its program in a pool thread (supervisord waits for it to end)."""
        record = self._ledger.get(args["id"])
        if record.deployment is not None:  # its replicas are stopped one by one (by the API, then its controller)
            return self._ledger.update(record.id, lambda current: None if current.desired == Desired.STOP
                                       else dataclasses.replace(current, desired=Desired.STOP,
                                                                status=Status.STOPPED)).to_dict()
        if record.type == "data":
            raise DataNotStoppable(f"workload {record.id} is data: it is deleted (DELETE), not stopped")
        if record.terminal:
            if not record.program:
                return record.to_dict()
            # whatever an operator may have started by hand
            return Deferred(lambda: self._launcher.stop_program(record.program), lambda _: record.to_dict())
        record = self._ledger.update(record.id, desire(Desired.STOP))
        return Deferred(lambda: self._launcher.stop(record), lambda stopped: stopped.to_dict())

    def delete(self, args: dict[str, Any]) -> Any:
        """Record the stop, then stop and remove everything of it in a pool thread."""
        record = self._ledger.get(args["id"])
        if record.type == "data":
            raise DataNotStoppable(f"workload {record.id} is data: its upload is deleted through the API")
        record = self._ledger.update(record.id, mark_deleting)
        return Deferred(lambda: self._launcher.delete(record), lambda deleted: deleted)

    # -- start ----------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """After a restart of the scheduler or the whole node: launch (in pool threads) what should run but has
        no program, and stop what was to stop but still runs (its stop recorded, the scheduler ended before it was
        carried out), and finish the deletes it was carrying out; a forward that was under way when the scheduler
        ended has no known outcome."""
        self._models.settle()
        programs = self._supervisor.workload_infos()
        for record in self._ledger.workloads():
            if record.deleting:
                self._server.submit_background(lambda record=record: self._remove_data(record.id)
                                               if record.type == "data" else self._launcher.delete(record))
                continue
            if record.deployment is not None and record.status == Status.PENDING:  # its controller places the rest
                self._ledger.update(record.id, lambda current: dataclasses.replace(current, status=Status.STARTING))
                continue
            if record.status == Status.DELEGATING:
                self._ledger.update(record.id, lambda pointer: dataclasses.replace(
                    pointer, status=Status.UNKNOWN, message="the scheduler ended during its forward; settling it"))
                continue
            if not needs_a_program_here(record):
                continue
            if record.program in programs:
                if record.desired == Desired.STOP:  # its stop was recorded, and the scheduler ended before it stopped
                    self._server.submit_background(lambda record=record: self._launcher.stop(record))
                continue
            # Recorded first (after a whole node's restart, by its launcher already): it runs nowhere now.
            record = self._ledger.update(record.id, without_its_program)
            if not record.terminal:
                self._server.submit_background(lambda record=record: self._launcher.relaunch(record))


def acted_on_in_a_round(stored: dict[str, Any]) -> bool:
    """Whether ``settle_unknown`` may act on a record (its stored JSON): a finished workload (its history), one
    deployed with another (an orphan once that one is gone), an upload in progress (abandoned once its API is
    gone), a pointer whose forward has no known outcome. The rest, running workloads above all, are not made:
    with 1,000 running, a round made every one of them each second on the serial thread."""
    return (stored["status"] in TERMINAL_STATUSES or stored.get("owned_by") is not None
            or stored["status"] in (Status.UPLOADING, Status.UNKNOWN))


def _caught(work: Any) -> Any:
    """``work()``'s result, or what it raised (handed to a continuation that decides what next)."""
    try:
        return work()
    except Exception as exc:
        return exc


def _features(names: list[str] | None) -> frozenset[str] | None:
    return None if names is None else frozenset(names)
