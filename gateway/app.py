"""The read-only S3-subset gateway: ListBuckets, HeadBucket, GetBucketLocation, ListObjects (v1 with
``marker``, and v2), GetObject (Range), HeadObject, MD5 ETags, S3 error XML.

Path-style, at the root (``/{bucket}``, ``/{bucket}/{key}``: the workload's endpoint is what a client is
given) and under ``/s3`` as well; the bucket is the configured name, its objects every file under the base
path. Anything that would write answers MethodNotAllowed.
"""
from __future__ import annotations

import mimetypes
import os
import re
import time
import uuid
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape as escape_markup

import falcon
from prometheus_client import Counter

from cnetd.common.byte_ranges import NotSatisfiable, byte_range
from cnetd.common.http_response import http_date
from cnetd.common.request_metrics import instrumented_app
from gateway.etag_warmer import EtagWarmer
from gateway.etags import ETags
from gateway.keys import NotAFile, UnsafeKey, open_inside
from gateway.listing import MAX_KEYS, BadToken, ListingIndex, ObjectInfo, decode_token, encode_token, list_page
from gateway.sigv4 import GatewayKeys, SignatureRejected, verify

IN_MEMORY_BYTES = 64 * 1024  # an object (or range) this small is read and sent with its headers, not sendfiled:
# sendfile's setup cost more than the copy (py-spy under wrk: 20 % of the gateway's time in write_file for 4 KiB)
MAX_NUMBER_DIGITS = 18  # past any file's size, and far below what int() refuses to parse
_XML = "application/xml"
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
_S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


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
    resp.text = (f"{_XML_HEAD}<Error><Code>{error.code}</Code>"
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
    def __init__(self, root: Path, bucket: str, etags: ETags, index: ListingIndex) -> None:
        self.root, self.bucket, self.etags, self.index = root, bucket, etags, index

    def check(self, bucket: str) -> None:
        if bucket != self.bucket:
            raise S3Error(404, "NoSuchBucket", f"the bucket {bucket!r} does not exist", f"/{bucket}")

    def on_head(self, req: falcon.Request, resp: falcon.Response, bucket: str) -> None:
        self.check(bucket)

    def on_get(self, req: falcon.Request, resp: falcon.Response, bucket: str) -> None:
        self.check(bucket)
        resp.content_type = _XML
        if "location" in req.params:  # GetBucketLocation (?location, a blank value falcon keeps)
            resp.text = (f'{_XML_HEAD}<LocationConstraint xmlns="{_S3_NS}"></LocationConstraint>')  # us-east-1
            return
        max_keys_raw = req.get_param("max-keys") or str(MAX_KEYS)
        if not (max_keys_raw.isascii() and max_keys_raw.isdigit() and len(max_keys_raw) <= MAX_NUMBER_DIGITS):
            raise S3Error(400, "InvalidArgument", "max-keys must be a non-negative integer")
        max_keys = min(int(max_keys_raw), MAX_KEYS)
        prefix, delimiter = req.get_param("prefix") or "", req.get_param("delimiter") or ""
        url = req.get_param("encoding-type") == "url"
        enc = (lambda text: quote(text, safe="/")) if url else escape
        head = [f"{_XML_HEAD}<ListBucketResult xmlns=\"{_S3_NS}\">",
                f"<Name>{escape(bucket)}</Name><Prefix>{enc(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>"]
        if delimiter:
            head.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
        if url:
            head.append("<EncodingType>url</EncodingType>")
        if req.get_param("list-type") == "2":
            start_after, token = req.get_param("start-after") or "", req.get_param("continuation-token")
            try:
                after, after_is_prefix = decode_token(token) if token else (start_after, False)
            except BadToken as exc:
                raise S3Error(400, "InvalidArgument", str(exc)) from None
            page = list_page(self.index.objects(), prefix, delimiter, max_keys, after, after_is_prefix)
            head.append(f"<KeyCount>{page.key_count}</KeyCount>")
            if start_after:
                head.append(f"<StartAfter>{enc(start_after)}</StartAfter>")
            if token:
                head.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
            if page.next_after:
                head.append(f"<NextContinuationToken>{escape(encode_token(*page.next_after))}</NextContinuationToken>")
        else:  # ListObjects v1: a marker is a key, or a common prefix returned before (all of it is past)
            marker = req.get_param("marker") or ""
            page = list_page(self.index.objects(), prefix, delimiter, max_keys, marker,
                             bool(delimiter) and marker.endswith(delimiter))
            head.append(f"<Marker>{enc(marker)}</Marker>")
            if page.next_after and delimiter:
                head.append(f"<NextMarker>{enc(page.next_after[0])}</NextMarker>")
        head.append(f"<IsTruncated>{'true' if page.next_after else 'false'}</IsTruncated>")
        current = [info for info in map(self.index.current, page.contents) if info is not None]
        entries = [f"<Contents><Key>{enc(info.key)}</Key><LastModified>{_iso(info.mtime)}</LastModified>"
                   f"<ETag>{escape(self.etag_of(info))}</ETag><Size>{info.size}</Size>"
                   "<StorageClass>STANDARD</StorageClass></Contents>" for info in current]
        entries += [f"<CommonPrefixes><Prefix>{enc(common)}</Prefix></CommonPrefixes>" for common in page.common_prefixes]
        resp.text = "".join([*head, *entries, "</ListBucketResult>"])

    def etag_of(self, info: ObjectInfo) -> str:
        """A listed object's MD5 ETag: kept since it was last computed, or computed now ('""': gone since the
        walk)."""
        known = self.etags.known(info.version)
        return known if known is not None else self.etags.of_key(self.root, info.key) or '""'

    on_put = on_post = on_delete = _not_allowed


class _Buckets:
    """ListBuckets: the one bucket this gateway serves."""

    def __init__(self, bucket: str, created: float) -> None:
        self.bucket, self.created = bucket, created

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = _XML
        resp.text = (f'{_XML_HEAD}<ListAllMyBucketsResult xmlns="{_S3_NS}"><Owner><ID>cnet</ID>'
                     f"<DisplayName>cnet</DisplayName></Owner><Buckets><Bucket><Name>{escape(self.bucket)}</Name>"
                     f"<CreationDate>{_iso(self.created)}</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>")


class _Object(_Bucket):
    def __init__(self, root: Path, bucket: str, etags: ETags, index: ListingIndex, bytes_served: Counter) -> None:
        super().__init__(root, bucket, etags, index)
        self.bytes_served = bytes_served

    def _open(self, bucket: str, key: str) -> tuple[int, os.stat_result]:
        """The object's open descriptor (links never followed) and what fstat says of it; the caller closes it."""
        self.check(bucket)
        try:
            return open_inside(self.root, key)
        except UnsafeKey as exc:
            raise S3Error(400, "InvalidArgument", f"invalid key: {exc}", f"/{bucket}/{key}") from None
        except NotAFile:
            raise S3Error(404, "NoSuchKey", "the specified key does not exist", f"/{bucket}/{key}") from None

    def _headers(self, resp: falcon.Response, key: str, stat: os.stat_result, descriptor: int) -> None:
        resp.content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        resp.set_header("ETag", self.etags.of(descriptor, stat))
        resp.set_header("Last-Modified", http_date(stat.st_mtime_ns // 1_000_000_000))
        resp.set_header("Accept-Ranges", "bytes")

    def on_head(self, req: falcon.Request, resp: falcon.Response, bucket: str, key: str) -> None:
        descriptor, stat = self._open(bucket, key)
        try:
            self._headers(resp, key, stat, descriptor)
        finally:
            os.close(descriptor)
        resp.content_length = stat.st_size

    def on_get(self, req: falcon.Request, resp: falcon.Response, bucket: str, key: str) -> None:
        descriptor, stat = self._open(bucket, key)
        try:
            start, length = self._range(req, resp, bucket, key, stat, descriptor)
            if length <= IN_MEMORY_BYTES:
                resp.data = os.pread(descriptor, length, start)
            else:
                os.lseek(descriptor, start, os.SEEK_SET)
                resp.stream, resp.content_length = os.fdopen(descriptor, "rb"), length  # sendfiled, then closed
                descriptor = -1  # gunicorn's now
        finally:
            if descriptor >= 0:
                os.close(descriptor)
        self.bytes_served.inc(length)

    def _range(self, req: falcon.Request, resp: falcon.Response, bucket: str, key: str, stat: os.stat_result,
               descriptor: int) -> tuple[int, int]:
        """The headers of a GET, and the first byte and length it sends (the whole object, or its Range)."""
        self._headers(resp, key, stat, descriptor)
        try:
            start, end, partial = byte_range(req.get_header("Range"), stat.st_size)
        except NotSatisfiable as unsatisfiable:
            resp.set_header("Content-Range", str(unsatisfiable))
            raise S3Error(416, "InvalidRange", "the requested range is not satisfiable", f"/{bucket}/{key}") from None
        if partial:
            resp.status = 206
            resp.set_header("Content-Range", f"bytes {start}-{end}/{stat.st_size}")
        return start, end - start + 1


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

    app.req_options.strip_url_path_trailing_slash = True  # /cnet/ is the bucket; /cnet/photos/ no object
    app.add_route("/health", Health())
    etags, index, buckets = ETags(), ListingIndex(root), _Buckets(bucket, os.stat(root).st_mtime)
    EtagWarmer(root, etags, index).start()  # ETags made before GETs need them
    for mount in ("", MOUNT):  # path-style at the root, and under /s3 as before
        app.add_route(mount or "/", buckets)
        app.add_route(mount + "/{bucket}", _Bucket(root, bucket, etags, index))
        app.add_route(mount + "/{bucket}/{key:path}", _Object(root, bucket, etags, index, bytes_served))
    app.add_error_handler(S3Error, _render_error)
    return app
