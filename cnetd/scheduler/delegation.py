"""Delegation, owned by the scheduler: forward a workload to ranked neighbours and settle unknown outcomes.

Every step is recorded before it is taken. The origin's pointer is written as ``delegating`` (naming the
target) before a forward leaves, and re-pointed before the next target is tried. A forward ends in one of
three ways: admitted (the pointer takes the target's answer), refused for sure (the next target is
tried), or unknown (a timeout, a lost answer, a target that itself does not know): then the pointer is
``unknown`` and nothing else is tried, for the workload may run there. Settling asks the target about
that forward by its ``attempt``; the target answers with its record, says it is still settling, or fences
the attempt off (so the forward, should it still arrive, is refused) and says it is not there.

Timeouts, which agree along a path: a forwarded submission is answered at admission (the entry node
follows readiness afterwards), each forward waits at most ``FORWARD_TIMEOUT_S``, one submission's
forwards together at most ``DELEGATION_BUDGET_S``, and each hop passes on its budget less
``HOP_MARGIN_S``, so an inner hop always gives up before the hop that waits for it.

These functions run in the scheduler's pool threads; ledger writes are their only shared state.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from cnetd.common.errors import DelegationUnknown
from cnetd.common.httpclient import TimedOut, Unreachable, call
from cnetd.common.logs import workload_fields
from cnetd.core.counters import DELEGATIONS
from cnetd.scheduler.refusals import UNREACHABLE, Refusal, kind_of_code
from ledger.records import Status, WorkloadRecord
from ledger.store import Ledger

log = logging.getLogger("delegation")
FORWARD_TIMEOUT_S = 15.0
HOP_MARGIN_S = 2.0
MIN_FORWARD_S = 1.0  # less budget than this left: the remaining targets are not tried
SETTLE_INTERVAL_S = 1.0



@dataclass(frozen=True)
class Target:
    node_id: str
    api_url: str
    placement: dict[str, Any]


@dataclass
class Outcome:
    """How a delegation ended: ``answer`` (the target's 201 body) with the pointer, or refusals, or unknown."""

    pointer: WorkloadRecord | None = None
    answer: dict[str, Any] | None = None
    refusals: list[Refusal] = field(default_factory=list)
    unknown: str | None = None


def forward_body(record: WorkloadRecord, visited: list[str], budget_s: float, settle: bool = False) -> dict[str, Any]:
    return {"id": record.id, "type": record.type, "name": record.name, "config": record.config,
            "requirements": record.requirements.to_dict(),
            **({"constraints": record.constraints} if record.constraints else {}),
            "delegation": {"visited": visited, "attempt": record.delegation_attempt, "budget_s": round(budget_s, 3),
                           "settle": settle}}


class Delegator:
    """Forwards and settles this node's delegations through its neighbours' APIs."""

    def __init__(self, ledger: Ledger, node_id: str, headers: dict[str, str]) -> None:
        self._ledger = ledger
        self._node_id = node_id
        self._headers = headers

    def forward(self, pointer: WorkloadRecord, targets: list[Target], visited: list[str], budget_s: float) -> Outcome:
        """Try ``targets`` in order; ``pointer`` is already recorded, pointing at the first. Refused by all, the
        pointer stays for the scheduler's serial thread to remove as it decides what comes next."""
        deadline = time.monotonic() + budget_s
        refusals: list[Refusal] = []
        for index, target in enumerate(targets):
            left_s = deadline - time.monotonic()
            if left_s < MIN_FORWARD_S:
                refusals.extend(Refusal(skipped.node_id, UNREACHABLE, "not tried: the delegation's time ran out")
                                for skipped in targets[index:])
                break
            if index:  # record, then act: the pointer names the node the forward goes to
                pointer = self._ledger.update(pointer.id, _point_at(target))
            body = forward_body(pointer, [*visited, self._node_id], max(0.0, left_s - HOP_MARGIN_S))
            answered = self._send(target, body, min(FORWARD_TIMEOUT_S, left_s))
            if isinstance(answered, Refusal):
                refusals.append(answered)
                DELEGATIONS.labels("unreachable" if answered.kind == UNREACHABLE else "refused").inc()
                continue
            if isinstance(answered, str):
                DELEGATIONS.labels("unknown").inc()
                log.warning("forward to %s has no known outcome (%s): settling it", target.node_id, answered,
                            extra=workload_fields(pointer.id))
                self._ledger.update(pointer.id, _unknown(answered))
                return Outcome(unknown=f"{target.node_id}: {answered}", refusals=refusals)
            DELEGATIONS.labels("delegated").inc()
            return Outcome(pointer=self._ledger.update(pointer.id, _admitted(answered)), answer=answered)
        return Outcome(refusals=refusals)  # refused everywhere: its pointer goes as the scheduler goes on

    def settle(self, pointer: WorkloadRecord) -> None:
        """Ask the target of an ``unknown`` pointer what became of its forward, and record the answer."""
        body = forward_body(pointer, [self._node_id], 0.0, settle=True)
        try:
            status, answer = call("POST", f"{pointer.remote_api}/api/workloads", body,
                                  timeout_s=FORWARD_TIMEOUT_S, headers=self._headers)
        except (Unreachable, TimedOut):
            return  # asked again at the next round
        if status == 201 and isinstance(answer, dict):
            self._ledger.update(pointer.id, _admitted(answer))
            log.info("settled: runs on %s", pointer.delegated_to, extra=workload_fields(pointer.id))
        elif status == 404:
            self._ledger.remove(pointer.id)
            log.info("settled: the forward never took effect on %s; nothing runs", pointer.delegated_to,
                     extra=workload_fields(pointer.id))

    def _send(self, target: Target, body: dict[str, Any], timeout_s: float) -> dict[str, Any] | Refusal | str:
        """The target's 201 answer, a refusal that is certain, or why the outcome is unknown."""
        try:
            status, answer = call("POST", f"{target.api_url}/api/workloads", body, timeout_s=timeout_s,
                                  headers=self._headers)
        except Unreachable as exc:
            return f"the answer was lost ({exc})" if exc.delivered else Refusal(target.node_id, UNREACHABLE, str(exc))
        except TimedOut as exc:
            return str(exc)
        answer = answer if isinstance(answer, dict) else {}
        if status == 201:
            return answer
        code, message = answer.get("error", ""), answer.get("message", f"HTTP {status}")
        if status == 503 and code == "scheduler_unavailable" and answer.get("delivered") is False:
            return Refusal(target.node_id, UNREACHABLE, message, status)  # it never reached that scheduler
        if status == 503 and code == "unavailable" and isinstance(answer.get("refused"), list):
            return Refusal(target.node_id, UNREACHABLE, message, status)  # every node it tried refused: let go there
        if 400 <= status < 500 and status not in (408, 429):
            return Refusal(target.node_id, kind_of_code(code), message, status)
        return f"HTTP {status}: {message}"


def _point_at(target: Target) -> Any:
    def change(record: WorkloadRecord) -> WorkloadRecord:
        return dataclasses.replace(record, delegated_to=target.node_id, remote_api=target.api_url,
                                   node=target.node_id, placement=target.placement)
    return change


def _unknown(reason: str) -> Any:
    def change(record: WorkloadRecord) -> WorkloadRecord:
        return dataclasses.replace(record, status=Status.UNKNOWN,
                                   message=f"the forward to {record.delegated_to} has no known outcome ({reason}); "
                                           "settling it with that node")
    return change


def _admitted(answer: dict[str, Any]) -> Any:
    """The pointer takes what the target said of the workload (the origin keeps its own placement)."""
    def change(record: WorkloadRecord) -> WorkloadRecord:
        return dataclasses.replace(record, status=answer.get("status", Status.RUNNING),
                                   node=answer.get("node") or record.delegated_to or "",
                                   endpoint=answer.get("endpoint"), process_pid=answer.get("process_pid"),
                                   message=answer.get("message", ""), started_at=answer.get("started_at"))
    return change


def pending_error(record: WorkloadRecord) -> DelegationUnknown:
    return DelegationUnknown(f"workload {record.id} is being delegated to {record.delegated_to}; its outcome is "
                             f"not known yet (GET /api/workloads/{record.id} shows it once settled)",
                             node=record.delegated_to, id=record.id)
