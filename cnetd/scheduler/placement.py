"""Placement as a pure function: (requirements, candidate nodes, strategy) → where to run in order of preference, or why nowhere."""
from __future__ import annotations

from dataclasses import dataclass

from cnetd.common.errors import InsufficientResources
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


def rank(need: Resources, candidates: list[Candidate], strategy: str) -> list[Placement]:
    """Order the candidates that fit ``need``, best first: ``local-first`` puts this node first, then
    neighbours in the given order; ``best-fit`` the tightest fit first; ``spread`` the most free first.
    Raises ``InsufficientResources`` when none fits."""
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
        ordered = sorted(fitting, key=lambda candidate: not candidate.local)
        return [Placement(candidate.node_id, candidate.local, strategy,
                          "fits on this node" if candidate.local else "this node is full; a neighbour fits")
                for candidate in ordered]
    if strategy not in ("best-fit", "spread"):
        raise ValueError(f"unknown strategy {strategy!r}")
    ordered = sorted(fitting, key=lambda candidate: _free_fraction(candidate, need), reverse=strategy == "spread")
    label = "tightest fit" if strategy == "best-fit" else "most free after placement"
    return [Placement(candidate.node_id, candidate.local, strategy,
                      f"{label} ({_free_fraction(candidate, need):.0%} left free)") for candidate in ordered]
