"""What every API resource shares: the dependencies it is built with, and how a record is shown.

``ApiDeps`` is everything a handler may touch (the config, the ledger, the node table, the scheduler
channel, the next hops of delegated workloads, the data catalog): ``create_app`` takes it, so handlers run
under ``falcon.testing`` with a ledger in a temporary directory and no node around them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cnetd.core.remote import RemoteWorkloads
from cnetd.common.errors import DelegationPending, NotFound
from cnetd.core.config import NodeConfig
from cnetd.core.model_records import MODEL_TYPE
from cnetd.api.balancer import Balancer
from cnetd.core.deployment_spec import replica_prefix
from cnetd.core.deployment_state import deployment_view, members_of
from cnetd.core.submission import INLINE_DETECTOR_SUFFIX
from ledger.catalog import Catalog
from ledger.nodetable import NodeTable
from ledger.records import WorkloadRecord
from ledger.store import Ledger
from workers.registry import EXECUTORS


@dataclass(frozen=True)
class ApiDeps:
    config: NodeConfig
    ledger: Ledger
    nodes: NodeTable
    schedule: Callable[..., Any]  # schedule(op, **args): the scheduler's answer, or the CnetError it raised
    announce_neighbours: Callable[[], None]  # tells the register the node table changed
    remote: RemoteWorkloads
    catalog: Catalog
    balancer: Balancer = field(default_factory=Balancer)  # this process's choice of replica for each request


class Resource:
    def __init__(self, deps: ApiDeps) -> None:
        self.deps = deps
        self.data_root = Path(deps.config.data_path)
        self.context = deps.config.workload_context

    def schedule(self, op: str, **args: Any) -> Any:
        return self.deps.schedule(op, **args)

    def view(self, record: WorkloadRecord) -> dict[str, Any]:
        """A record as readers see it now (a delegated one as its next hop sees it)."""
        return self.views([record])[0]

    def views(self, records: list[WorkloadRecord]) -> list[dict[str, Any]]:
        """Several records as readers see them now: the delegated ones with one request per next hop."""
        remote_views = iter(self.deps.remote.views([record for record in records if proxied(record)]))
        return [next(remote_views) if proxied(record) else self._view_here(record) for record in records]

    def _view_here(self, record: WorkloadRecord) -> dict[str, Any]:
        if record.deployment is not None:
            members = self.members(record)
            return {**self.present(record, {}), **deployment_view(record, members, self.views(members))}
        return self.present(record, {} if record.remote else self.facts(record))

    def present(self, record: WorkloadRecord, facts: dict[str, Any]) -> dict[str, Any]:
        """A record as readers see it: with what only its program knows, secrets in its config hidden."""
        executor = EXECUTORS.get(record.type)
        config = executor.shown_config(record.config) if executor else record.config
        shown = {name: value for name, value in record.to_dict().items() if name != "fingerprint"}
        return {**shown, "config": config, **facts}

    def workload(self, workload_id: str) -> WorkloadRecord:
        """The workload with this id; the model cache's records are no workloads (they are /api/models)."""
        record = self.deps.ledger.get(workload_id)
        if record.type == MODEL_TYPE:
            raise NotFound(f"no workload with id {workload_id!r} (models are listed at /api/models)")
        return record

    def members(self, deployment: WorkloadRecord) -> list[WorkloadRecord]:
        """A deployment's replicas (those taken out of rotation too, until they are deleted)."""
        return members_of(self.deps.ledger.workloads(replica_prefix(deployment.id)), deployment.id)

    def owned(self, owner_id: str) -> list[WorkloadRecord]:
        """What was deployed with ``owner_id`` (a stream's own detector, whose id is the stream's with a suffix:
        a range of the ledger's keys, where every record was read on every delete)."""
        return self.deps.ledger.workloads(id_prefix=owner_id + INLINE_DETECTOR_SUFFIX,
                                          where=lambda stored: stored.get("owned_by") == owner_id)

    def facts(self, record: WorkloadRecord) -> dict[str, Any]:
        executor = EXECUTORS.get(record.type)  # data records have no executor: uploads run no program
        return executor.facts(record, self.context) if executor else {}


def proxied(record: WorkloadRecord) -> bool:
    """Shown as its next hop sees it: a delegated workload whose delegation is settled (a pointer still
    settling is shown as this node holds it)."""
    return record.remote and not record.settling


def settled(record: WorkloadRecord) -> WorkloadRecord:
    """An action needs to know where a workload runs: not while its delegation is being settled."""
    if record.settling:
        raise DelegationPending(f"workload {record.id} is being delegated to {record.delegated_to} and its outcome "
                                "is not known yet; try again shortly", node=record.delegated_to)
    return record
