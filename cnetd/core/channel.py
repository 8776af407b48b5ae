"""The API's channel to its node's scheduler: one request per change, over the scheduler's ipc:// socket, and
how long each may take. Reads never go through it."""
from __future__ import annotations

from typing import Any, Callable

from mesh.rpc import request

DELEGATION_BUDGET_S = 30.0  # all of one submission's forwards to neighbours together
# A live scheduler answers at once, or after its forwards; a dead one is told by its connection within
# mesh.rpc.CONNECT_TIMEOUT_S. A submission whose model is fetched first is answered once the fetch is done
# (in a pool thread of the scheduler, which goes on answering others): as long as a service may take to start.
SCHEDULER_TIMEOUT_S = DELEGATION_BUDGET_S + 10.0

Schedule = Callable[..., Any]  # schedule(op, **args): the scheduler's answer, or the CnetError it raised


def submit_timeout_s(health_start_timeout_s: float) -> float:
    return SCHEDULER_TIMEOUT_S + health_start_timeout_s


def scheduler_channel(endpoint: str, health_start_timeout_s: float) -> Schedule:
    """``schedule(op, **args)`` over the scheduler's socket at ``endpoint``."""
    submit_s = submit_timeout_s(health_start_timeout_s)

    def schedule(op: str, **args: Any) -> Any:
        return request(endpoint, op, args, submit_s if op == "submit" else SCHEDULER_TIMEOUT_S)
    return schedule
