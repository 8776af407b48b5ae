"""Why a node did not take a workload, one shape for all of them (placement passed it over, its preparation
here failed, a neighbour answered no or could not be reached), and the submission's answer when every node
considered refused: each named with its reason, as Nomad's AllocMetric does."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cnetd.common.errors import (CnetError, DelegationRefused, InsufficientResources, InsufficientStorage, Invalid,
                                 Unavailable, Unprocessable)
from ledger.records import Resources

# Kinds of refusal, from placement (infeasible, no room) and from trying (the rest).
INFEASIBLE, NO_ROOM, INVALID, UNPROCESSABLE, UNREACHABLE, DISK_FULL, REFUSED = (
    "infeasible", "no_room", "invalid", "unprocessable", "unreachable", "disk_full", "refused")
# A node's own "unavailable" (what it needs did not answer: a neighbour holding the data, its container engine)
# is as passing as a node that could not be reached: trying again may find it.
_KIND_OF_CODE = {"insufficient_resources": NO_ROOM, "invalid_request": INVALID, "unprocessable": UNPROCESSABLE,
                 "insufficient_storage": DISK_FULL, "delegation_refused": REFUSED, "unavailable": UNREACHABLE}


@dataclass(frozen=True)
class Refusal:
    node_id: str
    kind: str
    message: str
    status: int | None = None  # the HTTP status a node answered with, when it answered

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def refusal_of(node_id: str, error: CnetError) -> Refusal:
    """A node's own error as a refusal of its kind."""
    return Refusal(node_id, _KIND_OF_CODE.get(error.code, REFUSED), error.message, error.status)


def kind_of_code(code: str) -> str:
    return _KIND_OF_CODE.get(code, REFUSED)


def refusal_error(refusals: list[Refusal], requested: Resources, available: Resources | None = None) -> CnetError:
    """The submission's answer when every node considered refused: 503 if one, or what it needs, could not be
    reached (trying again may find it), else 409 if one had no room, else 507 if every one asked found its disk
    full, else 400 / 422 (every node refused the config itself: its shape, or what it names, or could not run it
    at all), else 409. Its body lists the refusals (``refused``): a node that answers with it has let the
    submission go, which tells a 503 of this kind from one whose outcome is not known."""
    reasons = "; ".join(f"{refusal.node_id}: {refusal.message}" for refusal in refusals) or "no node was considered"
    details: dict[str, Any] = {"requested": requested.to_dict(), "refused": [refusal.to_dict() for refusal in refusals]}
    if available is not None:
        details["available"] = available.to_dict()
    # Nodes that were asked (they answered, or could not be reached) say more than those placement passed
    # over without asking: a config every node with room refused is the config's fault.
    asked = [refusal for refusal in refusals if refusal.status is not None or refusal.kind == UNREACHABLE]
    kinds = {refusal.kind for refusal in asked or refusals}
    count = f"{len(refusals)} node(s) considered"
    if UNREACHABLE in kinds:
        return Unavailable(f"no node took this workload now, and trying again may find one: a node, or what it needs, "
                           f"could not be reached ({count}: {reasons})", **details)
    if NO_ROOM in kinds or not kinds:
        return InsufficientResources(f"no node has room for this workload ({count}: {reasons})", **details)
    if kinds == {DISK_FULL}:
        return InsufficientStorage(f"no node could record this workload: its disk is full ({count}: {reasons})",
                                   **details)
    if kinds == {INVALID}:
        return Invalid(f"every node refused this workload's config ({reasons})", **details)
    if kinds <= {INVALID, UNPROCESSABLE, INFEASIBLE}:
        return Unprocessable(f"no node can run this workload ({count}: {reasons})", **details)
    return DelegationRefused(f"no node would take this workload ({count}: {reasons})", **details)
