"""The scheduler process: places, allocates and launches workloads; stops and deletes them.

It serves the API's requests one at a time on an ipc:// ROUTER socket, so every placement decision is
made in one place; the ledger's atomic admit is the guard against over-allocation. When a workload
belongs elsewhere it answers with the ranked neighbours to try: the API forwards it over HTTP (in its
own threads, so two schedulers delegating to each other can never wait on each other) and records the
result here as a pointer.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from typing import Any

from cnetd.errors import CnetError, DelegationRefused, NotFound
from cnetd.logs import workload_fields
from cnetd.node_process import NodeProcess, open_node_process
from cnetd.paths import WORKLOAD_GROUP, program_name
from cnetd.placement import Candidate, Placement, rank
from cnetd.supervisor_rpc import Supervisor, workload_program_options
from ledger.nodetable import Role
from ledger.records import Desired, Resources, Status, WorkloadRecord
from mesh.messages import HEARTBEAT_LIVENESS
from mesh.rpc import RpcServer
from workers.base import NodeContext, ProgramSpec
from workers.lifecycle import desire, finish, mark_healthy, mark_started, settle
from workers.registry import executor_for

log = logging.getLogger("scheduler")


class Scheduler:
    def __init__(self, node: NodeProcess, supervisor: Supervisor) -> None:
        self._node = node
        self._ledger = node.ledger
        self._supervisor = supervisor
        self._paths = node.config.paths
        self._context = NodeContext.of(node.config)

    @property
    def handlers(self) -> dict[str, Any]:
        return {"submit": self.submit, "record_pointer": self.record_pointer, "forget": self.forget,
                "mark_healthy": self.mark_healthy, "reserve": self.reserve, "data_stored": self.data_stored,
                "stop": self.stop, "delete": self.delete}

    # -- requests -------------------------------------------------------------------------------

    def submit(self, args: dict[str, Any]) -> dict[str, Any]:
        """Run a workload here (``{"placed": record}``) or say where to send it (``{"delegate": [...]}``).

        ``delegation`` carries the nodes already visited and the hop count; ``local_only`` asks to run
        here after every neighbour refused.
        """
        record = WorkloadRecord.from_dict(args["workload"])
        try:
            return {"placed": self._ledger.get(record.id).to_dict()}  # a retried submission runs nothing twice
        except NotFound:
            pass
        visited = list(args.get("visited", []))
        if self._node.config.node_id in visited:
            raise DelegationRefused(f"delegation loop: {self._node.config.node_id} was already visited ({' → '.join(visited)})",
                           visited=visited)
        if len(visited) > self._node.config.max_hops:
            raise DelegationRefused(f"delegation exceeded {self._node.config.max_hops} hops ({' → '.join(visited)})",
                           visited=visited)
        usage = self._ledger.usage()
        local = Candidate(self._node.config.node_id, usage.available, usage.capacity, local=True)
        neighbours = [] if args.get("local_only") else self._neighbour_candidates(exclude=set(visited))
        ranked = rank(record.requirements, [local, *neighbours], self._node.config.strategy)
        if ranked[0].local:
            return {"placed": self._run_here(record, ranked[0]).to_dict()}
        log.info("%s %s does not fit here: candidates %s", record.type, record.name,
                 ", ".join(placement.node_id for placement in ranked), extra=workload_fields(record.id))
        urls = {neighbour.node_id: neighbour.api_url for neighbour in self._node.nodes.all()}
        return {"delegate": [{"node_id": placement.node_id, "api_url": urls[placement.node_id],
                              "placement": placement.to_dict()} for placement in ranked if not placement.local],
                "local_fits": any(placement.local for placement in ranked)}

    def record_pointer(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._ledger.record_pointer(WorkloadRecord.from_dict(args["workload"])).to_dict()

    def reserve(self, args: dict[str, Any]) -> dict[str, Any]:
        """Hold resources for a record that runs no program (an upload in progress): admit it as it is."""
        return self._ledger.admit(WorkloadRecord.from_dict(args["workload"])).to_dict()

    def data_stored(self, args: dict[str, Any]) -> dict[str, Any]:
        """An upload finished: keep its record, holding exactly the storage its bytes use."""
        def stored(record: WorkloadRecord) -> WorkloadRecord:
            return dataclasses.replace(record, status=Status.STORED, name=args["name"], config=args["config"],
                                       started_at=time.time())
        return self._ledger.resize(args["id"], stored, Resources(storage=args["storage"])).to_dict()

    def mark_healthy(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._ledger.update(args["id"], mark_healthy).to_dict()

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

    def _run_here(self, record: WorkloadRecord, placement: Placement) -> WorkloadRecord:
        executor = executor_for(record.type)
        record.config = executor.validate(record.config, self._context)
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

    def stop(self, args: dict[str, Any]) -> dict[str, Any]:
        record = self._ledger.get(args["id"])
        if record.terminal:
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
        env = {**spec.env, "CUDA_VISIBLE_DEVICES": ",".join(str(index) for index in record.gpu_devices)}
        options = workload_program_options(
            spec.argv, env, spec.cwd,
            stdout_log=str(self._paths.workload_log(record.id, "stdout")),
            stderr_log=str(self._paths.workload_log(record.id, "stderr")),
            stop_timeout_s=spec.stop_timeout_s)
        info = self._supervisor.add_and_start(program_name(record.id), options)
        log.info("started %s %s as %s (pid %s, cpu %g, memory %d, gpus %s)", record.type, record.name,
                 record.program, info["pid"], record.requirements.cpu, record.requirements.memory,
                 record.gpu_devices or "none", extra=workload_fields(record.id))
        if info["pid"]:
            return self._ledger.update(record.id, mark_started(info["pid"]))
        return settle(self._ledger, self._supervisor, record, info)  # spawn failed: the monitor ends it

    def reconcile(self) -> None:
        """After a restart of the scheduler or the whole node: launch what should run but has no program."""
        programs = self._supervisor.workload_infos()
        for record in self._ledger.workloads():
            if record.terminal or record.remote or not record.program or record.program in programs:
                continue
            if record.desired == Desired.STOP:
                self._ledger.update(record.id, finish(Status.STOPPED, message="stopped"))
                continue
            try:
                executor = executor_for(record.type)
                executor.validate(record.config, self._context)  # its model or directory may be gone since
                self._launch(record, executor.program(record, self._context))
                log.info("relaunched after a node restart", extra=workload_fields(record.id))
            except CnetError as exc:
                log.warning("relaunch failed: %s", exc.message, extra=workload_fields(record.id))
                self._ledger.update(record.id, finish(Status.FAILED, message=f"relaunch failed: {exc.message}"))


def main() -> None:
    node = open_node_process("scheduler")
    scheduler = Scheduler(node, node.supervisor())
    server = RpcServer(node.config.paths.scheduler_endpoint, scheduler.handlers)
    scheduler.reconcile()
    while True:
        server.serve_one()


if __name__ == "__main__":
    main()
