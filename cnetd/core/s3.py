"""``s3://BUCKET/KEY`` model sources: fetched path-style from ``models.s3_endpoint`` (S3, a CNET gateway, any
S3-compatible store), signed with AWS SigV4 by botocore's own signer when ``models.s3_access_key`` and
``models.s3_secret_key`` are set (unsigned otherwise, for a public bucket or a loopback gateway)."""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None

    def object_url(self, source: str) -> str:
        """Where ``s3://BUCKET/KEY`` is, path-style (every S3-compatible store answers it)."""
        bucket, _, key = source.removeprefix("s3://").partition("/")
        return f"{self.url.rstrip('/')}/{urllib.parse.quote(bucket)}/{urllib.parse.quote(key)}"

    def headers(self, url: str) -> dict[str, str]:
        """The headers of a GET of ``url``: signed now, when there are keys."""
        if not self.access_key or not self.secret_key:
            return {}
        # Imported here: botocore costs each node process about 12 MiB, and only a signed fetch needs it.
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        request = AWSRequest(method="GET", url=url)
        S3SigV4Auth(Credentials(self.access_key, self.secret_key), "s3", self.region).add_auth(request)
        return dict(request.headers.items())
