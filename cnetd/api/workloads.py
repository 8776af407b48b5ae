"""The workload API: list, submit (following a service to readiness), show, stop, delete, logs."""
from __future__ import annotations

import time
from typing import Any

import falcon

from cnetd.api import uploads
from cnetd.api.base import Resource, proxied, settled
from cnetd.api.limits import LOG_CHUNK_MAX_BYTES, LOG_OFFSET_MAX, LOG_STREAMS, LOG_TAIL_DEFAULT, LOG_TAIL_MAX
from cnetd.common.errors import Invalid, NotFound
from cnetd.common.web import read_json, send
from cnetd.delegation import DELEGATION_BUDGET_S
from cnetd.logtail import read_from, tail_lines
from cnetd.models.store import MODEL_TYPE
from cnetd.submission import Delegation, parse_delegation, parse_submission
from ledger.records import Status, WorkloadRecord

READY_POLL_S, REMOTE_READY_POLL_S = 0.05, 0.05
READY_MARGIN_S = 5.0  # past health.start_timeout_s the health checks have failed it: its status is final


class Workloads(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status, workload_type, ids = req.get_param("status"), req.get_param("type"), req.get_param("ids")
        wanted = set(ids.split(",")) if ids else None
        records = [record for record in self.deps.ledger.workloads() if record.type != MODEL_TYPE
                   and (wanted is None or record.id in wanted) and (workload_type is None or record.type == workload_type)]
        remote_views = iter(self.deps.remote.views([record for record in records if proxied(record)]))
        views = [next(remote_views) if proxied(record) else self.view(record) for record in records]
        views = [view for view in views if status is None or view["status"] == status]
        send(resp, {"workloads": views, "count": len(views)})

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
        placed = self.schedule("submit", workload=record.to_dict(), visited=delegation.visited,
                               attempt=delegation.attempt, budget_s=delegation.budget_s or DELEGATION_BUDGET_S)
        pointer = WorkloadRecord.from_dict(placed["placed"])
        if not pointer.remote:
            view = self.view(pointer) if delegation.forwarded else self._wait_ready(pointer.id)
        else:
            view = self.deps.remote.as_seen_here(pointer, placed["answer"]) if "answer" in placed else self.view(pointer)
            if not delegation.forwarded:  # a forward is answered at admission; the entry node follows readiness
                view = self._follow_remote(pointer, view)
        send(resp, view, 201)

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
        deadline = self._ready_deadline()
        while view["status"] == Status.STARTING and time.monotonic() < deadline:
            time.sleep(REMOTE_READY_POLL_S)
            view = self.deps.remote.view(pointer)
        return view

    def _wait_ready(self, workload_id: str) -> dict[str, Any]:
        """Answer a submission once it is ready: a service's /health answers and its program has told what
        only it knows (a container id); or it ended; or time ran out (the monitor's checks take over)."""
        deadline = self._ready_deadline()
        while True:
            record = self.checked(self.deps.ledger.get(workload_id))
            facts = self.facts(record)
            facts_pending = any(value is None for value in facts.values())
            if (record.status != Status.STARTING and not facts_pending) or record.terminal \
                    or time.monotonic() > deadline:
                return self.present(record, facts)
            time.sleep(READY_POLL_S)


class Workload(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        send(resp, self.view(self.workload(workload_id)))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = settled(self.workload(workload_id))
        if record.type == "data" and not record.remote:
            send(resp, uploads.delete(workload_id, self.data_root, self.deps.catalog, self.schedule))
            return
        if not record.remote:
            send(resp, self.schedule("delete", id=workload_id))
            return
        status, body = self.deps.remote.act(record, "DELETE")
        if status not in (200, 404):
            send(resp, body, status)
            return
        self.deps.remote.forget(workload_id)
        send(resp, self.schedule("forget", id=workload_id))


class WorkloadStop(Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, workload_id: str) -> None:
        record = settled(self.workload(workload_id))
        if record.remote:
            status, body = self.deps.remote.act(record, "POST", "/stop")
            send(resp, body, status)
        else:
            send(resp, self.schedule("stop", id=workload_id))


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
