"""Delegation from the API: forward a workload to the neighbours the scheduler ranked, falling back in order.

The forward carries the same workload id (a retried forward runs nothing twice) and the list of nodes
already visited (the receiving scheduler refuses loops and too many hops).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from cnetd.errors import InsufficientResources, Invalid, Unavailable
from cnetd.httpclient import TimedOut, Unreachable, auth_headers, call
from cnetd.metrics import DELEGATIONS
from ledger.records import WorkloadRecord

FORWARD_TIMEOUT_S = 30.0
Schedule = Callable[..., Any]


def parse_visited(delegation: Any) -> list[str]:
    """The ``delegation`` field of a forwarded submission: ``{"visited": [node ids]}``."""
    visited = delegation.get("visited") if isinstance(delegation, dict) else None
    if not isinstance(visited, list) or not all(isinstance(node_id, str) for node_id in visited):
        raise Invalid("delegation.visited: expected a list of node ids")
    return visited


def forward_body(record: WorkloadRecord, visited: list[str]) -> dict[str, Any]:
    return {"id": record.id, "type": record.type, "name": record.name, "config": record.config,
            "requirements": record.requirements.to_dict(), "delegation": {"visited": visited}}


def submit(record: WorkloadRecord, visited: list[str], node_id: str, schedule: Schedule,
           token: str | None) -> dict[str, Any]:
    """Run ``record`` here or on the first neighbour that takes it; returns the record of where it runs."""
    decision = schedule("submit", workload=record.to_dict(), visited=visited)
    if "placed" in decision:
        return decision["placed"]
    body = forward_body(record, [*visited, node_id])
    refusals: list[dict[str, Any]] = []
    headers = auth_headers(token)
    for target in decision["delegate"]:
        answer = _forward(target, body, refusals, headers)
        if answer is not None:
            pointer = dataclasses.replace(
                record, status=answer.get("status", ""), node=answer.get("node", target["node_id"]),
                endpoint=answer.get("endpoint"), process_pid=answer.get("process_pid"),
                placement=target["placement"], delegated_to=target["node_id"], remote_api=target["api_url"])
            schedule("record_pointer", workload=pointer.to_dict())
            return answer
    if decision["local_fits"]:
        DELEGATIONS.labels("fell_back_local").inc()
        return schedule("submit", workload=record.to_dict(), visited=visited, local_only=True)["placed"]
    DELEGATIONS.labels("no_node_fits").inc()
    reasons = "; ".join(f"{refusal['node']}: {refusal['message']}" for refusal in refusals)
    raise InsufficientResources(f"no node could take this workload ({reasons})",
                                requested=record.requirements.to_dict(), refused=refusals)


def _forward(target: dict[str, Any], body: dict[str, Any], refusals: list[dict[str, Any]],
             headers: dict[str, str]) -> dict[str, Any] | None:
    url = f"{target['api_url']}/api/workloads"
    for attempt in (1, 2):
        try:
            status, answer = call("POST", url, body, timeout_s=FORWARD_TIMEOUT_S, headers=headers)
        except Unreachable as exc:
            DELEGATIONS.labels("unreachable").inc()
            refusals.append({"node": target["node_id"], "status": None, "error": "unreachable", "message": str(exc)})
            return None
        except TimedOut:
            DELEGATIONS.labels("timed_out").inc()
            if attempt == 2:  # it may be running there: do not start it anywhere else
                raise Unavailable(f"{target['node_id']} did not answer the forward of workload {body['id']}; "
                                  f"it may be running there", node=target["node_id"]) from None
            continue  # the same id again: the target runs it at most once
        if status == 201 and isinstance(answer, dict):
            DELEGATIONS.labels("delegated").inc()
            return answer
        DELEGATIONS.labels("refused").inc()
        answer = answer if isinstance(answer, dict) else {}
        refusals.append({"node": target["node_id"], "status": status, "error": answer.get("error", "refused"),
                         "message": answer.get("message", f"HTTP {status}")})
        return None
    return None
