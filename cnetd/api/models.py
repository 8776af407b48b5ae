"""The node's model cache over HTTP: ``GET /api/models`` lists its artifacts, ``DELETE /api/models/{sha256}``
evicts an unused one, and ``GET /api/artifacts/{sha256}`` streams one (Range-able) to whoever holds the
node's token or a link the node signed (``cnetd.core.links``): how a delegated deployment gets its model."""
from __future__ import annotations

import os
import re
from typing import Any, BinaryIO, Iterator

import falcon

from cnetd.api.base import Resource
from cnetd.common.byte_ranges import NotSatisfiable, byte_range
from cnetd.common.errors import CnetError, NotFound
from cnetd.common.web import send
from cnetd.common.model_sources import SHA256_PATTERN
from cnetd.core.model_records import MODEL_TYPE, model_users, record_id
from ledger.records import Status


class RangeNotSatisfiable(CnetError):
    status = 416
    code = "range_not_satisfiable"


def _sha256(value: str) -> str:
    if not re.fullmatch(SHA256_PATTERN, value):
        raise NotFound(f"no model {value!r}: models are named by their sha256 (64 lowercase hex digits)")
    return value


class Models(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        records = self.deps.ledger.workloads()
        models = [_shown(record.config, record.status, model_users(records, record.config.get("sha256", "")))
                  for record in records if record.type == MODEL_TYPE]
        send(resp, {"models": models, "count": len(models), "cache_bytes": self.deps.config.models_cache_bytes,
                    "cached_bytes": sum(model["size_bytes"] for model in models if model["kind"] == "cached")})


def _shown(config: dict[str, Any], status: str, users: list[str]) -> dict[str, Any]:
    """One artifact as listed: a fetch under way shows how far it is."""
    return {"sha256": config.get("sha256"), "size_bytes": config["size_bytes"], "source": config["source"],
            "kind": config.get("kind", "cached"), "last_used": config.get("last_used"), "users": users,
            "status": _status(config, status), "received_bytes": config.get("received_bytes", config["size_bytes"])}


def _status(config: dict[str, Any], status: str) -> str:
    """``fetching``, ``ready``, or ``missing``: its file is gone (removed by hand from where it lay), as Triton's
    repository index shows a model it cannot load as unavailable."""
    if status == Status.UPLOADING:
        return "fetching"
    return "ready" if os.path.isfile(config["path"]) else "missing"


class Model(Resource):
    def on_delete(self, req: falcon.Request, resp: falcon.Response, sha256: str) -> None:
        send(resp, self.schedule("evict_model", sha256=_sha256(sha256)))


class ArtifactFile(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, sha256: str) -> None:
        handle = self._open(_sha256(sha256))  # closed by gunicorn once sent, or below on a refusal
        try:
            size = handle.seek(0, 2)
            try:
                start, end, partial = byte_range(req.get_header("Range"), size)
            except NotSatisfiable as unsatisfiable:
                resp.set_header("Content-Range", str(unsatisfiable))
                raise RangeNotSatisfiable(f"the range starts past the artifact's {size} bytes") from None
            if partial:
                resp.status = falcon.HTTP_206
                resp.set_header("Content-Range", f"bytes {start}-{end}/{size}")
            resp.content_type = "application/octet-stream"
            resp.set_header("Accept-Ranges", "bytes")
            resp.set_header("ETag", f'"{sha256}"')
            handle.seek(start)
            resp.stream, resp.content_length = handle, end - start + 1
        except BaseException:
            handle.close()
            raise

    def _open(self, sha256: str) -> BinaryIO:
        """The bytes this node holds: a model artifact's file, else a file of stored data. A record whose file is
        gone since (removed by hand, a cached copy evicted meanwhile) holds nothing: 404."""
        for path in self._paths(sha256):
            try:
                return open(path, "rb")
            except FileNotFoundError:
                continue
        raise NotFound(f"no artifact {sha256} on this node")

    def _paths(self, sha256: str) -> Iterator[str]:
        """Where the bytes may lie: the model record's file, then a file of stored data with that hash."""
        try:
            record = self.deps.ledger.get(record_id(sha256))
        except NotFound:
            record = None
        if record is not None and record.status == Status.STORED:
            yield record.config["path"]
        path = self.deps.catalog.file_with_sha256(sha256)
        if path is not None:
            yield path
