"""The read-only S3-subset gateway: ListObjectsV2, GetObject (Range), HeadObject, S3 error XML.

Path-style only: ``/s3/{bucket}`` and ``/s3/{bucket}/{key}``; the bucket is the configured name, its
objects every file under the base path. Anything that would write answers MethodNotAllowed.
"""
from __future__ import annotations

import email.utils
import mimetypes
import os
import re
import time
import uuid
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote
from xml.sax.saxutils import escape as escape_markup

import falcon
from prometheus_client import Counter

from cnetd.common.request_metrics import instrumented_app
from gateway.keys import NotAFile, UnsafeKey, open_inside
from gateway.listing import MAX_KEYS, BadToken, ObjectInfo, list_page, walk
from gateway.sigv4 import GatewayKeys, SignatureRejected, verify

MAX_NUMBER_DIGITS = 18  # past any file's size, and far below what int() refuses to parse
_RANGE = re.compile(r"^bytes=([0-9]{0,18})-([0-9]{0,18})$")  # ASCII digits only: \d takes any script's
_XML = "application/xml"


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, resource: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.resource = status, code, message, resource


def _render_error(req: falcon.Request, resp: falcon.Response, error: S3Error, params: dict) -> None:
    resp.status = error.status
    resp.set_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
    if req.method == "HEAD":
        return
    resp.content_type = _XML
    resp.text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{error.code}</Code>'
                 f"<Message>{escape(error.message)}</Message><Resource>{escape(error.resource or req.path)}</Resource>"
                 f"<RequestId>{resp.get_header('x-amz-request-id')}</RequestId></Error>")


def _not_allowed(self: object, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
    raise S3Error(405, "MethodNotAllowed", f"{req.method} is not allowed: this gateway is read-only")


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    """Text for an XML element: markup escaped, and characters XML 1.0 cannot hold at all (control
    characters, lone surrogates) written as \\uXXXX; encoding-type=url gives keys exactly."""
    return _NOT_XML.sub(lambda match: f"\\u{ord(match.group()):04x}", escape_markup(text))


def _iso(mtime: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(mtime))


class _Bucket:
    def __init__(self, root: Path, bucket: str) -> None:
        self.root, self.bucket = root, bucket

    def check(self, bucket: str) -> None:
        if bucket != self.bucket:
            raise S3Error(404, "NoSuchBucket", f"the bucket {bucket!r} does not exist", f"/{bucket}")

    def on_head(self, req: falcon.Request, resp: falcon.Response, bucket: str) -> None:
        self.check(bucket)

    def on_get(self, req: falcon.Request, resp: falcon.Response, bucket: str) -> None:
        self.check(bucket)
        max_keys_raw = req.get_param("max-keys") or str(MAX_KEYS)
        if not (max_keys_raw.isascii() and max_keys_raw.isdigit() and len(max_keys_raw) <= MAX_NUMBER_DIGITS):
            raise S3Error(400, "InvalidArgument", "max-keys must be a non-negative integer")
        max_keys = min(int(max_keys_raw), MAX_KEYS)
        prefix, delimiter = req.get_param("prefix") or "", req.get_param("delimiter") or ""
        start_after, token = req.get_param("start-after") or "", req.get_param("continuation-token")
        try:
            page = list_page(walk(self.root), prefix, delimiter, max_keys, start_after, token)
        except BadToken as exc:
            raise S3Error(400, "InvalidArgument", str(exc)) from None
        url = req.get_param("encoding-type") == "url"
        enc = (lambda text: quote(text, safe="/")) if url else escape
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
                 f"<Name>{escape(bucket)}</Name><Prefix>{enc(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>",
                 f"<KeyCount>{page.key_count}</KeyCount><IsTruncated>{'true' if page.next_token else 'false'}</IsTruncated>"]
        if delimiter:
            parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
        if url:
            parts.append("<EncodingType>url</EncodingType>")
        if start_after:
            parts.append(f"<StartAfter>{enc(start_after)}</StartAfter>")
        if token:
            parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        if page.next_token:
            parts.append(f"<NextContinuationToken>{escape(page.next_token)}</NextContinuationToken>")
        for info in page.contents:
            parts.append(f"<Contents><Key>{enc(info.key)}</Key><LastModified>{_iso(info.mtime)}</LastModified>"
                         f"<ETag>{escape(info.etag)}</ETag><Size>{info.size}</Size>"
                         "<StorageClass>STANDARD</StorageClass></Contents>")
        parts += [f"<CommonPrefixes><Prefix>{enc(common)}</Prefix></CommonPrefixes>" for common in page.common_prefixes]
        parts.append("</ListBucketResult>")
        resp.content_type = _XML
        resp.text = "".join(parts)

    on_put = on_post = on_delete = _not_allowed


class _Object(_Bucket):
    def __init__(self, root: Path, bucket: str, bytes_served: Counter) -> None:
        super().__init__(root, bucket)
        self.bytes_served = bytes_served

    def _open(self, bucket: str, key: str) -> tuple[int, ObjectInfo]:
        """The object's open descriptor (links never followed) and what fstat says of it; the caller closes it."""
        self.check(bucket)
        try:
            descriptor = open_inside(self.root, key)
        except UnsafeKey as exc:
            raise S3Error(400, "InvalidArgument", f"invalid key: {exc}", f"/{bucket}/{key}") from None
        except NotAFile:
            raise S3Error(404, "NoSuchKey", "the specified key does not exist", f"/{bucket}/{key}") from None
        stat = os.fstat(descriptor)
        return descriptor, ObjectInfo(key, stat.st_size, stat.st_mtime)

    def _headers(self, resp: falcon.Response, key: str, info: ObjectInfo) -> None:
        resp.content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        resp.set_header("ETag", info.etag)
        resp.set_header("Last-Modified", email.utils.formatdate(info.mtime, usegmt=True))
        resp.set_header("Accept-Ranges", "bytes")

    def on_head(self, req: falcon.Request, resp: falcon.Response, bucket: str, key: str) -> None:
        descriptor, info = self._open(bucket, key)
        os.close(descriptor)
        self._headers(resp, key, info)
        resp.content_length = info.size

    def on_get(self, req: falcon.Request, resp: falcon.Response, bucket: str, key: str) -> None:
        descriptor, info = self._open(bucket, key)
        handle = os.fdopen(descriptor, "rb")  # closed by gunicorn once sent, or below on a refusal
        try:
            self._send_range(req, resp, bucket, key, info, handle)
        except BaseException:
            handle.close()
            raise

    def _send_range(self, req: falcon.Request, resp: falcon.Response, bucket: str, key: str, info: ObjectInfo,
                    handle: BinaryIO) -> None:
        self._headers(resp, key, info)
        start, end = 0, info.size - 1
        header = req.get_header("Range")
        match = _RANGE.match(header.strip()) if header else None
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), info.size - 1) if match.group(2) else info.size - 1
            else:
                start = max(0, info.size - int(match.group(2)))
            if start >= info.size or start > end:
                resp.set_header("Content-Range", f"bytes */{info.size}")
                raise S3Error(416, "InvalidRange", "the requested range is not satisfiable", f"/{bucket}/{key}")
            resp.status = 206
            resp.set_header("Content-Range", f"bytes {start}-{end}/{info.size}")
        handle.seek(start)
        length = end - start + 1
        resp.stream, resp.content_length = handle, length  # gunicorn sendfiles exactly this much
        self.bytes_served.inc(length)


MOUNT = "/s3"
UNSIGNED_PATHS = frozenset({"/health", "/metrics"})  # the node's health checks and scrapes carry no signature


class _SignatureCheck:
    """Falcon middleware: with keys configured, every S3 request must be signed with them (S3's 403s)."""

    def __init__(self, keys: GatewayKeys) -> None:
        self._keys = keys

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in UNSIGNED_PATHS:
            return
        raw_uri = req.env.get("RAW_URI") or req.relative_uri  # as the client sent (and signed) it
        url = f"{req.scheme}://{req.get_header('Host') or req.host}{raw_uri}"
        headers = {name.lower(): value for name, value in req.headers.items()}
        try:
            verify(req.method, url, headers, self._keys, MOUNT)
        except SignatureRejected as exc:
            raise S3Error(exc.status, exc.code, exc.message) from None


def create_gateway_app(base_path: str, bucket: str, keys: GatewayKeys | None = None) -> falcon.App:
    app, registry = instrumented_app("cnet_gateway")
    if keys is not None:
        app.add_middleware(_SignatureCheck(keys))
    root = Path(base_path)
    bytes_served = Counter("cnet_gateway_bytes_served_total", "Object bytes sent by GetObject", registry=registry)

    class Health:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"status": "healthy", "bucket": bucket}  # no server path for an unsigned reader

    app.add_route("/health", Health())
    app.add_route(MOUNT + "/{bucket}", _Bucket(root, bucket))
    app.add_route(MOUNT + "/{bucket}/{key:path}", _Object(root, bucket, bytes_served))
    app.add_error_handler(S3Error, _render_error)
    return app
