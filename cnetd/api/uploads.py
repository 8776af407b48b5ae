"""Data uploads (POST /api/workloads, multipart, type=data): streamed to disk, described in SQLite, counted
against the node's storage.

The request's Content-Length is reserved in the ledger before any byte is written (an upload that cannot
fit is refused before it fills the disk); parts stream into a staging directory (around the page cache)
with their SHA-256; the finished tree is shared with workloads' group (``workloads.user``'s; other users get
nothing), renamed into place, catalogued, and its allocation shrunk to the bytes stored. Any failure, a
client that disconnects included, removes the staging files and the reservation.

Each file's MD5 (the gateway's ETag) is computed once the upload is recorded, on one thread of this process,
and kept in the file's attributes: it is not on the upload's path. Until it is there (or if this process dies
first), the gateway computes it at its first read, so the ETag is right from the first GET.
"""
from __future__ import annotations

import hashlib
import mmap
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, NamedTuple

import falcon
from falcon.util import BufferedReader

from cnetd.common.direct_file import DirectFile, new_buffer
from cnetd.common.heap import release_free_heap
from cnetd.common.request_deadline import ClientTooSlow
from cnetd.common.errors import (CnetError, InsufficientStorage, Invalid, LengthRequired, RequestTimeout, Unprocessable,
                                 disk_full)
from cnetd.core.submission import new_workload_id
from cnetd.core.upload_files import receiver, remove_upload_files, staging_dir
from gateway.etags import record_md5
from gateway.keys import UnsafeKey, safe_relative
from ledger.catalog import Catalog, StoredFile
from ledger.records import Resources, Status, WorkloadRecord
from workers.workload_files import share_with_workloads

CHUNK_BYTES = 1 << 20
LARGE_READ_BYTES = 1 << 20  # what one read of the body asks of the server
UPLOAD_PARTS = ("type", "name", "file")  # "file" once per file
CHUNKS_IN_FLIGHT = 4  # received chunks not yet both written and hashed: the most an upload holds
MD5_RECORDER = ThreadPoolExecutor(1, thread_name_prefix="md5")  # uploaded files' MD5s, one after another
MAX_PARTS = 100_000  # Falcon's default of 64 would refuse a directory
Schedule = Callable[..., Any]


def allow_directory_uploads(app: falcon.App) -> None:
    app.req_options.media_handlers[falcon.MEDIA_MULTIPART].parse_options.max_body_part_count = MAX_PARTS


class _PartHelpers(NamedTuple):
    """Two threads behind the receiving one: one writes the part's file, the other hashes it. Each takes the
    chunks in the order received, on its own pace, so that neither waits for the other: hashlib and writes
    let go of the GIL, and receiving is the only step taken one after another."""

    writer: ThreadPoolExecutor
    hasher: ThreadPoolExecutor


def _write_part(stream: Any, staging: Path, relative: Path, helpers: _PartHelpers,
                buffer: mmap.mmap) -> tuple[int, str]:
    """Stream one part to ``relative`` under ``staging``; its size and SHA-256. Writing the file (around the
    page cache, ``DirectFile``) and its SHA-256 run on ``helpers``, up to ``CHUNKS_IN_FLIGHT`` chunks behind
    the receiving: memory stays bounded. Profiled with py-spy: with the write alone on the receiving thread,
    it was 71 % of a 1 GiB upload's samples; with one chunk in flight, the receiving thread waited for the
    slower of the two helpers a quarter of the time."""
    target = staging / relative
    digest, size = hashlib.sha256(), 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        written = DirectFile(target, buffer)  # exclusive: never follows or overwrites anything already there
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise Unprocessable(f"the upload names {str(relative)!r} twice, or as both a file and a directory") from None
    with written:
        behind: deque[Future[None]] = deque()
        try:
            while chunk := stream.read(CHUNK_BYTES):
                while len(behind) >= 2 * CHUNKS_IN_FLIGHT:
                    behind.popleft().result()
                behind += (helpers.writer.submit(written.write, chunk), helpers.hasher.submit(digest.update, chunk))
                size += len(chunk)
            while behind:
                behind.popleft().result()
        finally:  # nothing of this part is still at work once the file closes (or its staging goes)
            for step in behind:
                step.cancel()
            wait(behind)
        written.finish()
    return size, digest.hexdigest()


def receive(req: falcon.Request, node_id: str, data_root: Path, catalog: Catalog, schedule: Schedule,
            workload_user: str | None) -> dict[str, Any]:
    if req.content_length is None:
        raise LengthRequired("uploads need a Content-Length (the node reserves that much storage first)")
    data_key = new_workload_id()
    # Who receives it is recorded with it: should this process die mid-way, the scheduler undoes the upload.
    reservation = WorkloadRecord(id=data_key, type="data", name=data_key, config={"receiver": receiver()},
                                 requirements=Resources(storage=req.content_length), status=Status.UPLOADING,
                                 node=node_id)
    schedule("reserve", workload=reservation.to_dict())  # 409 insufficient_resources when it cannot fit
    staging, final = staging_dir(data_root, data_key), data_root / data_key
    try:
        fields, files = _stream_parts(req, staging)
        share_with_workloads(staging, workload_user)  # workloads (a data gateway) read it; other users do not
        if fields.get("type", "data") != "data":
            raise Invalid("multipart submissions are data uploads: type must be 'data'")
        if not files:
            raise Invalid("the upload has no 'file' part")
        staging.rename(final)
        kind = "directory" if len(files) > 1 or "/" in files[0].rel_path else "file"
        name = fields.get("name") or (files[0].rel_path.split("/")[0] if kind == "directory" else files[0].rel_path)
        stored = catalog.add(data_key, name, kind, str(final), files)
        summary = {"kind": kind, "path": str(final), "files": len(files), "size_bytes": stored["size_bytes"]}
        if kind == "file":
            summary["sha256"] = files[0].sha256
        record = schedule("data_stored", id=data_key, name=name, config=summary, storage=stored["size_bytes"])
    except BaseException as exc:
        remove_upload_files(data_root, data_key, catalog)
        schedule("forget", id=data_key)
        if isinstance(exc, (CnetError, KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(exc, ClientTooSlow):
            raise RequestTimeout(f"the client was too slow sending the upload: {exc}") from None
        if disk_full(exc):
            raise InsufficientStorage(f"upload failed: the data disk is full ({_without_paths(exc)})") from None
        raise Invalid(f"upload failed: {_without_paths(exc)}") from None
    for stored_file in files:
        MD5_RECORDER.submit(record_md5, final / stored_file.rel_path)
    return {**record, "data_key": data_key, "files": stored["files"]}


def _without_paths(exc: BaseException) -> str:
    """What went wrong, naming no server path (an OSError's text carries the file's full path)."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def _stream_parts(req: falcon.Request, staging: Path) -> tuple[dict[str, str], list[StoredFile]]:
    fields: dict[str, str] = {}
    files: list[StoredFile] = []
    staging.mkdir(parents=True)
    # The parser's own reader (Falcon's: it takes one with read_until as it is), reading a MiB at a time rather
    # than its default 32 KiB: gunicorn keeps what one receive brought beyond the size asked for by copying it
    # (py-spy: 38 % of a 1 GiB upload's samples under 32 KiB reads). Parsing 1 GiB alone takes 0.26 CPU s so,
    # against 0.79 for 32 KiB pieces cut from MiB reads; a whole upload, bound by its hash and the disk, runs
    # as fast either way here.
    body = BufferedReader(req.bounded_stream.read, req.content_length, LARGE_READ_BYTES)
    form = req.options.media_handlers[falcon.MEDIA_MULTIPART].deserialize(body, req.content_type, req.content_length)
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="upload-write") as writer, \
                ThreadPoolExecutor(1, thread_name_prefix="upload-hash") as hasher, new_buffer() as buffer:
            helpers = _PartHelpers(writer, hasher)
            for part in form:
                _take_part(part, staging, fields, files, helpers, buffer)
    finally:
        release_free_heap()  # the body's pieces, kept for reuse while it arrived (cnetd.common.heap)
    return fields, files


def _take_part(part: Any, staging: Path, fields: dict[str, str], files: list[StoredFile],
               helpers: _PartHelpers, buffer: mmap.mmap) -> None:
    if part.name not in UPLOAD_PARTS:
        raise Invalid(f"unknown multipart field {part.name!r} (known: {', '.join(UPLOAD_PARTS)})")
    if part.name != "file":
        if part.name in fields:
            raise Invalid(f"multipart field {part.name!r} is given twice")
        fields[part.name] = part.text
        return
    if part.filename is None:
        raise Invalid("the 'file' part needs a file name")
    try:
        relative = safe_relative(part.filename)
    except UnsafeKey as exc:
        raise Invalid(f"file name refused: {exc}") from None
    size, sha256 = _write_part(part.stream, staging, relative, helpers, buffer)
    files.append(StoredFile(str(relative), size, sha256))
