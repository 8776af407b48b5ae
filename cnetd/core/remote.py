"""Workloads this node delegated: viewed and acted on live through the next hop's API, ``lost`` when offline.

Only settled pointers come here (the API shows one still settling as it holds it). A ``lost`` one shows
what was last known of it (seen live by this API process, else its admission) and how old that is.
"""
from __future__ import annotations

import collections
import time
from typing import Any

from cnetd.common.errors import Unavailable
from cnetd.common.httpclient import TimedOut, Unreachable, node_headers, call
from cnetd.common.relay import Relayed, relay
from ledger.nodetable import NodeTable
from ledger.records import Status, WorkloadRecord
from mesh.messages import HEARTBEAT_LIVENESS

PROXY_TIMEOUT_S = 3.0
ACTION_TIMEOUT_S = 60.0
_LAST_KNOWN = ("status", "node", "process_pid", "endpoint", "restarts")


class RemoteWorkloads:
    def __init__(self, nodes: NodeTable, heartbeat_period_s: float, token: str | None) -> None:
        self._nodes = nodes
        self._period_s = heartbeat_period_s
        self._headers = node_headers(token)
        self._last_seen: dict[str, tuple[float, dict[str, Any]]] = {}  # id → (when, what its node said)

    def view(self, record: WorkloadRecord) -> dict[str, Any]:
        return self.views([record])[0]

    def views(self, records: list[WorkloadRecord]) -> list[dict[str, Any]]:
        """Current state of delegated records, one request per next-hop node."""
        by_hop: dict[str, list[WorkloadRecord]] = collections.defaultdict(list)
        for record in records:
            by_hop[record.remote_api].append(record)
        seen: dict[str, dict[str, Any]] = {}
        for remote_api, group in by_hop.items():
            if not self.online(group[0].delegated_to):
                continue
            ids = ",".join(record.id for record in group)
            try:
                status, body = call("GET", f"{remote_api}/api/workloads?ids={ids}", timeout_s=PROXY_TIMEOUT_S,
                                    headers=self._headers)
            except (Unreachable, TimedOut):
                continue
            if status == 200:
                seen.update({item["id"]: item for item in body["workloads"]})
        return [self.as_seen_here(record, seen.get(record.id)) for record in records]

    @property
    def headers(self) -> dict[str, str]:
        """What a request to a next hop carries (its token)."""
        return dict(self._headers)

    def workload_url(self, record: WorkloadRecord, path: str) -> str:
        """``path`` under ``record``'s URL at its next hop (Unavailable when that hop is offline)."""
        if not self.online(record.delegated_to):
            raise Unavailable(f"workload {record.id} runs on {record.delegated_to}, which is offline",
                              node=record.delegated_to)
        return f"{record.remote_api}/api/workloads/{record.id}{path}"

    def act(self, record: WorkloadRecord, method: str, path: str = "", raw: bytes | None = None,
            content_type: str | None = None) -> tuple[int, Any]:
        """Proxy a stop / delete / logs / predict request to the next hop."""
        url = self.workload_url(record, path)
        try:
            headers = {**self._headers, **({"Content-Type": content_type} if content_type else {})}
            return call(method, url, timeout_s=ACTION_TIMEOUT_S, headers=headers, raw=raw)
        except (Unreachable, TimedOut) as exc:
            raise Unavailable(f"workload {record.id} runs on {record.delegated_to}: {exc}",
                              node=record.delegated_to) from None

    def relay(self, record: WorkloadRecord, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> Relayed:
        """Relay a request to a service's path under the next hop's API, as it is (its answer too)."""
        url = self.workload_url(record, path)
        try:
            return relay(method, url, body, {**self._headers, **headers}, ACTION_TIMEOUT_S)
        except (Unreachable, TimedOut) as exc:
            raise Unavailable(f"workload {record.id} runs on {record.delegated_to}: {exc}",
                              node=record.delegated_to) from None

    def forget(self, workload_id: str) -> None:
        self._last_seen.pop(workload_id, None)

    def online(self, node_id: str | None) -> bool:
        neighbour = self._nodes.get(node_id) if node_id else None
        return neighbour is not None and neighbour.online(self._period_s, HEARTBEAT_LIVENESS)

    def as_seen_here(self, record: WorkloadRecord, remote: dict[str, Any] | None) -> dict[str, Any]:
        """The next hop's live view with this node's own decisions (where it sent it, and why; which deployment
        it is a replica of, and whether it was taken out); ``lost`` with
        what was last known when the next hop cannot tell."""
        if remote is None:
            return self._lost(record)
        self._last_seen[record.id] = (time.time(), remote)
        return {**remote, "delegated_to": record.delegated_to, "remote_api": record.remote_api,
                "placement": record.placement, "replica_of": record.replica_of, "retired_at": record.retired_at,
                "retired_because": record.retired_because, "revision": record.revision}

    def _lost(self, record: WorkloadRecord) -> dict[str, Any]:
        at, known = self._last_seen.get(record.id, (record.started_at or record.created_at, record.to_dict()))
        return {**record.to_dict(), "status": Status.LOST, "process_pid": None,
                "last_known": {name: known.get(name) for name in _LAST_KNOWN},
                "last_known_age_s": round(time.time() - at, 3),
                "message": f"{record.delegated_to} is offline or no longer knows this workload"}
