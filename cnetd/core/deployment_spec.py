"""What a deployment of replicas asks for: its desired state, as recorded in its ledger record.

A submission's ``replicas``, ``spread``, ``placement``, ``update`` (how a new revision rolls out) and
``reschedule`` (how a failed replica is replaced) make it a deployment. Its record runs no program and holds
nothing; each replica is a workload of its own (an id ``<deployment>-r<N>``), placed, delegated, restarted
and deleted as any other, marked ``replica_of`` and the ``revision`` it runs.

Revisions are numbered from 1 (the submission); ``PATCH`` with a new ``config`` and/or ``requirements``
makes the next one, which the deployment's controller rolls out (``rollout``). The record's own ``config``
and ``requirements`` are the active revision's.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from cnetd.common.errors import Invalid
from cnetd.core.config import MAX_REPLICAS
from ledger.records import Resources, WorkloadRecord

SPREAD_NODE, SPREAD_ANY = "node", "any"
ALL_OR_NOTHING, BEST_EFFORT = "all-or-nothing", "best-effort"
SPREADS, PLACEMENTS = (SPREAD_NODE, SPREAD_ANY), (ALL_OR_NOTHING, BEST_EFFORT)
MAX_DEPLOYMENT_ID = 56  # room for "-r" and a replica's number within a workload id's 63 characters
FIELDS = ("replicas", "autoscale", "spread", "placement", "update", "reschedule")  # a deployment's fields
REVISION_FIELDS = ("config", "requirements", "update")  # what a PATCH that makes a new revision may hold

# A revision's states (the names clients rely on).
ACTIVE, ROLLING_OUT, PENDING, ROLLED_BACK, FAILED, SUPERSEDED = (
    "active", "rolling out", "pending", "rolled back", "failed", "superseded")
REVISION_STATES = (ACTIVE, ROLLING_OUT, PENDING, ROLLED_BACK, FAILED, SUPERSEDED)
MAX_KEPT_REVISIONS = 20  # history shown; older ones (never the active one) are dropped


def _number(section: str, raw: dict[str, Any], name: str, default: float, low: float, high: float,
            whole: bool = False) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and float(value) != int(value)) \
            or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise Invalid(f"{section}.{name}: expected {kind} from {low:g} to {high:g}, got {value!r}")
    return int(value) if whole else float(value)


def _flag(section: str, raw: dict[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise Invalid(f"{section}.{name}: expected true or false, got {value!r}")
    return value


def _section(name: str, raw: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Invalid(f"{name}: expected an object")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise Invalid(f"{name}: unknown field(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return raw


@dataclass(frozen=True)
class UpdatePolicy:
    """How a new revision replaces the running one (Nomad's ``update`` block, in seconds)."""

    max_parallel: int = 1  # new replicas starting at once (each beside the old ones: a surge)
    min_healthy_s: float = 2.0  # a new replica healthy this long counts as healthy (then an old one drains)
    healthy_deadline_s: float = 120.0  # a new replica not healthy this long after its placement fails the rollout
    progress_deadline_s: float = 600.0  # the whole rollout
    canary: int = 0  # new replicas first, beside all the old ones; the rollout then waits for a promote
    auto_promote: bool = False  # ... or goes on once the canaries are healthy
    auto_revert: bool = True  # a failed rollout goes back to the revision before it (else: stops and says so)

    FIELDS = ("max_parallel", "min_healthy_s", "healthy_deadline_s", "progress_deadline_s", "canary",
              "auto_promote", "auto_revert")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def parse(cls, raw: Any, base: UpdatePolicy | None = None) -> UpdatePolicy:
        """``update:`` of a submission or a PATCH (over ``base``, the deployment's policy so far)."""
        given, base = _section("update", raw, cls.FIELDS), base or cls()
        return cls(max_parallel=_number("update", given, "max_parallel", base.max_parallel, 1, MAX_REPLICAS, True),
                   min_healthy_s=_number("update", given, "min_healthy_s", base.min_healthy_s, 0, 3600),
                   healthy_deadline_s=_number("update", given, "healthy_deadline_s", base.healthy_deadline_s, 1, 86400),
                   progress_deadline_s=_number("update", given, "progress_deadline_s", base.progress_deadline_s, 1,
                                               7 * 86400),
                   canary=_number("update", given, "canary", base.canary, 0, MAX_REPLICAS, True),
                   auto_promote=_flag("update", given, "auto_promote", base.auto_promote),
                   auto_revert=_flag("update", given, "auto_revert", base.auto_revert))


@dataclass(frozen=True)
class ReschedulePolicy:
    """How a replica that failed after its restarts is replaced on another node (Nomad's ``reschedule``):
    at most ``attempts`` within ``interval_s``, the first after ``delay_s``, each next one twice as late, up
    to ``max_delay_s``."""

    attempts: int = 5
    interval_s: float = 3600.0
    delay_s: float = 5.0
    max_delay_s: float = 60.0

    FIELDS = ("attempts", "interval_s", "delay_s", "max_delay_s")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def parse(cls, raw: Any) -> ReschedulePolicy:
        given = _section("reschedule", raw, cls.FIELDS)
        base = cls()
        delay = _number("reschedule", given, "delay_s", base.delay_s, 0, 86400)
        policy = cls(attempts=_number("reschedule", given, "attempts", base.attempts, 0, 1000, True),
                     interval_s=_number("reschedule", given, "interval_s", base.interval_s, 1, 30 * 86400),
                     delay_s=delay,  # its max, unless given, is at least the delay
                     max_delay_s=_number("reschedule", given, "max_delay_s", max(base.max_delay_s, delay), 0, 86400))
        if policy.max_delay_s < policy.delay_s:
            raise Invalid("reschedule.max_delay_s: expected at least reschedule.delay_s")
        return policy

    def delay_after(self, recent: int) -> float:
        """The wait before the next replacement, when ``recent`` were made within the interval already."""
        return min(self.max_delay_s, self.delay_s * 2 ** recent)


@dataclass(frozen=True)
class AutoscalePolicy:
    """Replicas that follow the load (Ray Serve's keys, with defaults that react in seconds): the ongoing
    requests per replica, averaged over ``metrics_window_s``, against ``target_ongoing_requests``; more
    replicas once that asked for more for ``upscale_delay_s``, fewer once it asked for fewer for
    ``downscale_delay_s``, within ``min_replicas`` (0: none when idle) and ``max_replicas``."""

    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 2.0
    upscale_delay_s: float = 5.0
    downscale_delay_s: float = 60.0
    metrics_window_s: float = 5.0

    FIELDS = ("min_replicas", "max_replicas", "target_ongoing_requests", "upscale_delay_s", "downscale_delay_s",
              "metrics_window_s")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def parse(cls, raw: Any, base: AutoscalePolicy | None = None) -> AutoscalePolicy:
        """``base``: the policy a change starts from (its max is kept: a min above it is refused); a new
        policy's max is at least its min."""
        given = _section("autoscale", raw if raw is not None else {}, cls.FIELDS)
        low = _number("autoscale", given, "min_replicas", (base or cls()).min_replicas, 0, MAX_REPLICAS, True)
        high = base.max_replicas if base is not None else max(cls.max_replicas, low)
        base = base or cls()
        policy = cls(min_replicas=low,
                     max_replicas=_number("autoscale", given, "max_replicas", high, 1, MAX_REPLICAS, True),
                     target_ongoing_requests=_number("autoscale", given, "target_ongoing_requests",
                                                     base.target_ongoing_requests, 0.01, 10_000),
                     upscale_delay_s=_number("autoscale", given, "upscale_delay_s", base.upscale_delay_s, 0, 3600),
                     downscale_delay_s=_number("autoscale", given, "downscale_delay_s", base.downscale_delay_s, 0,
                                               86400),
                     metrics_window_s=_number("autoscale", given, "metrics_window_s", base.metrics_window_s, 0.5,
                                              3600))
        if policy.min_replicas > policy.max_replicas:
            raise Invalid(f"autoscale.min_replicas: {policy.min_replicas} is more than autoscale.max_replicas "
                          f"({policy.max_replicas})")
        return policy


@dataclass(frozen=True)
class Revision:
    revision: int
    state: str
    created_at: float
    config: dict[str, Any]
    requirements: dict[str, Any]
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DeploymentSpec:
    replicas: int
    spread: str = SPREAD_NODE  # "node": replicas of one deployment on distinct nodes when possible
    placement: str = ALL_OR_NOTHING  # when not all fit at submission: refuse all, or run what fits
    reschedules: int = 0  # replicas replaced after they failed or their node was lost
    next_index: int = 0  # the number the next replica's id takes
    revision: int = 1  # the active revision
    revisions: list[dict[str, Any]] = field(default_factory=list)  # Revision.to_dict(), oldest first
    update: dict[str, Any] = field(default_factory=lambda: UpdatePolicy().to_dict())
    reschedule: dict[str, Any] = field(default_factory=lambda: ReschedulePolicy().to_dict())
    rollout: dict[str, Any] | None = None  # under way: {revision, started_at, promoted, undo}
    rescheduled_at: list[float] = field(default_factory=list)  # recent reschedules (within the policy's interval)
    deleting: bool = False  # DELETE asked: the controller deletes its replicas, then the record
    autoscale: dict[str, Any] | None = None  # {policy: AutoscalePolicy, signal, decision, history, limited}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, record: WorkloadRecord) -> DeploymentSpec:
        assert record.deployment is not None
        known = {item.name for item in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in record.deployment.items() if name in known})

    @property
    def update_policy(self) -> UpdatePolicy:
        return UpdatePolicy(**self.update)

    @property
    def reschedule_policy(self) -> ReschedulePolicy:
        return ReschedulePolicy(**self.reschedule)

    @property
    def autoscale_policy(self) -> AutoscalePolicy | None:
        return AutoscalePolicy(**self.autoscale["policy"]) if self.autoscale else None

    @property
    def target(self) -> int:
        """The revision replicas are placed with now: the rollout's, or the active one."""
        return self.rollout["revision"] if self.rollout else self.revision

    def revision_of(self, number: int, record: WorkloadRecord) -> Revision:
        """Revision ``number``; a record from before revisions were kept is its own revision 1."""
        for item in self.revisions:
            if item["revision"] == number:
                return Revision(**item)
        return Revision(number, ACTIVE, record.created_at, record.config, record.requirements.to_dict())

    def with_revision_state(self, number: int, state: str, reason: str = "") -> DeploymentSpec:
        return dataclasses.replace(self, revisions=[
            {**item, "state": state, "reason": reason} if item["revision"] == number else item
            for item in self.revisions])


def replica_count(raw: Any) -> int:
    """A whole number (2.0 is one, as JSON Schema has it) from 1 to ``MAX_REPLICAS``."""
    whole = isinstance(raw, int) or (isinstance(raw, float) and raw.is_integer())
    if isinstance(raw, bool) or not whole or not 1 <= raw <= MAX_REPLICAS:
        raise Invalid(f"replicas: expected a whole number from 1 to {MAX_REPLICAS}, got {raw!r}")
    return int(raw)


def parse_spec(body: dict[str, Any], workload_id: str, config: dict[str, Any],
               requirements: Resources) -> DeploymentSpec | None:
    """The deployment a submission asks for, or None for a single workload (no ``replicas`` or ``autoscale``
    field). An autoscaled one starts with ``min_replicas`` (at least one: its first start checks it)."""
    if "replicas" not in body and "autoscale" not in body:
        extra = [name for name in FIELDS if name in body]
        if extra:
            raise Invalid(f"{', '.join(extra)}: only with replicas or autoscale")
        return None
    if "replicas" in body and "autoscale" in body:
        raise Invalid("replicas: not with autoscale, which sets the count (its min_replicas and max_replicas bound it)")
    autoscale = AutoscalePolicy.parse(body["autoscale"]) if "autoscale" in body else None
    spread, placement = body.get("spread", SPREAD_NODE), body.get("placement", ALL_OR_NOTHING)
    if spread not in SPREADS:
        raise Invalid(f"spread: expected one of {', '.join(SPREADS)}, got {spread!r}")
    if placement not in PLACEMENTS:
        raise Invalid(f"placement: expected one of {', '.join(PLACEMENTS)}, got {placement!r}")
    if len(workload_id) > MAX_DEPLOYMENT_ID:
        raise Invalid(f"id: a deployment's id has at most {MAX_DEPLOYMENT_ID} characters (its replicas add theirs)")
    first = Revision(1, ACTIVE, time.time(), config, requirements.to_dict())
    replicas = max(1, autoscale.min_replicas) if autoscale else replica_count(body["replicas"])
    return DeploymentSpec(replicas, spread, placement, revisions=[first.to_dict()],
                          update=UpdatePolicy.parse(body.get("update")).to_dict(),
                          reschedule=ReschedulePolicy.parse(body.get("reschedule")).to_dict(),
                          autoscale={"policy": autoscale.to_dict(), "signal": 0.0, "decision": None, "history": [],
                                     "limited": None} if autoscale else None)


def replica_prefix(deployment_id: str) -> str:
    """What the ids of a deployment's replicas begin with (others' may too: ``replica_of`` tells)."""
    return f"{deployment_id}-r"


def replica_record(deployment: WorkloadRecord, index: int, revision: int | None = None) -> WorkloadRecord:
    """Replica number ``index`` of ``deployment``, of ``revision`` (the one it places with now when not
    given): that revision's request as the user sent it, under its own id."""
    spec = DeploymentSpec.of(deployment)
    chosen = spec.revision_of(revision or spec.target, deployment)
    return WorkloadRecord(id=f"{replica_prefix(deployment.id)}{index}", type=deployment.type, name=deployment.name,
                          config=chosen.config, requirements=Resources.from_dict(chosen.requirements),
                          fingerprint=deployment.fingerprint, replica_of=deployment.id,
                          constraints=deployment.constraints, revision=chosen.revision)
