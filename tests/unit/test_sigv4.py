"""The gateway's signature checks as pure functions, against requests signed by botocore itself."""
from __future__ import annotations

import time

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.sigv4 import MAX_CLOCK_SKEW_S, GatewayKeys, SignatureRejected, verify

KEYS = GatewayKeys("AKUNIT", "unit-secret")
URL = "http://127.0.0.1:9000/s3/cnet/a%20b/c.txt?list-type=2&prefix=a%2F"


def signed_headers(url: str = URL, secret: str = KEYS.secret_key) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url, headers={"Host": "127.0.0.1:9000"})
    S3SigV4Auth(Credentials(KEYS.access_key, secret), "s3", "us-east-1").add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def test_a_signed_request_passes() -> None:
    verify("GET", URL, signed_headers(), KEYS, "/s3")  # control for the refusals below


@pytest.mark.parametrize("change, code", [
    (lambda url, headers: (url, signed_headers(secret="other")), "SignatureDoesNotMatch"),
    (lambda url, headers: (url.replace("c.txt", "d.txt"), headers), "SignatureDoesNotMatch"),
    (lambda url, headers: (url + "&extra=1", headers), "SignatureDoesNotMatch"),
    (lambda url, headers: (url, {**headers, "host": "attacker.example"}), "SignatureDoesNotMatch"),
    (lambda url, headers: (url, {**headers, "authorization": headers["authorization"].replace("AKUNIT", "AKX")}),
     "InvalidAccessKeyId"),
    (lambda url, headers: (url, {**headers, "authorization": "AWS AKUNIT:abc="}), "AuthorizationHeaderMalformed"),
    (lambda url, headers: (url, {name: value for name, value in headers.items() if name != "authorization"}),
     "AccessDenied"),
    # Dates of the right shape that are no time (a 13th month), or in another script's digits: refused, not a
    # ValueError (a 500) out of strptime.
    (lambda url, headers: (url, {**headers, "x-amz-date": "20261399T999999Z"}), "AccessDenied"),
    (lambda url, headers: (url, {**headers, "x-amz-date": "\u0662\u0660\u0662\u0666\u0660\u0661\u0660\u0661T000000Z"}),
     "AccessDenied"),
])
def test_each_change_is_refused(change, code: str) -> None:
    url, headers = change(URL, signed_headers())
    with pytest.raises(SignatureRejected) as refused:
        verify("GET", url, headers, KEYS, "/s3")
    assert refused.value.code == code


def test_a_request_signed_long_ago_is_refused() -> None:
    headers = signed_headers()
    with pytest.raises(SignatureRejected) as refused:
        verify("GET", URL, headers, KEYS, "/s3", now=time.time() + MAX_CLOCK_SKEW_S + 60)
    assert refused.value.code == "RequestTimeTooSkewed"
