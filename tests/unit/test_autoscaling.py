"""The autoscaler alone (no process): what an ``autoscale:`` submission may ask for, and the decision
function: a window of signals gives the right count, with hysteresis (delays up and down), from zero at
once, and never beyond what resources allowed."""
from __future__ import annotations

import pytest

from cnetd.common.errors import Invalid
from cnetd.core.deployment_spec import AutoscalePolicy, DeploymentSpec
from cnetd.core.submission import parse_submission
from cnetd.scheduler.deployments.autoscaling import Sample, ScaleState, decide_scale, wanted

pytestmark = pytest.mark.unit
FACES = {"type": "opencv", "config": {"cascade_type": "face"}, "requirements": {"cpu": 1}}
QUICK = AutoscalePolicy(min_replicas=1, max_replicas=3, target_ongoing_requests=2, upscale_delay_s=2,
                        downscale_delay_s=10, metrics_window_s=4)


def run(policy: AutoscalePolicy, signals: list[tuple[float, float]], current: int,
        ceiling: int | None = None) -> list[tuple[float, int]]:
    """Feed (time, ongoing) samples, applying each decision as the controller does: [(time, new count)]."""
    state, decisions = ScaleState(), []
    for at, ongoing in signals:
        decision = decide_scale(policy, state, Sample(at, ongoing), current, ceiling)
        if decision is not None:
            current = decision.to
            decisions.append((at, decision.to))
    return decisions


def every(step: float, start: float, end: float, ongoing: float) -> list[tuple[float, float]]:
    count = round((end - start) / step)
    return [(start + index * step, ongoing) for index in range(count)]


def test_an_autoscale_submission_is_a_deployment_with_defaults_that_react_in_seconds() -> None:
    spec = DeploymentSpec.of(parse_submission({**FACES, "id": "faces", "autoscale": {}}))
    policy = spec.autoscale_policy
    assert (policy.metrics_window_s, policy.upscale_delay_s, policy.downscale_delay_s,
            policy.target_ongoing_requests) == (5, 5, 60, 2)
    assert spec.replicas == 1 and spec.autoscale["history"] == [] and spec.autoscale["limited"] is None
    from_zero = DeploymentSpec.of(parse_submission({**FACES, "autoscale": {"min_replicas": 0, "max_replicas": 2}}))
    assert from_zero.replicas == 1  # its first start checks it; idle, it goes to zero after the downscale delay
    at_two = DeploymentSpec.of(parse_submission({**FACES, "autoscale": {"min_replicas": 2}, "spread": "any"}))
    assert (at_two.replicas, at_two.autoscale_policy.max_replicas, at_two.spread) == (2, 4, "any")
    assert DeploymentSpec.of(parse_submission({**FACES, "replicas": 2})).autoscale is None


@pytest.mark.parametrize("fields, says", [
    ({"autoscale": {"min_replicas": 3, "max_replicas": 2}}, "autoscale.min_replicas: 3 is more than"),
    ({"autoscale": {"min_replicas": -1}}, "autoscale.min_replicas"),
    ({"autoscale": {"max_replicas": 0}}, "autoscale.max_replicas"),
    ({"autoscale": {"max_replicas": 10_000}}, "autoscale.max_replicas"),
    ({"autoscale": {"target_ongoing_requests": 0}}, "autoscale.target_ongoing_requests"),
    ({"autoscale": {"target_ongoing_requests": -2}}, "autoscale.target_ongoing_requests"),
    ({"autoscale": {"upscale_delay_s": "soon"}}, "autoscale.upscale_delay_s"),
    ({"autoscale": {"downscale_delay_s": 1e9}}, "autoscale.downscale_delay_s"),
    ({"autoscale": {"metrics_window_s": 0}}, "autoscale.metrics_window_s"),
    ({"autoscale": {"react": "fast"}}, "autoscale: unknown field"),
    ({"autoscale": [1, 3]}, "autoscale"),
    ({"autoscale": {}, "replicas": 2}, "replicas: not with autoscale"),
])
def test_an_autoscale_asks_only_for_what_can_be(fields: dict, says: str) -> None:
    with pytest.raises(Invalid, match=says):
        parse_submission({**FACES, **fields})


def test_a_type_without_replicas_cannot_autoscale() -> None:
    with pytest.raises(Invalid, match="autoscale: a process workload has no replicas"):
        parse_submission({"type": "process", "config": {"command": "sleep"}, "autoscale": {}})


def test_a_patch_changes_the_keys_given_and_keeps_the_rest() -> None:
    changed = AutoscalePolicy.parse({"max_replicas": 6}, QUICK)
    assert (changed.min_replicas, changed.max_replicas, changed.upscale_delay_s) == (1, 6, 2)
    with pytest.raises(Invalid, match="min_replicas: 4 is more than"):
        AutoscalePolicy.parse({"min_replicas": 4}, QUICK)


def test_the_count_carries_the_load_at_the_target_within_the_bounds() -> None:
    assert [wanted(QUICK, ongoing) for ongoing in (0, 0.5, 2, 2.1, 4, 5.9, 100)] == [1, 1, 1, 2, 2, 3, 3]
    assert wanted(AutoscalePolicy(min_replicas=0, max_replicas=3), 0) == 0


def test_more_replicas_once_the_load_asked_for_them_throughout_the_upscale_delay() -> None:
    signals = every(0.5, 0, 10, 1) + every(0.5, 10, 20, 12)  # a step from 1 to 12 ongoing at t=10
    decisions = run(QUICK, signals, 1)
    assert len(decisions) == 1 and decisions[0][1] == 3, decisions  # 12 ongoing: straight to 3 (the max)
    assert 12 <= decisions[0][0] <= 12.5, decisions  # the delay (2 s) after the average first rose


def test_a_burst_shorter_than_the_upscale_delay_changes_nothing() -> None:
    spike = every(0.5, 0, 5, 0) + [(5.0, 12.0)] + every(0.5, 5.5, 30, 0)
    assert run(QUICK, spike, 1) == []  # the average rose for less than 2 s, then fell back to the target


def test_fewer_replicas_only_after_the_downscale_delay_and_a_dip_resets_it() -> None:
    busy_then_idle = every(0.5, 0, 5, 6) + every(0.5, 5, 40, 0)
    decisions = run(QUICK, busy_then_idle, 3)
    assert len(decisions) == 1 and decisions[0][1] == 1, decisions
    assert decisions[0][0] >= 5 + 10, decisions  # not before the downscale delay (10 s) once the load fell
    # load that comes back before the delay is over restarts it: no decision within 10 s of the last busy round
    wavering = every(0.5, 0, 6, 0) + every(0.5, 6, 12, 12) + every(0.5, 12, 20, 0)
    assert run(QUICK, wavering, 3) == []
    assert run(QUICK, every(0.5, 0, 20, 0), 3) == [(10.0, 1)]  # control: idle throughout, down at 10 s


def test_steady_load_makes_no_decisions() -> None:
    steady = every(0.5, 0, 600, 4)  # ten minutes at exactly 2 replicas' worth
    assert run(QUICK, steady, 2) == []


def test_a_request_at_zero_replicas_gets_one_at_once() -> None:
    policy = AutoscalePolicy(min_replicas=0, max_replicas=3, upscale_delay_s=30, downscale_delay_s=5)
    idle = every(0.5, 0, 10, 0)
    decisions = run(policy, idle + [(10.0, 1.0)], 1)
    assert decisions == [(5.0, 0), (10.0, 1)], decisions  # to zero after 5 s idle; the first request: 1, no delay


def test_a_limited_deployment_is_not_asked_for_more_until_there_is_room() -> None:
    busy = every(0.5, 0, 60, 12)
    assert run(QUICK, busy, 2, ceiling=2) == []  # no flapping: resources allow 2, it stays there
    assert run(QUICK, busy, 2)[0][1] == 3  # control: without the ceiling it asks for the max
    assert run(AutoscalePolicy(min_replicas=0), [(0.0, 3.0)], 0, ceiling=0) == []  # no room for even one
