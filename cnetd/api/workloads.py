"""The workload API: list, submit (following a service to readiness), show, stop, delete, logs."""
from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any, Callable

import falcon

from cnetd.api import uploads
from cnetd.api.base import Resource, settled
from cnetd.api.limits import LOG_CHUNK_MAX_BYTES, LOG_OFFSET_MAX, LOG_STREAMS, LOG_TAIL_DEFAULT, LOG_TAIL_MAX
from cnetd.common.errors import CnetError, Invalid, NotFound
from cnetd.common.web import read_json, send
from cnetd.core.deployment_spec import REVISION_FIELDS, replica_count
from cnetd.core.deployment_state import starting_replicas
from cnetd.core.channel import DELEGATION_BUDGET_S
from cnetd.api.logtail import read_from, tail_lines
from cnetd.api.paging import (newest_first, page_and_next, page_size, page_start, position_token, read_position,
                              workload_position)
from cnetd.core.model_records import MODEL_TYPE
from cnetd.core.submission import Delegation, inline_detector, parse_delegation, parse_submission, with_detector
from ledger.records import Status, WorkloadRecord

READY_POLL_S, REMOTE_READY_POLL_S = 0.05, 0.05
READY_MARGIN_S = 5.0  # past health.start_timeout_s the health checks have failed it: its status is final
DEPLOYMENT_ACTION_WAIT_S = 30.0  # a deployment's stop or delete is answered once done, or after this


class Workloads(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Oldest first (``reverse=true``: newest first), filtered; with ``limit``, one page, and ``next`` to pass
        as ``after`` for the one after. Only the page's records are made and viewed (a delegated one's view costs
        a request to its next hop); with a ``status`` filter, the next records are viewed until the page is
        full."""
        status, types, ids = req.get_param("status"), req.get_param("type"), req.get_param("ids")
        limit, start = page_size(req), read_position(page_start(req, "a listing's next (TIME/ID)"))
        wanted, wanted_types = (set(given.split(",")) if given else None for given in (ids, types))

        def listed(stored: dict[str, Any]) -> bool:  # a deployment's replicas are shown within it, or by id
            return (stored["type"] != MODEL_TYPE
                    and (stored["id"] in wanted if wanted is not None else stored.get("replica_of") is None)
                    and (wanted_types is None or stored["type"] in wanted_types))

        records = self.deps.ledger.in_order(where=listed, after=start, newest_first=newest_first(req))
        page: list[tuple[WorkloadRecord, dict[str, Any]]] = []
        while chunk := list(itertools.islice(records, None if limit is None else limit + 1 - len(page))):
            page += [(record, view) for record, view in zip(chunk, self.views(chunk))
                     if status is None or view["status"] == status]
            if limit is None or len(page) > limit:  # one more than the page: there is a next
                break
        page, after = page_and_next(page, limit, lambda entry: position_token(workload_position(entry[0])))
        send(resp, {"workloads": [view for _, view in page], "count": len(page), "next": after})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if (req.content_type or "").lower().startswith(falcon.MEDIA_MULTIPART):
            send(resp, uploads.receive(req, self.deps.config.node_id, self.data_root, self.deps.catalog, self.schedule,
                                       self.context.workload_user), 201)
            return
        body = read_json(req, self.deps.config.api_max_body_bytes)
        # Set by a delegating node only; parse_submission refuses a body that is not an object.
        delegation = parse_delegation(body.pop("delegation")) if isinstance(body, dict) and "delegation" in body \
            else Delegation(visited=[])
        record = parse_submission(body)
        if delegation.settle:
            self._confirm(record.id, delegation.attempt, resp)
            return
        detector = None if delegation.forwarded else inline_detector(record)
        if detector is None:
            send(resp, self._submitted(record, delegation), 201)
            return
        # A stream with its own detector: the detector first (recorded as the stream's), then the stream, whose
        # refusal takes the detector with it. One left by an API that ended between the two, the scheduler deletes.
        self._submitted(detector, delegation)
        try:
            view = self._submitted(with_detector(record, detector.id), delegation)
        except CnetError:
            Workload(self.deps).remove_owned(record.id)
            raise
        send(resp, view, 201)

    def _submitted(self, record: WorkloadRecord, delegation: Delegation) -> dict[str, Any]:
        """Placed (here or delegated), and followed to readiness where the submission entered the cluster."""
        placed = self.schedule("submit", workload=record.to_dict(), visited=delegation.visited,
                               attempt=delegation.attempt, budget_s=delegation.budget_s or DELEGATION_BUDGET_S)
        pointer = WorkloadRecord.from_dict(placed["placed"])
        if pointer.deployment is not None:  # answered once no replica is starting
            return self._follow(self.view(pointer), lambda: self.view(pointer), starting_replicas)
        if not pointer.remote:
            return self.view(pointer) if delegation.forwarded else self._wait_ready(pointer.id)
        view = self.deps.remote.as_seen_here(pointer, placed["answer"]) if "answer" in placed else self.view(pointer)
        if not delegation.forwarded:  # a forward is answered at admission; the entry node follows readiness
            view = self._follow_remote(pointer, view)
        return view

    def _confirm(self, workload_id: str, attempt: str | None, resp: falcon.Response) -> None:
        """A delegating node asks what became of its forward ``attempt``: 201 with the record, 202 while this
        node settles its own onward forward, 404 when it never arrived (it is now refused if it does)."""
        answer = self.schedule("confirm", id=workload_id, attempt=attempt)
        if "placed" in answer:
            send(resp, self.view(WorkloadRecord.from_dict(answer["placed"])), 201)
        elif answer.get("pending"):
            send(resp, {"id": workload_id, "status": "unknown"}, 202)
        else:
            raise NotFound(f"no workload with id {workload_id!r}; that forward is now refused should it arrive")

    def _ready_deadline(self) -> float:
        return time.monotonic() + self.deps.config.health_start_timeout_s + READY_MARGIN_S

    def _follow_remote(self, pointer: WorkloadRecord, view: dict[str, Any]) -> dict[str, Any]:
        """The origin's view of a delegated submission once the target says it is ready (or ended, or the
        wait ran out)."""
        return self._follow(view, lambda: self.deps.remote.view(pointer))

    def _follow(self, view: dict[str, Any], again: Callable[[], dict[str, Any]],
                waiting: Callable[[dict[str, Any]], bool] = lambda view: view["status"] == Status.STARTING
                ) -> dict[str, Any]:
        deadline = self._ready_deadline()
        while waiting(view) and time.monotonic() < deadline:
            time.sleep(REMOTE_READY_POLL_S)
            view = again()
        return view

    def _wait_ready(self, workload_id: str) -> dict[str, Any]:
        """Answer a submission once it is ready: the monitor found a service's /health answering, and its
        program has told what only it knows (a container id); or it ended; or time ran out. The API only
        reads here: readiness has one writer, the monitor's health checks."""
        deadline = self._ready_deadline()
        while True:
            record = self.deps.ledger.get(workload_id)
            facts = self.facts(record)
            facts_pending = any(value is None for value in facts.values())
            if (record.status != Status.STARTING and not facts_pending) or record.terminal \
                    or time.monotonic() > deadline:
                return self.present(record, facts)
            time.sleep(READY_POLL_S)


class Workload(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        send(resp, self.view(self.workload(workload_id)))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        """A deployment's desired state: ``{"replicas": N}`` scales it; ``{"autoscale": {...}}`` changes an
        autoscaled one's bounds and policy (the keys given); a new ``config`` and/or ``requirements`` (with an
        ``update`` policy, if wanted) make its next revision, which its controller rolls out. Answered once
        recorded (a revision: once checked); the rollout goes on behind it."""
        body = read_json(req, self.deps.config.api_max_body_bytes)
        if not isinstance(body, dict) or not body:
            raise Invalid('expected {"replicas": N}, {"autoscale": {...}}, or a new revision: {"config": ..., '
                          '"requirements": ..., "update": ...}')
        unknown = sorted(set(body) - {"replicas", "autoscale", *REVISION_FIELDS})
        if unknown:
            raise Invalid(f"unknown field(s) {', '.join(unknown)} (a deployment changes replicas, autoscale, or "
                          "config, requirements and update)")
        for alone in ("replicas", "autoscale"):
            if alone in body and set(body) - {alone}:
                raise Invalid(f"{alone}: change it alone (the count, the bounds and a revision in separate requests)")
        self.workload(workload_id)
        if "replicas" in body:
            changed = self.schedule("scale", id=workload_id, replicas=replica_count(body["replicas"]))
        elif "autoscale" in body:
            changed = self.schedule("autoscale", id=workload_id, autoscale=body["autoscale"])
        else:
            changed = self.schedule("revise", id=workload_id, change=body)
        send(resp, self.view(WorkloadRecord.from_dict(changed)))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = settled(self.workload(workload_id))
        status, body = self.remove(record)
        if status == 200:
            self.remove_owned(record.id)
        send(resp, body, status)

    def remove(self, record: WorkloadRecord) -> tuple[int, Any]:
        if record.deployment is not None:
            return 200, self._delete_deployment(record)
        return self.delete_one(record)

    def remove_owned(self, owner_id: str) -> None:
        """Delete what was deployed with ``owner_id`` (a stream's own detector)."""
        for owned in self.owned(owner_id):
            with contextlib.suppress(CnetError):  # gone meanwhile, or settling: the scheduler deletes it later
                self.remove(settled(owned))

    def delete_one(self, record: WorkloadRecord) -> tuple[int, Any]:
        if record.type == "data" and not record.remote:
            return 200, self.schedule("delete_data", id=record.id)
        if not record.remote:
            return 200, self.schedule("delete", id=record.id)
        status, body = self.deps.remote.act(record, "DELETE")
        if status not in (200, 404):
            return status, body
        self.deps.remote.forget(record.id)
        return 200, self.schedule("forget", id=record.id)

    def _delete_deployment(self, record: WorkloadRecord) -> dict[str, Any]:
        """Record that the deployment goes; its controller deletes its replicas, then its record. Answered
        once it is gone, or when the wait runs out (a replica whose node is offline is deleted when the node
        is back: it is named in ``replicas_pending``)."""
        self.schedule("delete_deployment", id=record.id)
        deadline = time.monotonic() + DEPLOYMENT_ACTION_WAIT_S
        while time.monotonic() < deadline:
            try:
                self.deps.ledger.get(record.id)
            except NotFound:
                break
            time.sleep(READY_POLL_S)
        pending = [member.id for member in self.members(record)]
        return {"id": record.id, "deleted": True, "replicas_pending": pending}


class WorkloadStop(Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = settled(self.workload(workload_id))
        if record.deployment is None:
            status, body = self.stop_one(record)
            send(resp, body, status)
            return
        self.schedule("stop", id=record.id)  # recorded: its controller stops the replicas, and replaces none
        deadline = time.monotonic() + DEPLOYMENT_ACTION_WAIT_S
        view = self.view(self.deps.ledger.get(record.id))
        while _serving(view) and time.monotonic() < deadline:
            time.sleep(READY_POLL_S)
            view = self.view(self.deps.ledger.get(record.id))
        send(resp, view)

    def stop_one(self, record: WorkloadRecord) -> tuple[int, Any]:
        answer = self.deps.remote.act(record, "POST", "/stop") if record.remote else \
            (200, self.schedule("stop", id=record.id))
        for owned in self.owned(record.id):  # what was deployed with it stops with it (a stream's detector)
            with contextlib.suppress(CnetError):
                if owned.remote:
                    self.deps.remote.act(owned, "POST", "/stop")
                else:
                    self.schedule("stop", id=owned.id)
        return answer


class WorkloadPromote(Resource):
    """POST /api/workloads/{id}/promote: a rollout waiting on its canaries goes on (recorded; carried out by
    the deployment's controller)."""

    op = "promote"

    def on_post(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        self.workload(workload_id)
        send(resp, self.view(WorkloadRecord.from_dict(self.schedule(self.op, id=workload_id))))


class WorkloadRollback(WorkloadPromote):
    """POST /api/workloads/{id}/rollback: a rollout under way goes back (its new replicas go); without one,
    the previous revision rolls out again."""

    op = "rollback"


def _serving(view: dict[str, Any]) -> bool:
    """A stopped deployment's view in which a replica still runs (or is still stopping)."""
    return any(instance["status"] not in (Status.STOPPED, Status.FAILED, Status.COMPLETED, Status.LOST)
               and not instance["retired_because"] for instance in view["deployment"]["instances"])


class WorkloadLogs(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = self.workload(workload_id)
        raw = req.params.get("tail", str(LOG_TAIL_DEFAULT))  # a list when repeated
        if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and int(raw) <= LOG_TAIL_MAX):
            raise Invalid(f"tail: expected one whole number of lines, 0 to {LOG_TAIL_MAX}")
        lines = int(raw)
        if record.remote:
            status, body = self.deps.remote.act(record, "GET", f"/logs?tail={lines}")
            send(resp, body, status)
            return
        paths = self.deps.config.paths
        send(resp, {"id": record.id, "tail": lines,
                    "stdout": tail_lines(paths.workload_log(record.id, "stdout"), lines),
                    "stderr": tail_lines(paths.workload_log(record.id, "stderr"), lines)})


class WorkloadLogStream(Resource):
    """GET /api/workloads/{id}/logs/{stream}?offset=N: what one stream holds from byte N on (at most
    LOG_CHUNK_MAX_BYTES), and ``next_offset``: how ``cnet logs -f`` follows a log without repeating it."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str, stream: str) -> None:
        record = self.workload(workload_id)
        if stream not in LOG_STREAMS:
            raise Invalid(f"stream: expected one of {', '.join(LOG_STREAMS)}, got {stream!r}")
        raw = req.params.get("offset", "0")
        if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19
                and int(raw) <= LOG_OFFSET_MAX):
            raise Invalid(f"offset: expected a whole number of bytes from 0 to {LOG_OFFSET_MAX}")
        if record.remote:
            status, body = self.deps.remote.act(record, "GET", f"/logs/{stream}?offset={int(raw)}")
            send(resp, body, status)
            return
        data, next_offset = read_from(self.deps.config.paths.workload_log(record.id, stream), int(raw),
                                      LOG_CHUNK_MAX_BYTES)
        send(resp, {"id": record.id, "stream": stream, "offset": next_offset - len(data.encode()),
                    "next_offset": next_offset, "data": data})
