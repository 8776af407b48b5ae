"""AWS signature checks for the gateway: Signature V4 in both forms S3 clients use (the Authorization header
and presigned query parameters), and the V2 presigned query form boto3 still makes by default. The
signature is computed again with botocore's own S3 signers over the request as it arrived (raw path and
query, the signed headers' values) and compared in constant time.
"""
from __future__ import annotations

import calendar
import functools
import hmac
import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import Mapping

from botocore.auth import HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MAX_CLOCK_SKEW_S = 15 * 60  # as S3: a header-signed request older or newer than this is refused
MAX_PRESIGNED_EXPIRES_S = 7 * 24 * 3600
_AUTHORIZATION = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<access_key>[^/,\s]+)/(?P<scope>[^,\s]+),\s*"
                            r"SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$")
_AMZ_DATE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")  # ASCII digits only: \d takes any script's
MISMATCH = "the request signature we calculated does not match the signature you provided; check your key"


class SignatureRejected(Exception):
    """Why a request is not let in, as S3 says it: an error code and a message (status 403, or 400)."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class GatewayKeys:
    access_key: str
    secret_key: str


def verify(method: str, url: str, headers: Mapping[str, str], keys: GatewayKeys, mount: str,
           now: float | None = None) -> None:
    """Raise ``SignatureRejected`` unless the request at ``url`` (scheme://host + the raw path and query as
    sent) is signed with ``keys``. ``headers`` maps lower-case names to values; ``mount`` is the path the
    gateway's buckets hang below (V2 signs the path from the bucket on)."""
    now = time.time() if now is None else now
    query = urllib.parse.urlsplit(url).query
    raw_pairs = [pair.partition("=") for pair in query.split("&") if pair] if query else []
    params = {urllib.parse.unquote(key): urllib.parse.unquote(value) for key, _, value in raw_pairs}
    if "authorization" in headers:
        _verify_header(method, _canonical_query(url, raw_pairs), headers, keys, now)
    elif "X-Amz-Signature" in params:
        _verify_presigned(method, url, raw_pairs, params, headers, keys, now)
    elif "Signature" in params and "AWSAccessKeyId" in params:
        _verify_presigned_v2(method, url, params, keys, mount, now)
    else:
        raise SignatureRejected("AccessDenied", "this gateway needs requests signed with AWS Signature V4")


def _canonical_query(url: str, raw_pairs: list[tuple[str, str, str]]) -> str:
    """``url`` with its query encoded as SigV4 signs it (every byte but A-Z a-z 0-9 - _ . ~ as %XX): a client
    may send ``delimiter=/`` yet sign ``delimiter=%2F`` (s3fs does); botocore signs the query as given."""
    if not raw_pairs:
        return url
    encode = functools.partial(urllib.parse.quote, safe="-_.~")
    query = "&".join(f"{encode(urllib.parse.unquote(key))}={encode(urllib.parse.unquote(value))}"
                     for key, _, value in raw_pairs)
    return url.split("?", 1)[0] + "?" + query


def _scope(access_key: str, scope: str, keys: GatewayKeys, amz_date: str) -> str:
    """The region of a credential scope ``DATE/REGION/s3/aws4_request``, once its parts check out."""
    if not hmac.compare_digest(access_key.encode(), keys.access_key.encode()):
        raise SignatureRejected("InvalidAccessKeyId", "the access key id does not exist in our records")
    parts = scope.split("/")
    if len(parts) != 4 or parts[2] != "s3" or parts[3] != "aws4_request" or parts[0] != amz_date[:8]:
        raise SignatureRejected("AuthorizationHeaderMalformed", "the credential scope is malformed", 400)
    return parts[1]


def _amz_time(amz_date: str | None) -> tuple[str, float]:
    try:
        if amz_date and _AMZ_DATE.match(amz_date):
            return amz_date, calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:  # of the shape, and no time: a 13th month
        pass
    raise SignatureRejected("AccessDenied", "a signed request needs X-Amz-Date (YYYYMMDDTHHMMSSZ)")


def _verify_header(method: str, url: str, headers: Mapping[str, str], keys: GatewayKeys, now: float) -> None:
    match = _AUTHORIZATION.match(headers["authorization"].strip())
    if match is None:
        raise SignatureRejected("AuthorizationHeaderMalformed", "the Authorization header is malformed", 400)
    amz_date, signed_at = _amz_time(headers.get("x-amz-date"))
    region = _scope(match["access_key"], match["scope"], keys, amz_date)
    if abs(now - signed_at) > MAX_CLOCK_SKEW_S:
        raise SignatureRejected("RequestTimeTooSkewed", "the difference between the request time and the "
                                "gateway's time is too large")
    signed = match["headers"].split(";")
    if "host" not in signed or any(name not in headers for name in signed):
        raise SignatureRejected("AccessDenied", "a signed header is missing, or host is not signed")
    request = AWSRequest(method=method, url=url, headers={name: headers[name] for name in signed})
    _compare(S3SigV4Auth(Credentials(keys.access_key, keys.secret_key), "s3", region), request, amz_date,
             match["signature"])


def _verify_presigned(method: str, url: str, raw_pairs: list[tuple[str, str, str]], params: dict[str, str],
                      headers: Mapping[str, str], keys: GatewayKeys, now: float) -> None:
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise SignatureRejected("AuthorizationQueryParametersError", "X-Amz-Algorithm must be AWS4-HMAC-SHA256", 400)
    amz_date, signed_at = _amz_time(params.get("X-Amz-Date"))
    access_key, _, scope = params.get("X-Amz-Credential", "").partition("/")
    region = _scope(access_key, scope, keys, amz_date)
    expires = params.get("X-Amz-Expires", "")
    if not (expires.isascii() and expires.isdigit() and 0 < int(expires) <= MAX_PRESIGNED_EXPIRES_S):
        raise SignatureRejected("AuthorizationQueryParametersError", "X-Amz-Expires must be 1 to 604800", 400)
    if now > signed_at + int(expires) or signed_at > now + MAX_CLOCK_SKEW_S:
        raise SignatureRejected("AccessDenied", "Request has expired")
    signed = params.get("X-Amz-SignedHeaders", "").split(";")
    if "host" not in signed or any(name not in headers for name in signed):
        raise SignatureRejected("AccessDenied", "a signed header is missing, or host is not signed")
    unsigned_query = "&".join(f"{key}={value}" if separator else key
                              for key, separator, value in raw_pairs if key != "X-Amz-Signature")
    request = AWSRequest(method=method, url=url.split("?", 1)[0] + "?" + unsigned_query,
                         headers={name: headers[name] for name in signed})
    signer = S3SigV4QueryAuth(Credentials(keys.access_key, keys.secret_key), "s3", region, expires=int(expires))
    _compare(signer, request, amz_date, params["X-Amz-Signature"])


def _verify_presigned_v2(method: str, url: str, params: dict[str, str], keys: GatewayKeys, mount: str,
                         now: float) -> None:
    if not hmac.compare_digest(params["AWSAccessKeyId"].encode(), keys.access_key.encode()):
        raise SignatureRejected("InvalidAccessKeyId", "the access key id does not exist in our records")
    expires = params.get("Expires", "")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
        raise SignatureRejected("AccessDenied", "Expires must be a time in seconds since the epoch")
    if now > int(expires):
        raise SignatureRejected("AccessDenied", "Request has expired")
    path = urllib.parse.urlsplit(url).path
    bucket_path = path[len(mount):] if path.startswith(mount + "/") else path
    signer = _SignedUntil(Credentials(keys.access_key, keys.secret_key), expires)
    expected = signer.get_signature(method, urllib.parse.urlsplit(bucket_path), {})
    if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
        raise SignatureRejected("SignatureDoesNotMatch", MISMATCH)


class _SignedUntil(HmacV1QueryAuth):
    """botocore's V2 query signer, for the ``Expires`` a URL was signed with (it signs now + a duration)."""

    def __init__(self, credentials: Credentials, expires_at: str) -> None:
        super().__init__(credentials)
        self._expires_at = expires_at

    def _get_date(self) -> str:
        return self._expires_at


def _compare(signer: S3SigV4Auth, request: AWSRequest, amz_date: str, given: str) -> None:
    request.context["timestamp"] = amz_date
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureRejected("SignatureDoesNotMatch", MISMATCH)
