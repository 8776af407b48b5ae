"""The scheduler process: places, allocates and launches workloads; delegates them; stops and deletes them.

It serves the API's requests one at a time on an ipc:// ROUTER socket, so every placement decision is
made in one place; the ledger's atomic admit is the guard against over-allocation. It owns delegation
whole (``cnetd.scheduler.delegation``): it decides, records the pointer, forwards in a pool thread (so two
schedulers delegating to each other never wait on each other) and settles forwards with no known
outcome, every round of its loop.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import threading
import time
import uuid
from typing import Any

from cnetd.core.channel import DELEGATION_BUDGET_S, submit_timeout_s
from cnetd.scheduler.delegation import (SETTLE_INTERVAL_S, Delegator, Outcome, Target, pending_error,
                                       refusal_error)
from cnetd.common.errors import (CnetError, Conflict, DataNotStoppable, DelegationRefused, InsufficientResources,
                                 NotFound, Unprocessable)
from cnetd.common.httpclient import auth_headers
from cnetd.common.logs import workload_fields
from cnetd.core.metrics import DELEGATIONS
from cnetd.scheduler.models.deploy import ModelDeployments
from cnetd.scheduler.models.store import Artifact, ModelStore
from cnetd.core.node_process import NodeProcess
from cnetd.common.paths import WORKLOAD_GROUP, program_name
from cnetd.scheduler.placement import Candidate, Placement, rank
from cnetd.common.private_files import make_workload_dir, write_workload_file
from cnetd.scheduler.replicas import ReplicaController
from cnetd.core.deployment_spec import SPREAD_NODE, DeploymentSpec, replica_count, replica_prefix
from cnetd.core.deployment_state import members_of
from cnetd.core.supervisor_rpc import Supervisor, environment_file, workload_environment, workload_program_options
from ledger.nodetable import Role
from ledger.records import Desired, Resources, Status, WorkloadRecord
from mesh.messages import HEARTBEAT_LIVENESS
from mesh.rpc import Deferred, RpcServer, request
from workers.base import ProgramSpec
from cnetd.core.lifecycle import desire, finish, mark_started, settle
from workers.mlmodel import DERIVED_FIELDS
from workers.service_program import with_free_port
from workers.registry import executor_for

log = logging.getLogger("scheduler")
FENCE_KEPT_S = 3600.0  # a forward this old that still arrives is refused by its fence; older, it is long gone
FENCE_PRUNE_INTERVAL_S = 60.0


class Scheduler:
    def __init__(self, node: NodeProcess, supervisor: Supervisor) -> None:
        self._node = node
        self._ledger = node.ledger
        self._supervisor = supervisor
        self._paths = node.config.paths
        self._context = node.config.workload_context
        self._delegator = Delegator(node.ledger, node.config.node_id, auth_headers(node.config.auth_token))
        self._settling: set[str] = set()  # pointers whose settling is under way in a pool thread
        self._settling_lock = threading.Lock()
        self._next_prune = 0.0  # monotonic time of the next sweep of old fences
        self._server = RpcServer(node.config.paths.scheduler_endpoint, self.handlers)
        config = node.config
        self._models = ModelStore(node.ledger, config.data_path, config.db_path, config.models_cache_bytes,
                                  config.workloads_user)
        self._deployments = ModelDeployments(self._models, config.api_url, config.auth_token,
                                             auth_headers(config.auth_token), self._neighbour_urls, config.models_s3)
        self._replicas = ReplicaController(node.ledger, self._submit_replica, config.api_url,
                                           auth_headers(config.auth_token), config.replicas_lost_after_s)

    def serve(self) -> None:
        """Settle what the last run left, then answer requests and settle unknown forwards, forever (and keep
        deployments at their count of replicas, in the controller's thread)."""
        self.reconcile()
        self._replicas.start()
        self._server.run(self.settle_unknown, SETTLE_INTERVAL_S)

    @property
    def handlers(self) -> dict[str, Any]:
        return {"submit": self.submit, "confirm": self.confirm, "forget": self.forget,
                "reserve": self.reserve, "data_stored": self.data_stored,
                "stop": self.stop, "delete": self.delete, "evict_model": self.evict_model, "scale": self.scale}

    # -- requests -------------------------------------------------------------------------------

    def submit(self, args: dict[str, Any]) -> Any:
        """Run a workload here or delegate it: ``{"placed": record}`` (a pointer when delegated, with the
        target's ``answer``), or the error that says why not.

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
        visited = list(args.get("visited", []))
        if self._node.config.node_id in visited:
            raise DelegationRefused(f"delegation loop: {self._node.config.node_id} was already visited ({' → '.join(visited)})",
                           visited=visited)
        if len(visited) > self._node.config.max_hops:
            raise DelegationRefused(f"delegation exceeded {self._node.config.max_hops} hops ({' → '.join(visited)})",
                           visited=visited)
        if record.deployment is not None:
            if visited:
                raise Unprocessable("a deployment is not forwarded (its replicas are): submit it where it is to be "
                                    "kept")
            self._check_replicas(DeploymentSpec.of(record).replicas)
            return self._deploy(record)
        usage = self._ledger.usage()
        local = Candidate(self._node.config.node_id, usage.available, usage.capacity, local=True)
        ranked = self._rank(record, [local, *self._neighbour_candidates(exclude=set(visited))])
        if ranked[0].local:
            return _placed(self._run_here(record, ranked[0], args.get("attempt")))
        log.info("%s %s does not fit here: candidates %s", record.type, record.name,
                 ", ".join(placement.node_id for placement in ranked), extra=workload_fields(record.id))
        budget_s = min(DELEGATION_BUDGET_S, args.get("budget_s") or DELEGATION_BUDGET_S)
        return self._delegate(record, ranked, visited, budget_s)

    def _rank(self, record: WorkloadRecord, candidates: list[Candidate]) -> list[Placement]:
        """The candidates that fit, best first; a replica of a deployment spread by node goes where none of
        its deployment's other replicas is, when one of those nodes fits."""
        strategy = self._node.config.strategy
        taken = self._nodes_with_replicas(record)
        if taken:
            with contextlib.suppress(InsufficientResources):
                return rank(record.requirements, [candidate for candidate in candidates
                                                  if candidate.node_id not in taken], strategy)
        return rank(record.requirements, candidates, strategy)

    def _nodes_with_replicas(self, record: WorkloadRecord) -> set[str]:
        if record.replica_of is None:
            return set()
        with contextlib.suppress(NotFound):
            if DeploymentSpec.of(self._ledger.get(record.replica_of)).spread == SPREAD_NODE:
                members = members_of(self._ledger.workloads(replica_prefix(record.replica_of)), record.replica_of)
                return {node for member in members
                        if not member.retired and not member.terminal and member.id != record.id
                        for node in (member.node, member.delegated_to) if node}
        return set()

    def _deploy(self, record: WorkloadRecord) -> Deferred:
        """Record the deployment (it holds nothing), then place its replicas in a pool thread: they come
        back through this scheduler's own socket, one submission each."""
        deployment = self._ledger.record_holding_nothing(dataclasses.replace(
            record, status=Status.PENDING, node=self._node.config.node_id))
        return Deferred(lambda: self._replicas.deploy(deployment), lambda placed: {"placed": placed.to_dict()})

    def _submit_replica(self, replica: WorkloadRecord) -> WorkloadRecord:
        placed = request(self._paths.scheduler_endpoint, "submit", {"workload": replica.to_dict()},
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
        self._check_replicas(replicas)
        return self._ledger.update(record.id, lambda current: dataclasses.replace(
            current, deployment={**DeploymentSpec.of(current).to_dict(), "replicas": replicas})).to_dict()

    def _check_replicas(self, replicas: int) -> None:
        if replicas > self._node.config.replicas_max:
            raise Unprocessable(f"replicas: this node keeps deployments of at most {self._node.config.replicas_max} "
                                "replicas (replicas.max)")

    def _delegate(self, record: WorkloadRecord, ranked: list[Placement], visited: list[str], budget_s: float) -> Deferred:
        urls = {neighbour.node_id: neighbour.api_url for neighbour in self._node.nodes.all()}
        targets = [Target(placement.node_id, urls[placement.node_id], placement.to_dict())
                   for placement in ranked if not placement.local]
        local = next((placement for placement in ranked if placement.local), None)
        if executor_for(record.type).serves_a_model:  # a model only this node has travels by hash and link
            record = dataclasses.replace(record, config=self._deployments.forwarded_config(record.config))
        # Record, then act: the pointer exists before the forward leaves, so a crash leaves it to settle.
        pointer = self._ledger.record_holding_nothing(dataclasses.replace(
            record, status=Status.DELEGATING, node=targets[0].node_id, placement=targets[0].placement,
            delegated_to=targets[0].node_id, remote_api=targets[0].api_url, delegation_attempt=uuid.uuid4().hex))

        def then(outcome: Outcome) -> dict[str, Any]:
            if outcome.answer is not None:
                return {"placed": outcome.pointer.to_dict(), "answer": outcome.answer}
            if outcome.unknown is not None:
                raise pending_error(self._ledger.get(record.id))
            if local is not None:  # another strategy ranked neighbours first, and none took it
                DELEGATIONS.labels("fell_back_local").inc()
                return _placed(self._run_here(record, local, None))
            DELEGATIONS.labels("no_node_fits").inc()
            raise refusal_error(outcome.refusals, record)
        return Deferred(lambda: self._delegator.forward(pointer, targets, visited, budget_s), then)

    def confirm(self, args: dict[str, Any]) -> dict[str, Any]:
        """A delegating node settles its forward ``attempt`` of workload ``id``: the record, ``pending``
        while this node settles its own onward forward, or ``absent`` (the attempt is now fenced off)."""
        record = self._ledger.confirm_or_fence(args["id"], args["attempt"], time.time())
        if record is None:
            return {"absent": True}
        return {"pending": True} if record.settling else {"placed": record.to_dict()}

    def settle_unknown(self) -> None:
        """Each round: settle (in pool threads) every pointer whose forward has no known outcome."""
        for record in self._ledger.workloads():
            if record.status != Status.UNKNOWN:
                continue
            with self._settling_lock:
                if record.id in self._settling:
                    continue
                self._settling.add(record.id)
            self._server.submit_background(lambda record=record: self._settle(record))
        if time.monotonic() >= self._next_prune:
            self._ledger.prune_fences(time.time() - FENCE_KEPT_S)
            self._next_prune = time.monotonic() + FENCE_PRUNE_INTERVAL_S

    def _settle(self, record: WorkloadRecord) -> None:
        try:
            self._delegator.settle(record)
        finally:
            with self._settling_lock:
                self._settling.discard(record.id)

    def reserve(self, args: dict[str, Any]) -> dict[str, Any]:
        """Hold resources for a record that runs no program (an upload in progress): admit it as it is."""
        return self._ledger.admit(WorkloadRecord.from_dict(args["workload"])).to_dict()

    def data_stored(self, args: dict[str, Any]) -> dict[str, Any]:
        """An upload finished: keep its record, holding exactly the storage its bytes use."""
        def stored(record: WorkloadRecord) -> WorkloadRecord:
            return dataclasses.replace(record, status=Status.STORED, name=args["name"], config=args["config"],
                                       started_at=time.time())
        return self._ledger.resize(args["id"], stored, Resources(storage=args["storage"])).to_dict()

    def forget(self, args: dict[str, Any]) -> dict[str, Any]:
        self._ledger.remove(args["id"])
        return {"id": args["id"], "deleted": True}

    def _neighbour_candidates(self, exclude: set[str]) -> list[Candidate]:
        """Online children, then online peers, as their heartbeats describe their subtrees."""
        period_s = self._node.config.heartbeat_period_s
        online = [neighbour for neighbour in self._node.nodes.all()
                  if neighbour.role in (Role.CHILD, Role.PEER) and neighbour.heartbeat
                  and neighbour.node_id not in exclude and neighbour.online(period_s, HEARTBEAT_LIVENESS)]
        online.sort(key=lambda neighbour: neighbour.role != Role.CHILD)
        return [Candidate(neighbour.node_id, Resources.from_dict(neighbour.heartbeat["subtree"]["available_max"]),
                          Resources.from_dict(neighbour.heartbeat["subtree"]["capacity"]))
                for neighbour in online]

    def _run_here(self, record: WorkloadRecord, placement: Placement, attempt: str | None) -> WorkloadRecord | Deferred:
        """Validate and launch ``record`` here; first, a model deployment gets its model (a Deferred when it
        must be fetched: the launch follows the fetch, unless meanwhile the forward ``attempt`` that brought
        it was settled as not arrived, or the same id was admitted)."""
        executor, submitted = executor_for(record.type), record.config
        record.config = executor.validate(submitted, self._context)
        if not executor.serves_a_model:
            return self._start_here(record, placement)
        artifact = self._deployments.artifact_here(record.config)
        if artifact is not None:
            return self._start_with(record, placement, artifact)
        config, chosen_port = record.config, "service_port" not in submitted
        return Deferred(lambda: self._deployments.fetch(config), lambda fetched: self._start_with(
            dataclasses.replace(record, config=with_free_port(record.config) if chosen_port else record.config),
            placement, fetched, attempt))

    def _start_with(self, record: WorkloadRecord, placement: Placement, artifact: Artifact,
                    attempt: str | None = None) -> WorkloadRecord:
        record.config = self._deployments.running_config(record.config, artifact)
        try:
            if self._ledger.fenced(record.id, attempt):  # its sender settled it as not arrived: never run it
                raise DelegationRefused(f"this forward of workload {record.id} was settled as not arrived while "
                                        "its model was fetched")
            with contextlib.suppress(NotFound):
                return self._ledger.get(record.id)  # admitted meanwhile (the same id, submitted again)
            return self._start_here(record, placement)
        except CnetError as exc:
            self._models.undo_fetch(artifact, exc)
            raise

    def _start_here(self, record: WorkloadRecord, placement: Placement) -> WorkloadRecord:
        executor = executor_for(record.type)
        try:
            spec = executor.program(record, self._context)
            # Admitted with what the monitor needs to know of its program, before that program can exit.
            record = self._ledger.admit(dataclasses.replace(
                record, status=Status.STARTING, node=placement.node_id, placement=placement.to_dict(),
                program=f"{WORKLOAD_GROUP}:{program_name(record.id)}", restart_policy=spec.restart_policy,
                endpoint=spec.endpoint, health_url=spec.health_url))
        except Exception:
            shutil.rmtree(self._paths.workload_dir(record.id), ignore_errors=True)  # refused: no files left
            raise
        try:
            return self._launch(record, spec)
        except Exception:
            self._ledger.remove(record.id)  # a request that fails leaves nothing allocated
            shutil.rmtree(self._paths.workload_dir(record.id), ignore_errors=True)
            raise

    def evict_model(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._models.evict(args["sha256"])

    def _neighbour_urls(self) -> list[str]:
        return [neighbour.api_url for neighbour in self._node.nodes.all() if neighbour.api_url]

    def stop(self, args: dict[str, Any]) -> dict[str, Any]:
        record = self._ledger.get(args["id"])
        if record.deployment is not None:  # its replicas are stopped one by one (by the API, then its controller)
            return self._ledger.update(record.id, lambda current: None if current.desired == Desired.STOP
                                       else dataclasses.replace(current, desired=Desired.STOP,
                                                                status=Status.STOPPED)).to_dict()
        if record.type == "data":
            raise DataNotStoppable(f"workload {record.id} is data: it is deleted (DELETE), not stopped")
        if record.terminal:
            if record.program:
                self._supervisor.stop(record.program)  # whatever an operator may have started by hand
            return record.to_dict()
        record = self._ledger.update(record.id, desire(Desired.STOP))
        log.info("stopping %s", record.program, extra=workload_fields(record.id))
        self._supervisor.stop(record.program)
        return settle(self._ledger, self._supervisor, record, self._supervisor.info(record.program)).to_dict()

    def delete(self, args: dict[str, Any]) -> dict[str, Any]:
        record = WorkloadRecord.from_dict(self.stop(args))
        self._supervisor.remove(record.program)
        executor_for(record.type).cleanup(record, self._context)
        self._ledger.remove(record.id)
        for stream in ("stdout", "stderr"):
            for log_file in self._paths.logs_dir.glob(self._paths.workload_log(record.id, stream).name + "*"):
                log_file.unlink(missing_ok=True)
        shutil.rmtree(self._paths.workload_dir(record.id), ignore_errors=True)
        log.info("deleted %s %s", record.type, record.name, extra=workload_fields(record.id))
        return {"id": record.id, "deleted": True}

    # -- launching ------------------------------------------------------------------------------

    def _launch(self, record: WorkloadRecord, spec: ProgramSpec) -> WorkloadRecord:
        # Exactly the GPUs the ledger gave it: none means none, not all of them.
        env = workload_environment({**spec.env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, record.gpu_devices))},
                                   spec.cwd, str(self._paths.root))
        env_file = self._paths.workload_environment_file(record.id)
        make_workload_dir(env_file.parent, spec.user)
        write_workload_file(env_file, environment_file(env), spec.user)
        options = workload_program_options(
            spec.argv, str(env_file), spec.cwd,
            stdout_log=str(self._paths.workload_log(record.id, "stdout")),
            stderr_log=str(self._paths.workload_log(record.id, "stderr")),
            stop_timeout_s=spec.stop_timeout_s)
        if spec.user is not None:
            options["user"] = spec.user  # supervisord (root) switches to it before the exec
        info = self._supervisor.add_and_start(program_name(record.id), options)
        log.info("started %s %s as %s (pid %s, cpu %g, memory %d, gpus %s)", record.type, record.name,
                 record.program, info["pid"], record.requirements.cpu, record.requirements.memory,
                 record.gpu_devices or "none", extra=workload_fields(record.id))
        if info["pid"]:
            return self._ledger.update(record.id, mark_started(info["pid"]))
        return settle(self._ledger, self._supervisor, record, info)  # spawn failed: the monitor ends it

    def reconcile(self) -> None:
        """After a restart of the scheduler or the whole node: launch what should run but has no program;
        a forward that was under way when the scheduler ended has no known outcome."""
        self._models.settle()
        programs = self._supervisor.workload_infos()
        for record in self._ledger.workloads():
            if record.deployment is not None and record.status == Status.PENDING:  # its controller places the rest
                self._ledger.update(record.id, lambda current: dataclasses.replace(current, status=Status.STARTING))
                continue
            if record.status == Status.DELEGATING:
                self._ledger.update(record.id, lambda pointer: dataclasses.replace(
                    pointer, status=Status.UNKNOWN, message="the scheduler ended during its forward; settling it"))
                continue
            if record.terminal or record.remote or not record.program or record.program in programs:
                continue
            if record.desired == Desired.STOP:
                self._ledger.update(record.id, finish(Status.STOPPED, message="stopped"))
                continue
            try:
                executor = executor_for(record.type)
                submitted = {name: value for name, value in record.config.items() if name not in DERIVED_FIELDS}
                executor.validate(submitted, self._context)  # its model or directory may be gone since
                if executor.serves_a_model and self._deployments.artifact_here(submitted) is None:
                    raise Unprocessable(f"its model ({record.config['model_path']}) is no longer on this node")
                self._launch(record, executor.program(record, self._context))
                log.info("relaunched after a node restart", extra=workload_fields(record.id))
            except CnetError as exc:
                log.warning("relaunch failed: %s", exc.message, extra=workload_fields(record.id))
                self._ledger.update(record.id, finish(Status.FAILED, message=f"relaunch failed: {exc.message}"))


def _placed(outcome: WorkloadRecord | Deferred) -> dict[str, Any] | Deferred:
    """A submission's answer: the record placed here (once its model is here, for a Deferred)."""
    if isinstance(outcome, Deferred):
        return Deferred(outcome.work, lambda result: {"placed": outcome.then(result).to_dict()})
    return {"placed": outcome.to_dict()}
