"""Where a model comes from, as ``config.model_path`` names it: a file on this node, ``data://KEY/FILE`` (a
file of a data upload, here or on a neighbour), an ``http(s)://`` URL (a neighbour's signed
``/api/artifacts/SHA`` link, a presigned S3 URL, any web server), or ``s3://BUCKET/KEY`` (at the node's
``models.s3_endpoint``)."""
from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from cnetd.common.addresses import redacted_url, shown_url
from cnetd.common.errors import Invalid

SHA256_PATTERN = r"^[0-9a-f]{64}$"
MODEL_PATH_PATTERN = r"^[^\x00]+$"  # no path or URL holds a NUL
FILE, DATA, HTTP, S3 = "file", "data", "http", "s3"


@dataclass(frozen=True)
class Source:
    kind: str  # FILE, DATA, HTTP or S3
    text: str  # as the config gives it

    @property
    def data_key(self) -> str:
        return self.text.removeprefix("data://").split("/", 1)[0]

    @property
    def data_file(self) -> str:
        return self.text.removeprefix("data://").split("/", 1)[1]

    @property
    def shown(self) -> str:
        """As readers of the record and logs see it: a URL without its password, and without its query, which may
        sign it (a neighbour's artifact link, a presigned S3 URL) and so let anyone holding it fetch the model."""
        return shown_url(self.text) if self.kind == HTTP else self.text

    @property
    def name(self) -> str:
        """A short name people recognise: the file name the source ends in."""
        path = urllib.parse.urlsplit(self.text).path if self.kind == HTTP else self.text
        return path.rstrip("/").rsplit("/", 1)[-1] or self.text


def parse_source(text: str) -> Source:
    """``text`` as a Source; Invalid when it is none of the forms."""
    if not re.fullmatch(MODEL_PATH_PATTERN, text):
        raise Invalid("config.model_path: expected a path or URL, without NUL")
    if text.startswith("data://"):
        key, _, file = text.removeprefix("data://").partition("/")
        if not key or not file:
            raise Invalid(f"config.model_path: {text!r}: expected data://DATA_KEY/FILE")
        return Source(DATA, text)
    try:
        parts = urllib.parse.urlsplit(text) if "://" in text else None
    except ValueError as exc:  # an unclosed IPv6 bracket
        raise Invalid(f"config.model_path: {redacted_url(text)[:200]!r} is not a URL ({exc})") from None
    scheme = parts.scheme if parts is not None else ""
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise Invalid(f"config.model_path: {redacted_url(text)!r} names no host")
        return Source(HTTP, text)
    if scheme == "s3":
        bucket, _, key = text.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise Invalid(f"config.model_path: {text!r}: expected s3://BUCKET/KEY")
        return Source(S3, text)
    if scheme:
        raise Invalid(f"config.model_path: {scheme}:// is not a model source (a path on this node, "
                      "data://DATA_KEY/FILE, http(s)://… or s3://BUCKET/KEY)")
    return Source(FILE, text)


def check_sha256(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(SHA256_PATTERN, value):
        raise Invalid("config.model_sha256: expected 64 lowercase hex digits")
    return value
