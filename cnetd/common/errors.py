"""Domain errors, one class per failure kind, each knowing its HTTP status and error code."""
from __future__ import annotations

import errno
from typing import Any


class CnetError(Exception):
    """Base of every error a user may see: rendered as ``{"error": code, "message": …, **details}``."""

    status = 500
    code = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class Invalid(CnetError):
    status = 400
    code = "invalid_request"


class Unprocessable(CnetError):
    """Well-formed (the API's schema admits it) but not something that can be acted on: bytes that do not
    decode as an image, two files of one upload at one name. 400 is kept for what the schema itself refuses."""

    status = 422
    code = "unprocessable"


class Unauthorized(CnetError):
    status = 401
    code = "unauthorized"


class NotFound(CnetError):
    status = 404
    code = "not_found"


class DelegationRefused(CnetError):
    """A forwarded workload that would loop back or travel too far."""

    status = 409
    code = "delegation_refused"


class InsufficientResources(CnetError):
    status = 409
    code = "insufficient_resources"


class Conflict(CnetError):
    """A change that would take over what another party holds (a live neighbour's node-table entry)."""

    status = 409
    code = "conflict"


class IncompatibleVersion(CnetError):
    """A node of another protocol major (``cnetd.common.protocol``): it cannot be worked with."""

    status = 409
    code = "incompatible_version"


class DataNotStoppable(CnetError):
    """Data runs nothing: it is deleted, never stopped (which would free storage its bytes still use)."""

    status = 409
    code = "data_not_stoppable"


class NotRunning(CnetError):
    """An action that needs a running workload (a prediction) on one that is not."""

    status = 409
    code = "not_running"


class NotAService(CnetError):
    """An action only a service has (a prediction) asked of a workload of another type."""

    status = 409
    code = "not_a_service"


class RequestTimeout(CnetError):
    """The client did not send its whole request by its deadline (api.client_timeout_s, api.client_min_rate_bytes_s)."""

    status = 408
    code = "request_timeout"


class LengthRequired(CnetError):
    status = 411
    code = "length_required"


class PayloadTooLarge(CnetError):
    status = 413
    code = "payload_too_large"


class InsufficientStorage(CnetError):
    """The node's disk filled up while it wrote: its data disk (its storage ledger had room: other files used the
    disk), or the one its ledger is on."""

    status = 507
    code = "insufficient_storage"


def disk_full(exc: BaseException) -> bool:
    """``exc`` says a write found its disk full (or its user's quota there used up)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class Unavailable(CnetError):
    status = 503
    code = "unavailable"


class SchedulerUnavailable(Unavailable):
    """The node's scheduler is down or restarting; ``delivered`` says whether it may have acted."""

    code = "scheduler_unavailable"


class NodeStopping(Unavailable):
    """supervisord is shutting down (the node is stopping, or restarting): it starts nothing more. Not the
    workload's failure: what was to start then is started by the node's next run."""

    code = "node_stopping"


class DelegationUnknown(Unavailable):
    """A forward got no clear answer: the workload may run on the target. The origin keeps an ``unknown``
    pointer and settles it with the target; it is never started anywhere else meanwhile."""

    code = "delegation_unknown"


class DelegationPending(CnetError):
    """An action on a workload whose delegation is still being settled."""

    status = 409
    code = "delegation_pending"


def _kinds(base: type[CnetError]) -> list[type[CnetError]]:
    return [kind for sub in base.__subclasses__() for kind in (sub, *_kinds(sub))]


_BY_CODE = {kind.code: kind for kind in _kinds(CnetError)}


def error_from_dict(body: dict[str, Any]) -> CnetError:
    """Rebuild an error that crossed a process boundary as ``to_dict()`` output."""
    body = dict(body)
    cls = _BY_CODE.get(body.pop("error", ""), CnetError)
    return cls(str(body.pop("message", "error")), **body)
