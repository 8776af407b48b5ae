"""What a deployment of replicas asks for (``replicas``, ``spread``, ``placement`` of a submission), and the
names of its replicas.

A deployment's record runs no program and holds nothing; each replica is a workload of its own (an id
``<deployment>-r<N>``), placed, delegated, restarted and deleted as any other, and marked ``replica_of``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cnetd.common.errors import Invalid
from ledger.records import WorkloadRecord

SPREAD_NODE, SPREAD_ANY = "node", "any"
ALL_OR_NOTHING, BEST_EFFORT = "all-or-nothing", "best-effort"
SPREADS, PLACEMENTS = (SPREAD_NODE, SPREAD_ANY), (ALL_OR_NOTHING, BEST_EFFORT)
MAX_REPLICAS = 64
MAX_DEPLOYMENT_ID = 56  # room for "-r" and a replica's number within a workload id's 63 characters
FIELDS = ("replicas", "spread", "placement")  # a submission's top-level fields that make it a deployment


@dataclass(frozen=True)
class DeploymentSpec:
    replicas: int
    spread: str = SPREAD_NODE  # "node": replicas of one deployment on distinct nodes when possible
    placement: str = ALL_OR_NOTHING  # when not all fit at submission: refuse all, or run what fits
    reschedules: int = 0  # replicas replaced after they failed or their node was lost
    next_index: int = 0  # the number the next replica's id takes

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, record: WorkloadRecord) -> DeploymentSpec:
        assert record.deployment is not None
        return cls(**record.deployment)


def replica_count(raw: Any) -> int:
    """A whole number (2.0 is one, as JSON Schema has it) from 1 to ``MAX_REPLICAS``."""
    whole = isinstance(raw, int) or (isinstance(raw, float) and raw.is_integer())
    if isinstance(raw, bool) or not whole or not 1 <= raw <= MAX_REPLICAS:
        raise Invalid(f"replicas: expected a whole number from 1 to {MAX_REPLICAS}, got {raw!r}")
    return int(raw)


def parse_spec(body: dict[str, Any], workload_id: str) -> DeploymentSpec | None:
    """The deployment a submission asks for, or None for a single workload (no ``replicas`` field)."""
    if "replicas" not in body:
        extra = [name for name in FIELDS if name in body]
        if extra:
            raise Invalid(f"{', '.join(extra)}: only with replicas")
        return None
    spread, placement = body.get("spread", SPREAD_NODE), body.get("placement", ALL_OR_NOTHING)
    if spread not in SPREADS:
        raise Invalid(f"spread: expected one of {', '.join(SPREADS)}, got {spread!r}")
    if placement not in PLACEMENTS:
        raise Invalid(f"placement: expected one of {', '.join(PLACEMENTS)}, got {placement!r}")
    if len(workload_id) > MAX_DEPLOYMENT_ID:
        raise Invalid(f"id: a deployment's id has at most {MAX_DEPLOYMENT_ID} characters (its replicas add theirs)")
    return DeploymentSpec(replica_count(body["replicas"]), spread, placement)


def replica_prefix(deployment_id: str) -> str:
    """What the ids of a deployment's replicas begin with (others' may too: ``replica_of`` tells)."""
    return f"{deployment_id}-r"


def replica_record(deployment: WorkloadRecord, index: int) -> WorkloadRecord:
    """Replica number ``index`` of ``deployment``: its request as the user sent it, under its own id."""
    return WorkloadRecord(id=f"{replica_prefix(deployment.id)}{index}", type=deployment.type, name=deployment.name,
                          config=deployment.config, requirements=deployment.requirements,
                          fingerprint=deployment.fingerprint, replica_of=deployment.id,
                          constraints=deployment.constraints)
