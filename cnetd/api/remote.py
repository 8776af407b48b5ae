"""Workloads this node delegated: viewed and acted on live through the next hop's API, ``lost`` when offline."""
from __future__ import annotations

import collections
from typing import Any

from cnetd.errors import Unavailable
from cnetd.httpclient import TimedOut, Unreachable, auth_headers, call
from ledger.nodetable import NodeTable
from ledger.records import Status, WorkloadRecord
from mesh.messages import HEARTBEAT_LIVENESS

PROXY_TIMEOUT_S = 3.0
ACTION_TIMEOUT_S = 60.0


class RemoteWorkloads:
    def __init__(self, nodes: NodeTable, heartbeat_period_s: float, token: str | None) -> None:
        self._nodes = nodes
        self._period_s = heartbeat_period_s
        self._headers = auth_headers(token)

    def view(self, record: WorkloadRecord) -> dict[str, Any]:
        return self.views([record])[0]

    def views(self, records: list[WorkloadRecord]) -> list[dict[str, Any]]:
        """Current state of delegated records, one request per next-hop node."""
        by_hop: dict[str, list[WorkloadRecord]] = collections.defaultdict(list)
        for record in records:
            by_hop[record.remote_api].append(record)
        seen: dict[str, dict[str, Any]] = {}
        for remote_api, group in by_hop.items():
            if not self._online(group[0].delegated_to):
                continue
            ids = ",".join(record.id for record in group)
            try:
                status, body = call("GET", f"{remote_api}/api/workloads?ids={ids}", timeout_s=PROXY_TIMEOUT_S)
            except (Unreachable, TimedOut):
                continue
            if status == 200:
                seen.update({item["id"]: item for item in body["workloads"]})
        return [self._as_seen_here(record, seen.get(record.id)) for record in records]

    def act(self, record: WorkloadRecord, method: str, path: str = "", raw: bytes | None = None,
            content_type: str | None = None) -> tuple[int, Any]:
        """Proxy a stop / delete / logs / predict request to the next hop."""
        if not self._online(record.delegated_to):
            raise Unavailable(f"workload {record.id} runs on {record.delegated_to}, which is offline",
                              node=record.delegated_to)
        try:
            headers = {**self._headers, **({"Content-Type": content_type} if content_type else {})}
            return call(method, f"{record.remote_api}/api/workloads/{record.id}{path}", timeout_s=ACTION_TIMEOUT_S,
                        headers=headers, raw=raw)
        except (Unreachable, TimedOut) as exc:
            raise Unavailable(f"workload {record.id} runs on {record.delegated_to}: {exc}",
                              node=record.delegated_to) from None

    def _online(self, node_id: str | None) -> bool:
        neighbour = self._nodes.get(node_id) if node_id else None
        return neighbour is not None and neighbour.online(self._period_s, HEARTBEAT_LIVENESS)

    @staticmethod
    def _as_seen_here(record: WorkloadRecord, remote: dict[str, Any] | None) -> dict[str, Any]:
        if remote is None:
            return {**record.to_dict(), "status": Status.LOST,
                    "message": f"{record.delegated_to} is offline or no longer knows this workload"}
        # The next hop's live state, with this node's own decision: where it sent it, and why.
        return {**remote, "delegated_to": record.delegated_to, "remote_api": record.remote_api,
                "placement": record.placement}
