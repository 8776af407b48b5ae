"""Placement as a pure function, in Nomad's stages: (what a workload needs, the candidate nodes, a strategy) →
a plan: the nodes that can run it, best first, and why each other node was passed over.

1. **Feasibility**: can the node run this kind of workload at all? Its features (a workload type, a model
   runtime, a container engine), a GPU at all when one is asked for, and the labels a submission's
   constraints name. A neighbour stands for its whole subtree (what any node below it offers), and a node
   that does not say (an older version) is taken as able: the forward then tells.
2. **Fit**: are the requested resources free there (for a neighbour: on one node of its subtree)?
3. **Rank**: rules in order. Spread first (a node that holds another replica of the same deployment goes
   after those that do not), then the node's strategy: ``local-first`` (this node, then neighbours in
   the given order), ``best-fit`` (the tightest fit first), ``spread`` (the most free first).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from cnetd.scheduler.refusals import INFEASIBLE, NO_ROOM, Refusal
from ledger.records import RESOURCE_KINDS, Resources


@dataclass(frozen=True)
class Candidate:
    """A node that might run a workload (a neighbour: anywhere in its subtree), as it last reported itself."""

    node_id: str
    available: Resources  # a neighbour's: the most free on any one node of its subtree, per resource
    capacity: Resources
    local: bool = False
    features: frozenset[str] | None = None  # what it can run; None: not said (an older node), taken as able
    labels: dict[str, frozenset[str]] | None = None  # label → the values its (sub)tree's nodes carry
    holds_sibling: bool = False  # runs another replica of the same deployment (the spread rule)
    lacks: dict[str, str] = field(default_factory=dict)  # why it does not offer a feature (this node says)


@dataclass(frozen=True)
class Need:
    """What a workload asks of the node that runs it."""

    resources: Resources
    feature: str | None = None  # e.g. "process", "mlmodel/tflite", "container"
    labels: dict[str, str] = field(default_factory=dict)  # constraints: each label must carry this value


@dataclass(frozen=True)
class Placement:
    node_id: str
    local: bool
    strategy: str
    reason: str

    def to_dict(self) -> dict[str, str | bool]:
        return {"node": self.node_id, "local": self.local, "strategy": self.strategy, "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    ranked: list[Placement]  # the nodes that can run it, best first
    passed_over: list[Refusal]  # every other node considered, and why


def infeasibility(need: Need, candidate: Candidate) -> str | None:
    """Why ``candidate`` cannot run what ``need`` describes, whatever is free there; None if it can."""
    if need.feature is not None and candidate.features is not None and need.feature not in candidate.features:
        why_not = candidate.lacks.get(need.feature)
        return f"cannot run {need.feature}" + (f": {why_not}" if why_not else "")
    if need.resources.gpu and not candidate.capacity.gpu:
        return "has no GPU"
    if need.labels and candidate.labels is not None:
        missing = [f"{name}={value}" for name, value in sorted(need.labels.items())
                   if value not in candidate.labels.get(name, ())]
        if missing:
            return f"lacks label(s) {', '.join(missing)}"
    return None


def misfit(need: Resources, candidate: Candidate) -> str | None:
    """Which resources ``candidate`` has too little of free for ``need``; None if it fits."""
    short = candidate.available.shortfall(need)
    if not short:
        return None
    free = ", ".join(f"{kind} {getattr(need, kind):g} asked, {getattr(candidate.available, kind):g} free"
                     for kind in short)
    return f"not enough {', '.join(short)} ({free})"


def _free_fraction(candidate: Candidate, need: Resources) -> float:
    """Mean share of capacity left free after placing ``need``, over the kinds the node has."""
    left = candidate.available - need
    shares = [getattr(left, kind) / getattr(candidate.capacity, kind)
              for kind in RESOURCE_KINDS if getattr(candidate.capacity, kind) > 0]
    return sum(shares) / len(shares) if shares else 0.0


def _strategy_key(strategy: str, candidate: Candidate, need: Resources, position: int) -> tuple[float, ...]:
    if strategy == "local-first":
        return (0.0 if candidate.local else 1.0, float(position))
    if strategy == "best-fit":
        return (_free_fraction(candidate, need),)
    if strategy == "spread":
        return (-_free_fraction(candidate, need),)
    raise ValueError(f"unknown strategy {strategy!r}")


def _reason(strategy: str, candidate: Candidate, need: Resources) -> str:
    if strategy == "local-first":
        return "fits on this node" if candidate.local else "this node cannot take it; a neighbour can"
    label = "tightest fit" if strategy == "best-fit" else "most free after placement"
    return f"{label} ({_free_fraction(candidate, need):.0%} left free)"


def plan(need: Need, candidates: list[Candidate], strategy: str) -> Plan:
    """Feasibility, then fit, then rank (see the module's docstring)."""
    passed_over, fitting = [], []
    for position, candidate in enumerate(candidates):
        why = infeasibility(need, candidate)
        if why is not None:
            passed_over.append(Refusal(candidate.node_id, INFEASIBLE, why))
            continue
        why = misfit(need.resources, candidate)
        if why is not None:
            passed_over.append(Refusal(candidate.node_id, NO_ROOM, why))
            continue
        fitting.append((position, candidate))
    ordered = sorted(fitting, key=lambda item: (item[1].holds_sibling,
                                                 *_strategy_key(strategy, item[1], need.resources, item[0])))
    ranked = [Placement(candidate.node_id, candidate.local, strategy, _reason(strategy, candidate, need.resources)
                        + ("; another replica of its deployment is there" if candidate.holds_sibling else ""))
              for _, candidate in ordered]
    return Plan(ranked, passed_over)
