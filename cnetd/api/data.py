"""The data API: the node's stored uploads, listed and deleted (uploads arrive through POST /api/workloads)."""
from __future__ import annotations

from typing import Any

import falcon

from cnetd.api.base import Resource
from cnetd.api.paging import newest_first, page_and_next, page_size, page_start, position_token, read_position
from cnetd.common.errors import NotFound
from cnetd.common.web import send


class DataList(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Oldest first (``reverse=true``: newest first); with ``limit``, one page, and ``next`` to pass as
        ``after`` for the one after."""
        limit, start = page_size(req), read_position(page_start(req, "a listing's next (TIME/DATA_KEY)"))
        read = self.deps.catalog.listed(start, None if limit is None else limit + 1, newest_first(req))
        items, after = page_and_next(read, limit,
                                     lambda item: position_token((item["created_at"], item["data_key"])))
        send(resp, {"data": items, "count": len(items), "next": after})


class DataItem(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, data_key: str) -> None:
        send(resp, self._stored(data_key))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, data_key: str) -> None:
        self._stored(data_key)
        send(resp, self.schedule("delete_data", id=data_key))  # refused (409) while a workload uses it

    def _stored(self, data_key: str) -> dict[str, Any]:
        stored = self.deps.catalog.get(data_key)
        if stored is None:
            raise NotFound(f"no data with key {data_key!r}")
        return stored
