"""How many replicas an autoscaled deployment wants now, as a pure function of what its endpoint carried.

The signal is the requests the deployment's endpoint has in flight (``cnet_deployment_ongoing_requests``:
the balancer's, in every API process of the node that owns the deployment, held requests of a deployment at
zero included), sampled each round and averaged over ``metrics_window_s``. The balancer sees every request
that goes through the deployment's endpoint, wherever its replicas run, queued or executing, and the
requests waiting for a first replica; a service's own gauge (``cnet_service_ongoing_requests``) sees only
the requests its request threads hold (as many as its cores), and reading it across hops would cost a
request per replica per round.

Hysteresis, as Ray Serve's: the count moves up once the average asked for more throughout
``upscale_delay_s``, down once it asked for fewer throughout ``downscale_delay_s``; from zero at once (a
request is waiting). A count that resources cannot meet is not asked again and again: the deployment is
marked limited, and the count stays.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from cnetd.core.deployment_spec import AutoscalePolicy, DeploymentSpec
from ledger.records import WorkloadRecord

MAX_HISTORY = 20


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic
    ongoing: float  # requests in flight through the deployment's endpoint


@dataclass
class ScaleState:
    """What the controller remembers of a deployment between rounds."""

    samples: list[Sample] = field(default_factory=list)
    mean: float = 0.0  # the last round's average over the window (the signal shown)
    wanting_more_since: float | None = None
    wanting_fewer_since: float | None = None
    from_zero_at: float | None = None  # wall time of a decision up from zero, until a replica serves


@dataclass(frozen=True)
class ScaleDecision:
    to: int
    reason: str


def average(samples: list[Sample], now: float, window_s: float) -> float:
    recent = [sample.ongoing for sample in samples if now - sample.at <= window_s]
    return sum(recent) / len(recent) if recent else 0.0


def wanted(policy: AutoscalePolicy, ongoing: float) -> int:
    """Replicas that would carry ``ongoing`` requests at the target each, within the bounds."""
    return max(policy.min_replicas, min(policy.max_replicas, math.ceil(ongoing / policy.target_ongoing_requests)))


def decide_scale(policy: AutoscalePolicy, state: ScaleState, sample: Sample, current: int,
                 ceiling: int | None = None) -> ScaleDecision | None:
    """Take this round's sample; a new count when the policy's delays say so, else None. ``ceiling``: the
    count no node had room beyond (a resource-limited deployment is not asked for more until there is room)."""
    now = sample.at
    state.samples = [kept for kept in state.samples if now - kept.at <= policy.metrics_window_s] + [sample]
    state.mean = mean = average(state.samples, now, policy.metrics_window_s)
    goal = wanted(policy, mean) if ceiling is None else min(wanted(policy, mean), max(ceiling, current))
    if current == 0 and sample.ongoing > 0 and ceiling != 0:  # a request waits for a first replica: no delay
        state.wanting_more_since = state.wanting_fewer_since = None
        return ScaleDecision(max(1, goal), f"{sample.ongoing:g} request(s) waiting at zero replicas")
    if goal > current:
        state.wanting_fewer_since = None
        state.wanting_more_since = state.wanting_more_since if state.wanting_more_since is not None else now
        if now - state.wanting_more_since >= policy.upscale_delay_s:
            state.wanting_more_since = None
            return ScaleDecision(goal, f"{mean:.2f} ongoing requests over {policy.metrics_window_s:g} s, target "
                                       f"{policy.target_ongoing_requests:g} per replica")
        return None
    if goal < current:
        state.wanting_more_since = None
        state.wanting_fewer_since = state.wanting_fewer_since if state.wanting_fewer_since is not None else now
        if now - state.wanting_fewer_since >= policy.downscale_delay_s:
            state.wanting_fewer_since = None
            return ScaleDecision(goal, f"{mean:.2f} ongoing requests over {policy.metrics_window_s:g} s for "
                                       f"{policy.downscale_delay_s:g} s, target {policy.target_ongoing_requests:g} "
                                       "per replica")
        return None
    state.wanting_more_since = state.wanting_fewer_since = None
    return None


def autoscaled(shown: dict[str, Any], decision: ScaleDecision | None) -> Callable[[WorkloadRecord], WorkloadRecord]:
    """A ledger change: the deployment's autoscale state with ``shown`` (signal, limit, policy, cold start)
    and, with a decision, its new count, the decision and its history."""
    def change(record: WorkloadRecord) -> WorkloadRecord:
        spec = DeploymentSpec.of(record)
        autoscale, replicas = {**spec.autoscale, **shown}, spec.replicas
        if decision is not None:
            made = {"at": time.time(), "from": spec.replicas, "to": decision.to, "reason": decision.reason}
            autoscale = {**autoscale, "decision": made, "history": [*autoscale["history"], made][-MAX_HISTORY:]}
            replicas = decision.to
        return dataclasses.replace(record, deployment={**spec.to_dict(), "replicas": replicas, "autoscale": autoscale})
    return change
