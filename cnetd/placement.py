"""Placement as a pure function: (requirements, candidate nodes, strategy) → where to run, or why nowhere."""
from __future__ import annotations

from dataclasses import dataclass

from cnetd.errors import InsufficientResources
from ledger.records import RESOURCE_KINDS, Resources


@dataclass(frozen=True)
class Candidate:
    """A node that might run a workload, with the resources it last reported free."""

    node_id: str
    available: Resources
    capacity: Resources
    local: bool = False


@dataclass(frozen=True)
class Placement:
    node_id: str
    local: bool
    strategy: str
    reason: str

    def to_dict(self) -> dict[str, str | bool]:
        return {"node": self.node_id, "local": self.local, "strategy": self.strategy, "reason": self.reason}


def _free_fraction(candidate: Candidate, need: Resources) -> float:
    """Mean share of capacity left free after placing ``need``, over the kinds the node has."""
    left = candidate.available - need
    shares = [getattr(left, kind) / getattr(candidate.capacity, kind)
              for kind in RESOURCE_KINDS if getattr(candidate.capacity, kind) > 0]
    return sum(shares) / len(shares) if shares else 0.0


def place(need: Resources, candidates: list[Candidate], strategy: str) -> Placement:
    """Choose a candidate for ``need``: ``local-first`` prefers this node, ``best-fit`` the tightest fit,
    ``spread`` the node left with the most free. Raises ``InsufficientResources`` when none fits."""
    fitting = [candidate for candidate in candidates if candidate.available.covers(need)]
    if not fitting:
        local = next((candidate for candidate in candidates if candidate.local), None)
        details = {"requested": need.to_dict()}
        if local is not None:
            details["available"] = local.available.to_dict()
        short = sorted({kind for candidate in candidates for kind in candidate.available.shortfall(need)})
        raise InsufficientResources(
            f"no node has enough {', '.join(short) or 'resources'} for this workload "
            f"({len(candidates)} node(s) considered)", **details)
    if strategy == "local-first":
        chosen = next((candidate for candidate in fitting if candidate.local), fitting[0])
        reason = "fits on this node" if chosen.local else "this node is full; first neighbour that fits"
    elif strategy == "best-fit":
        chosen = min(fitting, key=lambda candidate: _free_fraction(candidate, need))
        reason = f"tightest fit ({_free_fraction(chosen, need):.0%} left free)"
    elif strategy == "spread":
        chosen = max(fitting, key=lambda candidate: _free_fraction(candidate, need))
        reason = f"most free after placement ({_free_fraction(chosen, need):.0%} left free)"
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    return Placement(chosen.node_id, chosen.local, strategy, reason)
