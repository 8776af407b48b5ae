"""A deployment's desired state changed by its user, for the scheduler: a new revision (``PATCH`` with a
``config`` and/or ``requirements``), a canary promoted, a rollout rolled back. Each is recorded in the
deployment's record; its controller carries it out. A new revision is checked first (its config, and its
model loaded once, fetched into this node's cache if it comes from elsewhere), so a broken one is refused
before anything changes."""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from cnetd.common.errors import Conflict, Invalid, Unprocessable
from cnetd.core.deployment_spec import (ACTIVE, MAX_KEPT_REVISIONS, ROLLED_BACK, ROLLING_OUT, SUPERSEDED,
                                        DeploymentSpec, Revision, UpdatePolicy)
from cnetd.core.submission import parse_requirements
from cnetd.scheduler.models.deploy import ModelDeployments
from ledger.records import Desired, WorkloadRecord
from ledger.store import Ledger
from mesh.rpc import Deferred
from workers.base import NodeContext
from workers.registry import executor_for

class Revisions:
    def __init__(self, ledger: Ledger, context: NodeContext, models: ModelDeployments) -> None:
        self._ledger = ledger
        self._context = context
        self._models = models

    def revise(self, deployment_id: str, change: dict[str, Any]) -> Deferred:
        """Check the revision ``change`` asks for (in a pool thread), then record it and its rollout."""
        record, spec = self._changeable(deployment_id)
        active = spec.revision_of(spec.revision, record)
        config = change.get("config", active.config)
        if not isinstance(config, dict):
            raise Invalid("config: expected an object")
        requirements = parse_requirements(change.get("requirements", active.requirements)).to_dict()
        policy = UpdatePolicy.parse(change.get("update"), spec.update_policy)
        if policy.canary and policy.canary > spec.replicas:
            raise Unprocessable(f"update.canary: at most replicas ({spec.replicas})")
        if (config, requirements) == (active.config, active.requirements):
            raise Unprocessable("config and requirements are those of the active revision: nothing to roll out")
        executor = executor_for(record.type)

        def check() -> None:
            try:
                checked = executor.validate(config, self._context)
            except Invalid as exc:  # well-formed as a request; not what this type takes
                raise Unprocessable(exc.message, **exc.details) from None
            if executor.serves_a_model:
                try:
                    artifact = self._models.kept_artifact(checked, deployment_id, [])
                    executor.check(self._models.running_config(checked, artifact), self._context)
                finally:
                    self._models.let_go(deployment_id)

        def record_it(_: Any) -> dict[str, Any]:
            return self._ledger.update(deployment_id, _new_revision(config, requirements, policy)).to_dict()
        return Deferred(check, record_it)

    def promote(self, deployment_id: str) -> dict[str, Any]:
        record, spec = self._deployment(deployment_id)
        if not spec.rollout or not spec.update_policy.canary:
            raise Conflict(f"deployment {deployment_id} has no canary waiting to be promoted")
        return self._ledger.update(deployment_id, lambda current: dataclasses.replace(current, deployment={
            **DeploymentSpec.of(current).to_dict(),
            "rollout": {**DeploymentSpec.of(current).rollout, "promoted": True}})).to_dict()

    def rollback(self, deployment_id: str) -> dict[str, Any]:
        """A rollout under way goes back (its new replicas go); without one, the deployment rolls out its
        previous revision again (an undo)."""
        record, spec = self._deployment(deployment_id)
        if spec.rollout:
            return self._ledger.update(deployment_id, lambda current: dataclasses.replace(current, deployment={
                **DeploymentSpec.of(current).to_dict(),
                "rollout": {**DeploymentSpec.of(current).rollout, "abort": "rolled back by request"}})).to_dict()
        earlier = [item for item in spec.revisions if item["revision"] < spec.revision
                   and item["state"] in (SUPERSEDED, ROLLED_BACK, ACTIVE)]
        if not earlier:
            raise Conflict(f"deployment {deployment_id} has no earlier revision to go back to")
        previous = max(earlier, key=lambda item: item["revision"])["revision"]

        def undo(current: WorkloadRecord) -> WorkloadRecord:
            state = DeploymentSpec.of(current).with_revision_state(previous, ROLLING_OUT, "undo")
            return dataclasses.replace(current, deployment={**state.to_dict(), "rollout": {
                "revision": previous, "started_at": time.time(), "promoted": True, "undo": True}})
        return self._ledger.update(deployment_id, undo).to_dict()

    def _deployment(self, deployment_id: str) -> tuple[WorkloadRecord, DeploymentSpec]:
        record = self._ledger.get(deployment_id)
        if record.deployment is None:
            raise Unprocessable(f"workload {deployment_id} is not a deployment: only a deployment has revisions "
                                "(submit it with \"replicas\")")
        return record, DeploymentSpec.of(record)

    def _changeable(self, deployment_id: str) -> tuple[WorkloadRecord, DeploymentSpec]:
        record, spec = self._deployment(deployment_id)
        if record.desired == Desired.STOP or spec.deleting:
            raise Conflict(f"deployment {deployment_id} is stopped")
        if spec.rollout:
            raise Conflict(f"deployment {deployment_id} is rolling out revision {spec.rollout['revision']}: wait for "
                           "it, or roll it back (POST .../rollback), before the next", rollout=spec.rollout["revision"])
        return record, spec


def _new_revision(config: dict[str, Any], requirements: dict[str, Any], policy: UpdatePolicy) -> Any:
    def change(record: WorkloadRecord) -> WorkloadRecord:
        spec = DeploymentSpec.of(record)
        if spec.rollout:
            raise Conflict(f"deployment {record.id} is rolling out revision {spec.rollout['revision']}")
        number = max([spec.revision, *(item["revision"] for item in spec.revisions)]) + 1
        revisions = spec.revisions or [spec.revision_of(spec.revision, record).to_dict()]
        revisions = [*revisions, Revision(number, ROLLING_OUT, time.time(), config, requirements).to_dict()]
        while len(revisions) > MAX_KEPT_REVISIONS:  # the oldest go first, never the active one
            oldest = next(item for item in revisions if item["revision"] != spec.revision)
            revisions.remove(oldest)
        return dataclasses.replace(record, deployment={**spec.to_dict(), "revisions": revisions,
                                                       "update": policy.to_dict(), "rollout": {
            "revision": number, "started_at": time.time(), "promoted": not policy.canary}})
    return change
