"""The side effects of workloads placed here, run in the scheduler's pool threads, never on its serial thread:
prepare a workload admitted in the ledger (check its config, bring and check its model, make its program) and
start it; stop it; delete it.

The serial thread has already recorded the decision (the record, its resources held), so any crash in
between leaves a record the scheduler's start settles. Every step on one workload's program holds that
workload's lock, so a stop or a delete never crosses its launch: a launch finds the workload stopped or
deleted meanwhile and starts nothing.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import shutil
import threading
from typing import Any, Callable

from cnetd.common.errors import CnetError, NodeStopping, NotFound
from cnetd.common.logs import workload_fields
from cnetd.common.paths import RuntimePaths
from cnetd.common.private_files import make_workload_dir, write_workload_file
from cnetd.core.lifecycle import finish, mark_deleting, record_start, settle
from cnetd.core.supervisor_rpc import (Supervisor, environment_file, rotated_log_files, workload_environment,
                                      workload_program_options)
from cnetd.scheduler.models.deploy import ModelDeployments
from cnetd.scheduler.models.store import Artifact
from ledger.records import Desired, Status, WorkloadRecord
from ledger.store import Ledger
from workers.base import NodeContext, ProgramSpec, at_workload_priority
from workers.mlmodel import DERIVED_FIELDS
from workers.registry import executor_for
from workers.service_program import with_free_port

log = logging.getLogger("launching")


class WorkloadLocks:
    """One lock per workload id: its launch, stop and delete never run at once."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)

    def __call__(self, workload_id: str) -> threading.Lock:
        with self._guard:
            return self._locks[workload_id]

    def forget(self, workload_id: str) -> None:
        with self._guard:
            self._locks.pop(workload_id, None)


class Launcher:
    def __init__(self, ledger: Ledger, supervisor: Supervisor, context: NodeContext,
                 deployments: ModelDeployments, undo_fetch: Callable[[Artifact, CnetError, str], None]) -> None:
        self._ledger = ledger
        self._supervisor = supervisor  # a connection per thread
        self._context = context
        self._paths: RuntimePaths = context.paths
        self._deployments = deployments
        self._undo_fetch = undo_fetch
        self._locks = WorkloadLocks()

    # -- start ----------------------------------------------------------------------------------

    def prepare_and_start(self, record: WorkloadRecord, submitted: dict[str, Any]) -> WorkloadRecord:
        """Check ``submitted`` here, bring its model, make its program and start it, for a record admitted
        with its resources held. A refusal is raised with nothing of it left here but its record, which the
        scheduler removes as it decides where the submission goes next."""
        fetched: list[Artifact] = []
        try:
            record, spec = self._prepared(record, submitted, fetched, first_start=True)
            return self._start(record, spec)
        except Exception as exc:
            shutil.rmtree(self._paths.workload_dir(record.id), ignore_errors=True)
            self._undo(record.id, fetched, exc)
            raise
        finally:
            self._deployments.let_go(record.id)

    def relaunch(self, record: WorkloadRecord) -> None:
        """A record that should run here but has no program (the node or its scheduler restarted, perhaps
        while it was prepared): made and started again, or ``failed`` when it can no longer be (its model
        or directory is gone since)."""
        submitted = {name: value for name, value in record.config.items() if name not in DERIVED_FIELDS}
        fetched: list[Artifact] = []
        try:
            record, spec = self._prepared(record, submitted, fetched)
            self._start(record, spec)
            log.info("relaunched after a restart", extra=workload_fields(record.id))
        except NodeStopping as exc:  # its record stays 'starting': the node's next run relaunches it
            log.info("relaunch left to the node's next run: %s", exc.message, extra=workload_fields(record.id))
        except CnetError as exc:
            log.warning("relaunch failed: %s", exc.message, extra=workload_fields(record.id))
            self._ledger.update(record.id, finish(Status.FAILED, message=f"relaunch failed: {exc.message}"))
            self._undo(record.id, fetched, exc)
        finally:
            self._deployments.let_go(record.id)

    def _prepared(self, record: WorkloadRecord, submitted: dict[str, Any], fetched: list[Artifact],
                  first_start: bool = False) -> tuple[WorkloadRecord, ProgramSpec]:
        """``record`` with its config checked here (what it reads from outside probed, on its first start; its
        model here and kept for it: one fetched for it is added to ``fetched``), and the program that runs it."""
        executor = executor_for(record.type)
        config = executor.validate(submitted, self._context)
        if first_start:
            executor.probe(config, self._context)
        if executor.serves_a_model:
            artifact = self._deployments.kept_artifact(config, record.id, fetched)
            if artifact in fetched and "service_port" not in submitted:  # the one chosen may be taken meanwhile
                config = with_free_port(config)
            config = self._deployments.running_config(config, artifact)
        record = dataclasses.replace(record, config=config)
        return record, executor.program(record, self._context)

    def _undo(self, workload_id: str, fetched: list[Artifact], refusal: Exception) -> None:
        """Models fetched for a workload that then did not run go again (unless another uses them)."""
        for artifact in fetched:
            self._undo_fetch(artifact, refusal if isinstance(refusal, CnetError) else CnetError(str(refusal)),
                             workload_id)

    def _start(self, record: WorkloadRecord, spec: ProgramSpec) -> WorkloadRecord:
        with self._locks(record.id):
            try:
                current = self._ledger.get(record.id)
            except NotFound:  # deleted while it was prepared: nothing of it is left to run
                shutil.rmtree(self._paths.workload_dir(record.id), ignore_errors=True)
                return dataclasses.replace(record, status=Status.STOPPED, desired=Desired.STOP,
                                           message="deleted before it ran")
            if current.terminal or current.desired == Desired.STOP:  # stopped while it was prepared
                return self._ledger.update(record.id, finish(Status.STOPPED, message="stopped before it ran"))
            # What the monitor needs to know of its program, recorded before that program can exit.
            record = self._ledger.update(record.id, lambda stored: dataclasses.replace(
                stored, config=record.config, restart_policy=spec.restart_policy, endpoint=spec.endpoint,
                health_url=spec.health_url, message=""))
            return self._launch(record, spec)

    def _launch(self, record: WorkloadRecord, spec: ProgramSpec) -> WorkloadRecord:
        # Exactly the GPUs the ledger gave it: none means none, not all of them.
        env = workload_environment({**spec.env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, record.gpu_devices))},
                                   spec.cwd, str(self._paths.root))
        env_file = self._paths.workload_environment_file(record.id)
        make_workload_dir(env_file.parent, spec.user)
        write_workload_file(env_file, environment_file(env), spec.user)
        options = workload_program_options(
            at_workload_priority(spec.argv, self._context), str(env_file), spec.cwd,
            stdout_log=str(self._paths.workload_log(record.id, "stdout")),
            stderr_log=str(self._paths.workload_log(record.id, "stderr")),
            stop_timeout_s=spec.stop_timeout_s, user=spec.user)
        info = self._supervisor.add_and_start(record.program.partition(":")[2], options)
        log.info("started %s %s as %s (pid %s, cpu %g, memory %d, gpus %s)", record.type, record.name,
                 record.program, info["pid"], record.requirements.cpu, record.requirements.memory,
                 record.gpu_devices or "none", extra=workload_fields(record.id))
        if info["pid"]:
            return record_start(self._ledger, record, info["pid"])
        return settle(self._ledger, self._supervisor, record, info)  # spawn failed: the monitor ends it

    # -- stop and delete ------------------------------------------------------------------------

    def stop_program(self, program: str) -> None:
        """Stop a terminal workload's program (one an operator may have started by hand)."""
        self._supervisor.stop(program)

    def stop(self, record: WorkloadRecord) -> WorkloadRecord:
        """Stop a workload whose stop is recorded (desired ``stop``), waiting for supervisord; its record
        settles as its program now is."""
        with self._locks(record.id):
            log.info("stopping %s", record.program, extra=workload_fields(record.id))
            self._supervisor.stop(record.program)
            return settle(self._ledger, self._supervisor, self._ledger.get(record.id),
                          self._supervisor.info(record.program))

    def delete(self, record: WorkloadRecord) -> dict[str, Any]:
        """Stop a workload, remove its program, what its type leaves behind, its logs, files and record."""
        with self._locks(record.id):
            self._delete(record)
        self._locks.forget(record.id)
        log.info("deleted %s %s", record.type, record.name, extra=workload_fields(record.id))
        return {"id": record.id, "deleted": True}

    def delete_finished(self, workload_id: str) -> None:
        """Delete a finished workload as ``delete`` does, unless it was deleted or runs again meanwhile (an
        operator started its program by hand)."""
        with self._locks(workload_id):
            try:
                record = self._ledger.get(workload_id)
            except NotFound:
                return
            if not record.terminal:
                return
            self._delete(record)
        self._locks.forget(workload_id)
        log.info("deleted %s %s: finished, beyond workloads.keep_finished", record.type, record.name,
                 extra=workload_fields(workload_id))

    def _delete(self, record: WorkloadRecord) -> None:
        # Recorded first (a no-op after the API's delete, which recorded it on the serial thread): a scheduler
        # that ends during the delete finishes it when it starts.
        if not record.terminal:
            self._ledger.update(record.id, mark_deleting)
        if record.program:
            self._supervisor.stop(record.program)
            with contextlib.suppress(NotFound):
                settle(self._ledger, self._supervisor, self._ledger.get(record.id),
                       self._supervisor.info(record.program))
            self._supervisor.remove(record.program)
        executor_for(record.type).cleanup(record, self._context)
        with contextlib.suppress(NotFound):
            self._ledger.remove(record.id)
        for stream in ("stdout", "stderr"):  # by name: a glob read the whole logs directory for each delete
            for log_file in rotated_log_files(self._paths.workload_log(record.id, stream)):
                log_file.unlink(missing_ok=True)
        shutil.rmtree(self._paths.workload_dir(record.id), ignore_errors=True)
